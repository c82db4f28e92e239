"""Full Fashion-MNIST from scratch: a registry backbone on all 60,000 training images.

Trains ``kerastl pretrain fashion_mnist --weights none`` on the whole training split
(``--val-fraction 0``: no validation split, no early stopping, the last epoch's model
is kept, so the test split picks nothing) and scores it once on the 10,000 test
images, as is and with mirror test-time augmentation (``kerastl evaluate --tta``).
Prints accuracy, wall time and every setting; the dataset's own README lists
Google AutoML 0.939, VGG16 0.935, ResNet18 0.949, MobileNet 0.950, WRN40-4 0.967.

    python benchmarks/fashion_mnist_full.py [--backbone kerastl_wide] [--epochs 60]

Needs Fashion-MNIST (``apt-get install dataset-fashion-mnist``).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import kerastl  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="kerastl_wide")
    parser.add_argument("--image-size", type=int, default=28)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--augment", default="shift")
    parser.add_argument("--weight-decay", type=float, default=0.0)
    parser.add_argument("--label-smoothing", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", default=None, help="keep the run here (default: a temp dir)")
    args = parser.parse_args()
    settings = dict(backbone=args.backbone, weights="none", image_size=args.image_size,
                    frozen_epochs=0, finetune_epochs=args.epochs, batch_size=args.batch_size,
                    lr=args.lr, augment=args.augment, weight_decay=args.weight_decay,
                    label_smoothing=args.label_smoothing,
                    seed=args.seed, val_fraction=0.0)
    with tempfile.TemporaryDirectory() as scratch:
        started = time.perf_counter()
        result = kerastl.pretrain("fashion_mnist", runs_dir=args.runs or scratch,
                                  name="fashion_mnist_full", overwrite=True, verbose=2,
                                  **settings)
        wall = time.perf_counter() - started
        mirror_tta = kerastl.evaluate(result.run_dir, "fashion_mnist", tta=True)["accuracy"]
    test = result.metrics["test"]
    print(json.dumps({"settings": settings, "train_images": len(result.data.train),
                      "test_images": len(result.data.test), "test_accuracy": test["accuracy"],
                      "test_accuracy_mirror_tta": mirror_tta,
                      "train_seconds": result.metrics["train_seconds"],
                      "wall_seconds": round(wall, 1)}, indent=2))
    print(f"| {args.backbone} | {args.image_size} px | {args.epochs} | "
          f"{test['accuracy']:.4f} | {mirror_tta:.4f} | {wall / 60:.1f} min |")


if __name__ == "__main__":
    main()
