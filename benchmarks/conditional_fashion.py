"""Are a conditional model's samples of class c of class c? A conditional DCGAN and a
conditional VAE on Fashion-MNIST, scored by a classifier that neither saw.

Each model is trained with the budget of its unconditional benchmark, ``--conditional``
added: the DCGAN as ``benchmarks/dcgan_fashion.py`` (32 px, width 32, latent 128, batch 64,
20,000 training images, 5 epochs), the VAE as ``benchmarks/vae_fashion.py``'s defaults
(28 px, kerastl's defaults, every training image, 5 epochs). Then 100 samples of every
class go through a kerastl_small classifier of the ten classes (trained here from scratch,
or ``--classifier RUN``), and the share it labels as the class asked for is reported per
class and on average (``kerastl gan|vae evaluate RUN --classifier CLS``). A model that ignores
its label scores about 0.10. Each run's sample grid (one class per column) is written beside
it: look at it.

    python benchmarks/conditional_fashion.py [--epochs 5] [--runs DIR] [--classifier RUN]
        [--models dcgan vae] [--dcgan-settings '{"loss": "hinge", "spectral_norm": true}']

Needs Fashion-MNIST (``apt-get install dataset-fashion-mnist``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

PER_CLASS = 100


def train_dcgan(runs: str, epochs: int, seed: int, **extra):
    from kerastl.gan.train import train_gan

    settings = dict(image_size=32, width=32, latent_dim=128, batch_size=64, limit=20000)
    return train_gan("fashion_mnist", epochs=epochs, seed=seed, conditional=True, runs_dir=runs,
                     name=f"cgan_s{seed}", verbose=0, **{**settings, **extra})


def train_vae(runs: str, epochs: int, seed: int, **extra):
    from kerastl.vae import train_vae

    return train_vae("fashion_mnist", image_size=28, epochs=epochs, seed=seed, conditional=True,
                     runs_dir=runs, name=f"cvae_s{seed}", verbose=0, **extra)


MODELS = {"dcgan": ("conditional DCGAN", train_dcgan), "vae": ("conditional VAE", train_vae)}


def train_models(runs: str, epochs: int, seed: int, models,
                 extra: dict) -> dict[str, tuple[str, float]]:
    trained = {}
    for key in models:
        name, train = MODELS[key]
        started = time.perf_counter()
        run = train(runs, epochs, seed, **extra.get(key, {})).run_dir
        trained[name] = (str(run), time.perf_counter() - started)
    return trained


def class_grid(model, run: str, path: Path) -> None:
    """Eight samples of each class, one class per column, titled."""
    from kerastl.conditional import run_classes
    from kerastl.report import save_image_grid

    classes = model.num_classes
    images = model.sample(8 * classes, seed=7, labels=np.tile(np.arange(classes), 8))
    save_image_grid([list(images[r * classes:(r + 1) * classes]) for r in range(8)], path,
                    cell=64, titles=run_classes(run))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--dcgan-settings", type=json.loads, default={},
                        help='more train_gan settings as JSON, e.g. \'{"loss": "hinge"}\'')
    parser.add_argument("--vae-settings", type=json.loads, default={},
                        help="more train_vae settings as JSON")
    parser.add_argument("--classifier", help="a kerastl classifier run of the ten classes")
    parser.add_argument("--runs", help="keep runs here (default: a temporary folder)")
    args = parser.parse_args()

    import tensorflow as tf

    from dcgan_fashion import train_extractor  # this folder's script

    from kerastl.conditional import class_accuracy
    from kerastl.gan.dcgan import load_gan
    from kerastl.vae.model import load_vae

    print(f"{platform.machine()}, {os.cpu_count()} cores, TF {tf.__version__}", flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        runs = args.runs or scratch
        classifier = args.classifier or train_extractor(runs, name="classifier")
        results = []
        trained = train_models(runs, args.epochs, args.seed, args.models,
                               {"dcgan": args.dcgan_settings, "vae": args.vae_settings})
        for name, (run, seconds) in trained.items():
            model = (load_gan if "DCGAN" in name else load_vae)(run)
            class_grid(model, run, Path(run) / "plots" / "samples_by_class.png")
            scores = class_accuracy(model, run, classifier, per_class=PER_CLASS,
                                    seed=args.seed)
            results.append((name, scores, seconds, run))
            print(name, scores, f"{seconds:.0f} s", flush=True)
    names = list(results[0][1]["per_class"])
    print(f"\n| model | mean | {' | '.join(names)} | train s |")
    print("| --- " * (len(names) + 3) + "|")
    for name, scores, seconds, _ in results:
        cells = " | ".join(f"{scores['per_class'][c]:.2f}" for c in names)
        print(f"| {name} | **{scores['mean']:.3f}** | {cells} | {seconds:.0f} |")


if __name__ == "__main__":
    main()
