"""Decode any image file Pillow can read into 8-bit RGB at a fixed size.

Every path into a model (training, evaluation, ``predict``) decodes here, so
they all see the same pixels: EXIF orientation applied, first frame of an
animation, grayscale / palette / CMYK / 16-bit / alpha turned into 8-bit RGB,
and an antialiased bilinear resize.
"""

from __future__ import annotations

import collections
import dataclasses
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

#: Images with more pixels than this are refused before decoding (decompression bombs).
MAX_PIXELS = 64_000_000

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")

RESAMPLE = Image.Resampling.BILINEAR


class BadImage(Exception):
    """A file that is not a usable image; ``reason`` is a short category."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def load_image(path: str | Path, size: tuple[int, int] | None = None,
               max_pixels: int | None = None) -> np.ndarray:
    """Read ``path`` as a uint8 HxWx3 array, resized to ``size`` (height, width).

    Raises:
        BadImage: the file is empty, not an image, truncated, or beyond ``max_pixels``.
    """
    path = Path(path)
    max_pixels = max_pixels or MAX_PIXELS
    try:
        if path.stat().st_size == 0:
            raise BadImage("empty file")
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                if width * height > max_pixels:
                    raise BadImage("too many pixels", f"{width}x{height} > {max_pixels}")
                image.seek(0)
                image.load()
                return to_rgb_array(image, size)
    except BadImage:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise BadImage("too many pixels", str(exc)) from exc
    except Image.UnidentifiedImageError as exc:
        raise BadImage("not an image", str(exc)) from exc
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise BadImage("unreadable or truncated", str(exc)) from exc


def to_rgb_array(image: Image.Image, size: tuple[int, int] | None = None) -> np.ndarray:
    """Turn a Pillow image of any mode into a uint8 RGB array, optionally resized."""
    image = ImageOps.exif_transpose(image)
    image = _to_rgb(image)
    if size is not None and image.size != (size[1], size[0]):
        image = image.resize((size[1], size[0]), RESAMPLE, reducing_gap=None)
    return np.asarray(image, dtype=np.uint8)


def resize_array(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize one uint8 HxW or HxWxC array to RGB at ``size`` the way files are resized."""
    return to_rgb_array(Image.fromarray(pixels), size)


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if array.max() > 255 else 255.0
        image = Image.fromarray(np.clip(array / peak * 255.0, 0, 255).astype(np.uint8))
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image.convert("RGBA"), mask=image.convert("RGBA").getchannel("A"))
        return background
    return image.convert("RGB")


@dataclasses.dataclass
class SkippedFiles:
    """Files left out while loading, counted by reason and reported once."""

    by_reason: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    examples: dict = dataclasses.field(default_factory=dict)

    def add(self, path: Path, reason: str) -> None:
        self.by_reason[reason] += 1
        self.examples.setdefault(reason, str(path))

    @property
    def total(self) -> int:
        return sum(self.by_reason.values())

    def summary(self) -> str:
        """One line: how many files were skipped, why, and an example of each."""
        parts = [f"{count} {reason} (e.g. {self.examples[reason]})"
                 for reason, count in sorted(self.by_reason.items())]
        return f"skipped {self.total} bad file(s): " + "; ".join(parts)

    def as_dict(self) -> dict:
        return {"total": self.total, "by_reason": dict(self.by_reason)}
