"""Using a trained VAE: samples, reconstructions, interpolation and attribute editing through
its latent space.

Images of any size are read the way training reads them (Pillow: EXIF orientation, alpha on
white) and resized to the model's side; what comes out is at the model's side. Attribute
editing (:func:`edit`) encodes an image, moves its latent along the difference of two classes'
mean latents (``amount`` 0: the reconstruction; 1: the whole way from class A's mean to B's),
and decodes it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from kerastl import conditional
from kerastl.conditional import class_index, class_labels, run_classes
from kerastl.data.generative import generative_splits
from kerastl.data.images import BadImage, load_image
from kerastl.errors import DataError, KerastlError
from kerastl.latents import lerp, slerp
from kerastl.report import png_bytes, save_image_grid, square_grid
from kerastl.runs import atomic_write, check_output_file
from kerastl.vae.model import VAE
from kerastl.vae.model import load_vae


@dataclasses.dataclass
class Edited:
    """An input image and what was written for it."""

    source: Path
    output: Path


def read_images(vae: VAE, files) -> np.ndarray:
    """uint8 images at the model's side and channels; an unreadable file is one line."""
    files = [Path(f) for f in files]
    if not files:
        raise DataError("no images given")
    size, channels = vae.image_shape[0], vae.image_shape[-1]
    images = []
    for path in files:
        try:
            images.append(load_image(path, (size, size)))
        except (BadImage, OSError) as exc:
            raise DataError(f"{path} cannot be read as an image ({exc})") from None
    pixels = np.stack(images)
    return pixels[..., :1] if channels == 1 else pixels


def sample(run, count: int, out, seed: int = 0, overwrite: bool = False,
           class_name: str | None = None) -> Path:
    """A grid PNG of ``count`` samples from the fixed latent batch of ``seed`` (of class
    ``class_name``; a conditional model without one cycles through its classes)."""
    vae = load_vae(run)
    path = check_output_file(out, overwrite, option="--out")
    labels = class_labels(run, vae, class_name, count, required=False)
    images = vae.sample(count, seed, labels)
    return save_image_grid(square_grid(images), path, cell=max(images.shape[1], 64))


def sample_folders(run, per_class: int, out_dir, seed: int = 0,
                   overwrite: bool = False) -> dict[str, int]:
    """:func:`kerastl.conditional.sample_folders` for the VAE of ``run``."""
    return conditional.sample_folders(run, load_vae(run), per_class, out_dir, seed, overwrite)


def reconstruct(run, files, out_dir, overwrite: bool = False,
                class_name: str | None = None) -> list[Edited]:
    """Each image through the posterior mean and back, as ``OUT/NAME.png``, and a grid of
    originals above reconstructions as ``OUT/reconstructions.png``."""
    vae = load_vae(run)
    images = read_images(vae, files)
    labels = class_labels(run, vae, class_name, len(images))
    return _write(files, images, vae.reconstruct(images, labels), out_dir, overwrite,
                  "reconstructions.png")


def edit(run, files, out_dir, *, data: str | None, source_class: str, target_class: str,
         amount: float = 1.0, overwrite: bool = False, per_class: int = 200,
         seed: int = 0) -> list[Edited]:
    """Move each image from ``source_class`` towards ``target_class`` by ``amount``; writes
    ``OUT/NAME.png`` and ``OUT/before_after.png``. An unconditional model moves the latent
    along the difference of the two classes' mean latents in ``data``; a conditional one
    keeps the latent and swaps the label (``amount`` blends the two one-hot labels)."""
    vae = load_vae(run)
    images = read_images(vae, files)
    if vae.num_classes:
        names = run_classes(run)
        source, target = (np.eye(len(names), dtype=np.float32)[class_index(names, c)]
                          for c in (source_class, target_class))
        latents = vae.encode(images, np.tile(source, (len(images), 1)))[0]
        blend = np.tile((1 - amount) * source + amount * target, (len(images), 1))
        return _write(files, images, vae.generate(latents, blend), out_dir, overwrite,
                      "before_after.png")
    if data is None:
        raise KerastlError("an unconditional VAE edits along class means: give --data, whose "
                           "classes --from and --to name")
    direction = class_mean(vae, data, target_class, per_class, seed) - \
        class_mean(vae, data, source_class, per_class, seed)
    latents = vae.encode(images)[0] + amount * direction
    return _write(files, images, vae.generate(latents), out_dir, overwrite, "before_after.png")


def class_mean(vae: VAE, data: str, name: str, per_class: int = 200, seed: int = 0):
    """The mean posterior mean of up to ``per_class`` images of class ``name`` of ``data``."""
    size, channels = vae.image_shape[0], vae.image_shape[-1]
    try:
        split = generative_splits(data, size, seed=seed, channels=channels, classes=[name],
                                  per_class=per_class)["train"]
    except KeyError:
        raise DataError(f"{data} has no images of class {name!r}") from None
    images = np.asarray(split.data.images)[..., :channels]
    return vae.encode(images)[0].mean(axis=0)


def interpolate(run, out, *, files=(), steps: int = 10, rows: int = 4, seed: int = 0,
                spherical: bool = True, overwrite: bool = False) -> Path:
    """A grid whose every row walks the latent space: between two given images (their
    posterior means) or, without ``files``, between random points of the prior."""
    if steps < 2:
        raise KerastlError(f"--steps must be at least 2. Received: {steps}")
    vae = load_vae(run)
    path = check_output_file(out, overwrite, inputs=files, option="--out")
    if files:
        if len(files) != 2:
            raise KerastlError(f"interpolation takes two images. Received: {len(files)}")
        ends, rows = vae.encode(read_images(vae, files))[0], 1
    else:
        ends = vae.latents(2 * rows, seed)
    walk = slerp if spherical else lerp
    latents = np.concatenate([walk(ends[2 * r], ends[2 * r + 1], steps) for r in range(rows)])
    images = vae.generate(latents)
    images = np.repeat(images, 3, axis=-1) if images.shape[-1] == 1 else images
    return save_image_grid([list(images[r * steps:(r + 1) * steps]) for r in range(rows)],
                           path, cell=max(images.shape[1], 64))


def _write(files, before: np.ndarray, after: np.ndarray, out_dir, overwrite: bool,
           grid_name: str) -> list[Edited]:
    out = Path(out_dir)
    paths = [check_output_file(out / f"{Path(f).stem}.png", overwrite, inputs=files,
                               option="--out") for f in files]
    grid = check_output_file(out / grid_name, overwrite, inputs=files, option="--out")
    if len(set(paths)) != len(paths):
        raise KerastlError("two inputs share a file name: their outputs would collide")
    out.mkdir(parents=True, exist_ok=True)
    for image, path in zip(after, paths):
        atomic_write(path, png_bytes(image))
    rows = [np.repeat(r, 3, axis=-1) if r.shape[-1] == 1 else r for r in (before, after)]
    save_image_grid([list(r) for r in rows], grid, cell=max(before.shape[1], 64))
    return [Edited(Path(f), p) for f, p in zip(files, paths)]
