"""GAN transfer to 100 images: pretrain a DCGAN on 9 Fashion-MNIST classes, adapt it to the 10th.

Source: classes 0-8 of the training split (``--source-images`` per class),
``--source-epochs`` epochs. Target: ``--target-class`` (default 9, ankle boot),
100 training images drawn with the seed. Scored against that class's other
images (its remaining training images plus its test images, about 6,900) with
domain FID and KID on the pooled features of a kerastl Fashion-MNIST classifier
(kerastl_small from scratch on all ten classes; or ``--extractor RUN``), 2,048
samples from the EMA generator.

Settings, each ``--steps`` steps at batch ``--batch-size``:
  scratch             a new GAN on the 100 images (adaptive DiffAugment: kerastl's
                      default; DiffAugment on every image before 2026-12-01)
  finetune            the source GAN, plain (no DiffAugment, nothing frozen)
  finetune+freezed+da the source GAN, lowest ``--freeze-d`` D blocks frozen, DiffAugment
  finetune+d_from_clf the source GAN with D's blocks seeded from a kerastl_small
                      classifier of the source classes, DiffAugment

The networks use ``--width 16`` so that the discriminator's blocks (16-32-64) are
those of the kerastl_small backbone a classifier can seed.

    python benchmarks/gan_transfer.py [--steps 1000] [--source-epochs 4]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

import kerastl  # noqa: E402


def reference_images(target: int, seed: int, count: int) -> np.ndarray:
    """The target class's images except the ``count`` the GAN adapts on (same seeded draw)."""
    from kerastl.data.bundle import load_images

    train = load_images("fashion_mnist", 32, val_fraction=0.0, seed=seed,
                        classes=[str(target)])
    chosen = load_images("fashion_mnist", 32, val_fraction=0.0, seed=seed,
                         classes=[str(target)], limit=count).train.images
    used = {image.tobytes() for image in chosen}
    rest = [image for image in train.train.images if image.tobytes() not in used]
    return np.concatenate([np.stack(rest), train.test.images])[..., :1]


def classifier(runs: str, name: str, classes: str | None, epochs: int) -> str:
    result = kerastl.finetune("fashion_mnist", backbone="kerastl_small", weights="none",
                              image_size=32, classes=classes, frozen_epochs=0,
                              finetune_epochs=epochs, lr=2e-3, batch_size=128, augment="none",
                              runs_dir=runs, name=name, verbose=0)
    print(f"classifier {name}: test accuracy {result.metrics['test']['accuracy']:.3f}",
          flush=True)
    return str(result.run_dir)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target-class", type=int, default=9)
    parser.add_argument("--target-images", type=int, default=100)
    parser.add_argument("--source-images", type=int, default=2000,
                        help="per source class on average (a seeded draw of 9x this many)")
    parser.add_argument("--source-epochs", type=int, default=4)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--freeze-d", type=int, default=2)
    parser.add_argument("--samples", type=int, default=2048)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--extractor", help="a kerastl classifier run (default: train one)")
    parser.add_argument("--runs", help="keep runs here (default: a temporary folder)")
    args = parser.parse_args()

    from kerastl.gan.train import finetune_gan, load_gan, train_gan
    from kerastl.metrics.generative import FeatureExtractor, fid_kid

    source_classes = ",".join(str(c) for c in range(10) if c != args.target_class)
    started = time.time()
    with tempfile.TemporaryDirectory() as scratch:
        runs = args.runs or scratch
        extractor = FeatureExtractor(args.extractor or classifier(runs, "judge", None, 3))
        source_clf = classifier(runs, "source_clf", source_classes, 3)
        source = train_gan("fashion_mnist", classes=source_classes,
                           limit=args.source_images * 9,
                           width=args.width, epochs=args.source_epochs,
                           batch_size=64, min_epoch_images=0, seed=args.seed, runs_dir=runs,
                           name="source", overwrite=True, verbose=0)
        print(f"source GAN: {source.metrics['train_seconds']:.0f} s", flush=True)
        real = reference_images(args.target_class, args.seed, args.target_images)
        common = dict(classes=str(args.target_class), limit=args.target_images,
                      batch_size=args.batch_size, steps_per_epoch=100,
                      epochs=max(1, args.steps // 100), seed=args.seed, runs_dir=runs,
                      overwrite=True, verbose=0)
        settings = {
            "scratch": lambda: train_gan("fashion_mnist", width=args.width, name="scratch",
                                         **common),
            "finetune": lambda: finetune_gan(source.run_dir, "fashion_mnist",
                                             diffaugment="none", name="finetune", **common),
            "finetune+freezed+da": lambda: finetune_gan(
                source.run_dir, "fashion_mnist", freeze_d=args.freeze_d, name="freezed",
                **common),
            "finetune+d_from_clf": lambda: finetune_gan(
                source.run_dir, "fashion_mnist", d_from=source_clf, name="d_from_clf",
                **common),
        }
        rows = []
        for name, run in settings.items():
            result = run()
            scores = fid_kid(extractor, real, load_gan(result.run_dir).sample(args.samples,
                                                                              seed=99))
            rows.append((name, scores, result.metrics["train_seconds"]))
            print(f"{name}: FID {scores['fid']:.2f} KID {scores['kid']:.4f} "
                  f"({result.metrics['train_seconds']:.0f} s)", flush=True)

    print(f"\n{platform.machine()}, {os.cpu_count()} cores; target class {args.target_class}, "
          f"{args.target_images} images; {len(real)} reference images, {args.samples} samples; "
          f"total {time.time() - started:.0f} s")
    scratch_fid = rows[0][1]["fid"]
    print(f"{'setting':22} {'FID':>8} {'KID':>8} {'KID std':>8} {'FID/scratch':>11} {'s':>5}")
    for name, scores, seconds in rows:
        print(f"{name:22} {scores['fid']:8.2f} {scores['kid']:8.4f} {scores['kid_std']:8.4f} "
              f"{scores['fid'] / scratch_fid:11.2f} {seconds:5.0f}")


if __name__ == "__main__":
    main()
