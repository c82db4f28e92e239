"""A DCGAN on a user's small colour folder, with kerastl's defaults: adaptive augmentation
against none.

The folder: every distinct 48x48 PNG of four Debian icon themes (MATE, GNOME, Oxygen,
Adwaita), one class per icon context (actions, apps, devices, ...: 9 classes, about 2,500
images), composited on a light gray background: objects on a light background, as a user's
product photos or icons would be. Each run is ``kerastl gan train FOLDER --image-size 32
--epochs 10`` with the defaults, once as they are (DiffAugment's policies, adaptive) and once
with ``--diffaugment none``, seeds alternating. Scored on the final EMA samples:

- diversity: mean pairwise distance of 1,024 samples pooled to 8x8, over the same for 1,024
  real images (:mod:`kerastl.metrics.diversity`; 1 is as varied as the data, 0 one image);
- KID of 1,024 samples against every real image on EfficientNet-Lite0's pooled ImageNet
  features (offline, from the PyPI wheel): domain-free, comparable only within this table.

    apt-get install -y mate-icon-theme gnome-icon-theme oxygen-icon-theme adwaita-icon-theme
    python benchmarks/gan_small_folder.py [--seeds 0 1] [--epochs 10] [--runs DIR]

Look at each run's ``plots/samples_final.png``: the figures are there to be checked by eye.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

THEMES = ("mate", "gnome", "oxygen/base", "Adwaita")
CONTEXTS = ("actions", "apps", "categories", "devices", "emblems", "emotes", "mimetypes",
            "places", "status")
BACKGROUND = (235, 235, 235)
SCORED = 1024
CASES = {"defaults (adaptive DiffAugment)": {}, "--diffaugment none": {"diffaugment": "none"}}


def icon_folder(out: Path, root: Path = Path("/usr/share/icons")) -> Path:
    """``out/CONTEXT/NNNN.png``: every distinct 48 px icon of :data:`THEMES`, on a light
    background. Built once; an existing folder is used as it is."""
    if out.exists():
        return out
    seen: set[str] = set()
    staging = out.with_name(out.name + ".partial")
    for context in CONTEXTS:
        (staging / context).mkdir(parents=True, exist_ok=True)
        for theme in THEMES:
            for path in sorted((root / theme / "48x48" / context).glob("*.png")):
                data = path.resolve().read_bytes()
                digest = hashlib.sha256(data).hexdigest()
                if digest in seen:
                    continue
                seen.add(digest)
                icon = Image.open(path.resolve()).convert("RGBA")
                flat = Image.new("RGBA", icon.size, BACKGROUND + (255,))
                flat.alpha_composite(icon)
                flat.convert("RGB").save(staging / context / f"{len(seen):04d}.png")
    if not seen:
        raise SystemExit(f"no icons under {root}: install the icon themes named in the docstring")
    staging.rename(out)
    return out


def real_images(folder: Path, size: int) -> np.ndarray:
    from kerastl.data.bundle import load_images

    return np.asarray(load_images(str(folder), size, val_fraction=0.0, seed=0).train.images)


def score(run, real: np.ndarray, real_features: np.ndarray, extractor, seed: int) -> dict:
    from kerastl.gan.dcgan import load_gan
    from kerastl.metrics.diversity import diversity_ratio
    from kerastl.metrics.generative import kernel_inception_distance

    samples = load_gan(run).sample(SCORED, seed=99)
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(real), min(SCORED, len(real)), replace=False)
    kid, _ = kernel_inception_distance(real_features, extractor(samples))
    return {"diversity": diversity_ratio(samples, real[chosen]), "kid": kid}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--runs", help="keep the folder and runs here (default: temporary)")
    args = parser.parse_args()

    import tensorflow as tf

    from kerastl.gan.train import train_gan
    from kerastl.metrics.generative import FeatureExtractor

    print(f"{platform.machine()}, {os.cpu_count()} cores, TF {tf.__version__}", flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        runs = Path(args.runs or scratch)
        folder = icon_folder(runs / "icons")
        real = real_images(folder, 32)
        extractor = FeatureExtractor("efficientnetlite0")
        real_features = extractor(real)
        print(f"{len(real)} images in {folder}", flush=True)
        rows = []
        for seed in args.seeds:
            for case, settings in CASES.items():
                started = time.perf_counter()
                result = train_gan(str(folder), image_size=32, epochs=args.epochs, seed=seed,
                                   runs_dir=str(runs), name=f"{settings.get('diffaugment', 'ada')}"
                                   f"_s{seed}", verbose=0, **settings)
                figures = score(result.run_dir, real, real_features, extractor, seed)
                last = result.history[-1]
                rows.append((case, seed, figures["diversity"], figures["kid"],
                             last.get("augment_p"), last["d_real"],
                             time.perf_counter() - started, result.run_dir))
                print(rows[-1], flush=True)
    print("\n| case | seed | diversity / real | Lite0 KID | augment_p (last epoch) | "
          "d_real | seconds |\n| --- | --- | --- | --- | --- | --- | --- |")
    for case, seed, diversity, kid, p, d_real, seconds, _ in rows:
        print(f"| {case} | {seed} | {diversity:.2f} | {kid:.4f} | "
              f"{'-' if p is None else f'{p:.2f}'} | {d_real:.2f} | {seconds:.0f} |")


if __name__ == "__main__":
    main()
