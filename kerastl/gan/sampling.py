"""Using a trained GAN: sample grids or files, latent interpolation, FID/KID evaluation."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kerastl import conditional
from kerastl.conditional import class_labels
from kerastl.errors import KerastlError
from kerastl.gan.dcgan import load_gan
from kerastl.latents import slerp
from kerastl.report import png_bytes, save_image_grid, square_grid
from kerastl.runs import atomic_write


def sample(run: str | Path, count: int, out: str | Path, seed: int = 0,
           separate: bool = False, overwrite: bool = False,
           class_name: str | None = None) -> list[Path]:
    """``count`` samples from the fixed latent batch of ``seed``: one grid PNG at ``out``,
    or (``separate``) ``sample_NNNN.png`` files in the folder ``out``. A conditional GAN
    draws class ``class_name``, or every class in turn."""
    gan = load_gan(run)
    images = gan.sample(count, seed, class_labels(run, gan, class_name, count, required=False))
    out = Path(out)
    if not separate:
        _refuse_existing(out, overwrite)
        return [save_image_grid(square_grid(images), out, cell=max(images.shape[1], 64))]
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"sample_{i:04d}.png" for i in range(count)]
    for path in paths:
        _refuse_existing(path, overwrite)
    for image, path in zip(images, paths):
        atomic_write(path, png_bytes(image))
    return paths


def interpolate(run: str | Path, out: str | Path, steps: int = 10, rows: int = 4,
                seed: int = 0, overwrite: bool = False) -> Path:
    """A grid whose every row walks the latent space between two random points."""
    if steps < 2:
        raise KerastlError(f"--steps must be at least 2. Received: {steps}")
    gan = load_gan(run)
    ends = gan.latents(2 * rows, seed)
    latents = np.concatenate([slerp(ends[2 * r], ends[2 * r + 1], steps) for r in range(rows)])
    # a conditional GAN walks each row within one class, the classes in turn
    labels = np.repeat(np.arange(rows) % gan.num_classes, steps) if gan.num_classes else None
    images = gan.generate(latents, labels)
    if images.shape[-1] == 1:
        images = np.repeat(images, 3, axis=-1)
    _refuse_existing(Path(out), overwrite)
    return save_image_grid([list(images[r * steps:(r + 1) * steps]) for r in range(rows)],
                           Path(out), cell=max(images.shape[1], 64))


def sample_folders(run: str | Path, per_class: int, out_dir, seed: int = 0,
                   overwrite: bool = False) -> dict[str, int]:
    """:func:`kerastl.conditional.sample_folders` for the conditional GAN of ``run``."""
    return conditional.sample_folders(run, load_gan(run), per_class, out_dir, seed, overwrite)


def evaluate(run: str | Path, real: str | None, count: int = 2048,
             extractor: str = "inception", seed: int = 0, classes=None,
             per_class: int | None = None, limit: int | None = None,
             classifier: str | None = None) -> dict:
    """FID and KID of ``count`` samples against up to ``count`` real images of ``real``; for
    a conditional GAN with a ``classifier`` run, the share of each class's samples that it
    labels as that class (:func:`kerastl.conditional.class_accuracy`)."""
    gan = load_gan(run)
    report = {}
    if real is not None:
        report.update(_fid_kid(gan, real, count, extractor, seed, classes, per_class, limit))
    if classifier:
        report["class_accuracy"] = conditional.class_accuracy(gan, run, classifier, seed=seed)
    if not report:
        raise KerastlError("nothing to evaluate: give --real (FID/KID), or --classifier for a "
                           "conditional GAN")
    return report


def _fid_kid(gan, real: str, count: int, extractor: str, seed: int, classes, per_class,
             limit) -> dict:
    from kerastl.data.bundle import load_images
    from kerastl.metrics.generative import FeatureExtractor, fid_kid

    size, channels = gan.generator.output_shape[1], gan.generator.output_shape[-1]
    bundle = load_images(real, size, val_fraction=0.0, seed=seed, classes=classes,
                         per_class=per_class, limit=limit)
    pool = [np.asarray(part.images[:count]) for part in (bundle.train, bundle.test)
            if part is not None]  # a streamed folder: decode only what is compared
    real_images = np.concatenate(pool)[:count]
    real_images = real_images[..., :1] if channels == 1 else real_images
    fake = gan.sample(count, seed + 1)
    return fid_kid(FeatureExtractor(extractor), real_images, fake)


def _refuse_existing(path: Path, overwrite: bool) -> None:
    if path.exists() and not overwrite:
        raise KerastlError(f"{path} exists: pass --overwrite to replace it")
