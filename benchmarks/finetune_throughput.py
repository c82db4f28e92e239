"""kerastl finetune against a plain Keras script, same backbone, data, batch and XLA setting.

The plain script is written the way the keras.io transfer-learning guide writes it:
``image_dataset_from_directory`` (or ``fit`` on NumPy arrays), a frozen base called
with ``training=False``, a pooling/dropout/dense head, Adam; no cache or prefetch tuning.
kerastl runs its phase 1 (frozen backbone) for the same epochs through ``kerastl.finetune``.

Three cases:
  jpeg             a folder of JPEGs at 224 px, frozen base (phase 1)
  memory           Fashion-MNIST arrays at 32 px, frozen base (no decoding at all)
  memory-unfrozen  the same arrays with the whole base training (phase 2)

Images/s count training images x epochs over wall time. JPEG case: the whole job
(for the plain script, building the dataset and ``fit``; for kerastl, the whole
``finetune`` call: decoding, training, checkpoints, final evaluation, plots).
Memory case: the training loop alone (plain ``fit`` on arrays against kerastl's
phase loop, ``metrics["train_seconds"]``), both on the same arrays. Run:

    python benchmarks/finetune_throughput.py [--backbone mobilenetv3small] [--epochs 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import kerastl  # noqa: E402
from kerastl._tf import tensorflow  # noqa: E402
from kerastl.backbones import build_backbone, get_spec  # noqa: E402
from kerastl.data import load_data  # noqa: E402
from kerastl.layers import Preprocess  # noqa: E402

tf = tensorflow()
import keras  # noqa: E402


def make_jpeg_folder(root: Path, n_images: int, size: int, n_classes: int = 4) -> Path:
    """Photo-like JPEGs (smooth gradients plus noise) in class sub-folders."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size] / size
    for i in range(n_images):
        label = i % n_classes
        folder = root / f"class_{label}"
        folder.mkdir(parents=True, exist_ok=True)
        base = np.stack([np.sin(6 * xx + label), np.cos(5 * yy - label), xx * yy], -1)
        pixels = (base * 100 + 128 + rng.normal(0, 20, (size, size, 3))).clip(0, 255)
        Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{i}.jpg", quality=90)
    return root


def plain_model(backbone: str, size: int, n_classes: int, weights_file: str,
                unfrozen: bool = False):
    """The keras.io guide's model: base called with training=False, then a small head."""
    spec = get_spec(backbone)
    base = build_backbone(backbone, size, weights=weights_file)
    base.trainable = unfrozen
    inputs = keras.Input((size, size, 3))
    x = Preprocess(spec.preprocessing)(inputs)
    x = base(x, training=False)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(0.2)(x)
    outputs = keras.layers.Dense(n_classes, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy",
                  metrics=["accuracy"], jit_compile=False)
    return model


def plain_folder_job(folder: Path, args, weights_file: str) -> tuple[float, int]:
    start = time.perf_counter()
    train_ds, val_ds = keras.utils.image_dataset_from_directory(
        folder, validation_split=0.2, subset="both", seed=0, image_size=(args.size, args.size),
        batch_size=args.batch_size, verbose=False)
    n_train = int(round(args.images * 0.8))
    model = plain_model(args.backbone, args.size, 4, weights_file)
    model.fit(train_ds, validation_data=val_ds, epochs=args.epochs, verbose=0)
    return time.perf_counter() - start, n_train


def plain_memory_job(bundle, args, weights_file: str, unfrozen: bool) -> tuple[float, int]:
    x_train, y_train = bundle.train.images.astype("float32"), bundle.train.labels
    x_val, y_val = bundle.val.images.astype("float32"), bundle.val.labels
    model = plain_model(args.backbone, x_train.shape[1], bundle.num_classes, weights_file,
                        unfrozen)
    start = time.perf_counter()
    model.fit(x_train, y_train, validation_data=(x_val, y_val), epochs=args.epochs,
              batch_size=args.batch_size, verbose=0)
    return time.perf_counter() - start, len(x_train)


def kerastl_job(data: str, size: int, args, weights_file: str, runs: str, fit_only=False,
                unfrozen=False, **extra) -> tuple[float, int]:
    start = time.perf_counter()
    epochs = {"frozen_epochs": 0, "finetune_epochs": args.epochs, "finetune_lr": 1e-3} \
        if unfrozen else {"frozen_epochs": args.epochs, "finetune_epochs": 0}
    result = kerastl.finetune(data, backbone=args.backbone, weights=weights_file,
                              image_size=size, **epochs,
                              batch_size=args.batch_size, augment="none", runs_dir=runs,
                              name=f"bench-{size}-{time.time_ns()}", verbose=0, **extra)
    seconds = result.metrics["train_seconds"] if fit_only else time.perf_counter() - start
    return seconds, len(result.data.train)


def random_weights_file(backbone: str, size: int, folder: str) -> str:
    """Stand-in pretrained weights (ImageNet needs the internet); speed does not depend on them."""
    path = os.path.join(folder, f"{backbone}-{size}.weights.h5")
    build_backbone(backbone, size).save_weights(path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="mobilenetv3small")
    parser.add_argument("--images", type=int, default=800, help="JPEGs in the folder case")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--memory-images", type=int, default=5000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--cases", default="jpeg,memory,memory-unfrozen")
    args = parser.parse_args()

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        if "jpeg" in args.cases:
            folder = make_jpeg_folder(Path(tmp) / "jpegs", args.images, args.size)
            weights = random_weights_file(args.backbone, args.size, tmp)
            plain = plain_folder_job(folder, args, weights)
            ours = kerastl_job(str(folder), args.size, args, weights, tmp, val_fraction=0.2)
            rows.append(("jpeg folder", args.size, plain, ours))
        memory_cases = [c for c in ("memory", "memory-unfrozen") if c in args.cases.split(",")]
        if memory_cases:
            split = dict(per_class=args.memory_images // 10, val_fraction=1 / 60)
            bundle = load_data("fashion_mnist", 32, **split)
            weights = random_weights_file(args.backbone, 32, tmp)
        for case in memory_cases:
            unfrozen = case == "memory-unfrozen"
            plain = plain_memory_job(bundle, args, weights, unfrozen)
            ours = kerastl_job("fashion_mnist", 32, args, weights, tmp, fit_only=True,
                               unfrozen=unfrozen, **split)
            label = "in memory, backbone unfrozen" if unfrozen else "in memory (Fashion-MNIST)"
            rows.append((label, 32, plain, ours))
    print_table(rows, args)


def print_table(rows, args) -> None:
    print(f"\n{args.backbone}, batch {args.batch_size}, {args.epochs} epochs, XLA off, "
          f"{os.cpu_count()} CPU cores, TF {tf.__version__}, {platform.machine()}")
    print(f"{'case':28} {'px':>4} {'plain img/s':>12} {'kerastl img/s':>14} {'ratio':>6}")
    for case, size, (plain_s, plain_n), (ours_s, ours_n) in rows:
        plain_rate = plain_n * args.epochs / plain_s
        ours_rate = ours_n * args.epochs / ours_s
        print(f"{case:28} {size:>4} {plain_rate:>12.1f} {ours_rate:>14.1f} "
              f"{ours_rate / plain_rate:>5.2f}x")


if __name__ == "__main__":
    main()
