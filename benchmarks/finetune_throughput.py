"""kerastl finetune against a plain Keras script, same backbone, data, batch and XLA setting.

The plain script is written the way the keras.io transfer-learning guide writes it:
``image_dataset_from_directory`` (or ``fit`` on NumPy arrays), a frozen base called
with ``training=False``, a pooling/dropout/dense head, Adam; no cache or prefetch tuning.
kerastl runs its phase 1 (frozen backbone) for the same epochs through ``kerastl.finetune``.

Four cases:
  default          the job a user runs first, end to end, each side a whole process: a
                   folder of 1,600 JPEGs (256 px, 10 classes), ``kerastl finetune`` with
                   the CLI's defaults (light augmentation, validation, 2 frozen and 3
                   unfrozen epochs, XLA off) against ``plain_keras_finetune.py`` (the
                   keras.io guide's script with validation, the same epochs and network
                   weights), ``--rounds`` rounds in turn; images/s per phase (training
                   steps alone) and where each side's wall time goes
  jpeg             a folder of JPEGs at 224 px, frozen base (phase 1)
  memory           Fashion-MNIST arrays at 32 px, frozen base (no decoding at all)
  memory-unfrozen  the same arrays with the whole base training (phase 2)

Images/s count training images x epochs over wall time. JPEG case: the whole job
(for the plain script, building the dataset and ``fit``; for kerastl, the whole
``finetune`` call: decoding, training, checkpoints, final evaluation, plots).
Memory case: the training loop alone (plain ``fit`` on arrays against kerastl's
phase loop, ``metrics["train_seconds"]``), both on the same arrays. Run:

    python benchmarks/finetune_throughput.py [--backbone mobilenetv3small] [--epochs 3]
    python benchmarks/finetune_throughput.py --cases default [--backbone efficientnetlite0] \\
        [--images 1600] [--rounds 2] [--kerastl-args "--no-deterministic"]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import subprocess
import sys
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


HERE = Path(__file__).resolve().parent
#: The plain script runs kerastl's default schedule (FinetuneConfig's frozen/finetune epochs).
DEFAULT_EPOCHS = {"frozen": kerastl.FinetuneConfig.frozen_epochs,
                  "unfrozen": kerastl.FinetuneConfig.finetune_epochs}


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


# --- the default path, end to end, each side a whole process ------------------------

def kerastl_process(folder: Path, args, weights: str, runs: Path, name: str) -> dict:
    """``kerastl finetune`` with the CLI's defaults; its wall time and per-phase figures."""
    command = [sys.executable, "-m", "kerastl_cli", "finetune", str(folder),
               "--backbone", args.backbone, "--weights", weights, "--image-size",
               str(args.size), "--batch-size", str(args.batch_size), "--jit-compile", "off",
               "--runs-dir", str(runs), "--name", name, *args.kerastl_args.split()]
    start, started_at = time.perf_counter(), time.time()
    subprocess.run(command, check=True, capture_output=True)
    wall, ended_at = time.perf_counter() - start, time.time()
    run = runs / name
    last_epoch_end = (run / "history.csv").stat().st_mtime
    with (run / "history.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    n_train = json.loads((run / "config.json").read_text())["data"]["train"]
    phases = {}
    for row in rows:
        phase = phases.setdefault(row["phase"], {"epochs": 0, "train": 0.0, "fit": 0.0})
        phase["epochs"] += 1
        phase["train"] += float(row["train_seconds"])
        phase["fit"] += float(row["epoch_seconds"])
    loop = sum(p["fit"] for p in phases.values())
    return {"wall": wall, "n_train": n_train, "phases": phases, "loop": loop,
            "seconds": {"before the loop, between epochs": last_epoch_end - started_at - loop,
                        "after the last epoch": ended_at - last_epoch_end}}


def plain_process(folder: Path, args, weights: str, out: Path) -> dict:
    command = [sys.executable, str(HERE / "plain_keras_finetune.py"), str(folder),
               "--backbone", args.backbone, "--weights", weights, "--size", str(args.size),
               "--batch-size", str(args.batch_size), "--out", str(out),
               "--frozen-epochs", str(DEFAULT_EPOCHS["frozen"]),
               "--finetune-epochs", str(DEFAULT_EPOCHS["unfrozen"])]
    start = time.perf_counter()
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - start
    report = json.loads(done.stdout.strip().splitlines()[-1])
    seconds = report["seconds"]
    return {"wall": wall, "n_train": report["n_train"], "seconds": seconds,
            "phases": {phase: {"epochs": epochs, "train": seconds[f"{phase}_train"],
                               "fit": seconds[f"{phase}_fit"]}
                       for phase, epochs in DEFAULT_EPOCHS.items()},
            "loop": seconds["frozen_fit"] + seconds["unfrozen_fit"]}


def default_path(args, tmp: Path) -> None:
    folder = make_jpeg_folder(tmp / "jpegs", args.images, 256, n_classes=10)
    weights = random_weights_file(args.backbone, args.size, str(tmp))
    results = {"kerastl": [], "plain": []}
    for r in range(args.rounds):
        order = ("kerastl", "plain") if r % 2 == 0 else ("plain", "kerastl")
        for side in order:
            if side == "kerastl":
                result = kerastl_process(folder, args, weights, tmp / "runs", f"e2e-{r}")
            else:
                result = plain_process(folder, args, weights, tmp / f"plain-{r}.keras")
            results[side].append(result)
            print(f"round {r + 1} {side}: {result['wall']:.0f} s wall, "
                  f"{result['loop']:.0f} s in fit", flush=True)
    print_default_path(results, args)


def _rate(result: dict, phase: str) -> float:
    figures = result["phases"][phase]
    return result["n_train"] * figures["epochs"] / figures["train"]


def print_default_path(results: dict, args) -> None:
    ours, plain = results["kerastl"], results["plain"]
    print(f"\n{args.backbone} at {args.size} px, {args.images} JPEGs, batch "
          f"{args.batch_size}, XLA off, {len(ours)} rounds in turn, {os.cpu_count()} CPU "
          f"cores, TF {tf.__version__}; median (best) of the rounds"
          + (f"; kerastl with {args.kerastl_args}" if args.kerastl_args else ""))
    print(f"{'figure':34} {'plain':>14} {'kerastl':>14} {'kerastl/plain':>14}")

    def row(label, plain_values, our_values, higher_is_better=True):
        p, o = statistics.median(plain_values), statistics.median(our_values)
        best_p = max(plain_values) if higher_is_better else min(plain_values)
        best_o = max(our_values) if higher_is_better else min(our_values)
        ratio = o / p if higher_is_better else p / o
        print(f"{label:34} {p:8.1f} ({best_p:4.0f}) {o:8.1f} ({best_o:4.0f}) {ratio:13.2f}x")

    for mine, theirs in (("frozen", "frozen"), ("finetune", "unfrozen")):
        row(f"{theirs} phase, img/s (training steps)", [_rate(r, theirs) for r in plain],
            [_rate(r, mine) for r in ours])
    row("whole process, s (speed ratio)", [r["wall"] for r in plain],
        [r["wall"] for r in ours], higher_is_better=False)
    row("in fit (with validation), s", [r["loop"] for r in plain],
        [r["loop"] for r in ours], higher_is_better=False)
    row("outside fit, s", [r["wall"] - r["loop"] for r in plain],
        [r["wall"] - r["loop"] for r in ours], higher_is_better=False)
    for side, keys in (("plain", ("import", "load_and_build", "save")),
                       ("kerastl", ("before the loop, between epochs", "after the last epoch"))):
        for key in keys:
            values = [r["seconds"][key] for r in results[side]]
            print(f"  {side} {key:32} {statistics.median(values):8.1f} s")


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
    parser.add_argument("--rounds", type=int, default=2, help="default case: rounds in turn")
    parser.add_argument("--kerastl-args", default="",
                        help="default case: more options for kerastl finetune (a variant to "
                             "measure, e.g. '--no-deterministic')")
    args = parser.parse_args()

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        if "default" in args.cases.split(","):
            default_path(args, Path(tmp))
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
    if rows:
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
