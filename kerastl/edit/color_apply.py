"""Correct image files at full resolution with a trained colour model.

The model sees a resized copy; the parameters it finds are applied to the
original pixels, so the output keeps the input's size, format, EXIF and ICC
profile (where Pillow can write them), and alpha channel.
"""

from __future__ import annotations

import dataclasses
import io
import logging
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from kerastl.data.images import MAX_PIXELS, BadImage
from kerastl.edit import color_ops
from kerastl.edit.color_eval import correct, predict_params
from kerastl.errors import KerastlError
from kerastl.runs import COLOR_JOB, atomic_write, load_keras_model, require_job, resolve_model_file

log = logging.getLogger("kerastl")

#: Formats written back as they came; anything else is written as PNG.
KEPT_FORMATS = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "TIFF": ".tif", "BMP": ".bmp"}


@dataclasses.dataclass
class Corrected:
    source: Path
    output: Path
    params: dict[str, float]


def load_color_model(run_or_model: str | Path):
    """The colour model of a run directory (``model.keras``) or a model file."""
    from kerastl.edit import color_model  # noqa: F401 - registers its layers for loading

    require_job(run_or_model, (COLOR_JOB,), "kerastl edit color")
    model = load_keras_model(resolve_model_file(run_or_model), compile=False)
    if tuple(model.output_shape[1:]) != (len(color_ops.ADJUSTMENTS),):
        raise KerastlError(f"{run_or_model} is not a colour-correction model (its output is "
                           f"{model.output_shape}); train one with 'kerastl edit train-color'")
    return model


def correct_files(run_or_model: str | Path, paths: Sequence[str | Path], out_dir: str | Path,
                  *, strength: float = 1.0, overwrite: bool = False) -> list[Corrected]:
    """Correct each image file into ``out_dir`` (same name); never over an input or an
    existing file unless ``overwrite``."""
    model = load_color_model(run_or_model)
    out_dir = Path(out_dir)
    sources = [Path(p) for p in paths]
    targets = [_target(out_dir, source) for source in sources]
    _check_targets(sources, targets, overwrite)
    out_dir.mkdir(parents=True, exist_ok=True)
    done = []
    for source, target in zip(sources, targets):
        with _open(source) as image:
            rgb, alpha = _split_alpha(image)
            params = predict_params(model, [rgb])[0]
            fixed = correct(rgb, params, strength)
            atomic_write(target, _encode(fixed, alpha, image))
        done.append(Corrected(source, target, dict(zip(color_ops.NAMES, map(float, params)))))
        log.info("%s -> %s", source, target)
    return done


def _target(out_dir: Path, source: Path) -> Path:
    """Same name; formats kerastl does not write back (GIF, ...) become PNG."""
    kept = source.suffix.lower() in (*KEPT_FORMATS.values(), ".jpeg", ".tiff")
    return out_dir / (source.name if kept else source.with_suffix(".png").name)


def _check_targets(sources: list[Path], targets: list[Path], overwrite: bool) -> None:
    for source in sources:
        if not source.is_file():
            raise KerastlError(f"no such image file: {source}")
    resolved = {s.resolve() for s in sources}
    for target in targets:
        if target.resolve() in resolved:
            raise KerastlError(f"{target} is one of the inputs: pick an --out folder that is "
                               "not the images' own")
        if target.exists() and not overwrite:
            raise KerastlError(f"{target} exists: pass --overwrite to replace it")
    if len(set(targets)) < len(targets):
        raise KerastlError("two inputs share a file name; they would land on the same output")


def _open(path: Path) -> Image.Image:
    try:
        image = Image.open(path)
        if image.width * image.height > MAX_PIXELS:
            raise BadImage("too many pixels", f"{image.width}x{image.height}")
        image.load()
        return image
    except (OSError, ValueError, BadImage, Image.DecompressionBombError) as exc:
        raise KerastlError(f"cannot read {path} as an image: {exc}") from None


def _split_alpha(image: Image.Image) -> tuple[np.ndarray, Image.Image | None]:
    """The RGB pixels as stored (no EXIF rotation: colour is global) and any alpha channel."""
    alpha = image.getchannel("A") if "A" in image.getbands() else None
    return np.asarray(image.convert("RGB"), dtype=np.uint8), alpha


def _encode(pixels: np.ndarray, alpha: Image.Image | None, original: Image.Image) -> bytes:
    """Encode in the original's format with its metadata where Pillow can write it."""
    result = Image.fromarray(pixels)
    if alpha is not None:
        result.putalpha(alpha)
    fmt = original.format if original.format in KEPT_FORMATS else "PNG"
    options = {key: original.info[key] for key in ("exif", "icc_profile", "dpi")
               if key in original.info}
    if fmt == "JPEG":
        result = result.convert("RGB")
        options.update(quality=95, subsampling=0)
    buffer = io.BytesIO()
    result.save(buffer, format=fmt, **options)
    return buffer.getvalue()
