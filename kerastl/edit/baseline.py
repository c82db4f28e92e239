"""The classical colour correction a learned one must beat: gray-world, then autocontrast."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageOps


def gray_world(image: np.ndarray) -> np.ndarray:
    """Scale each channel so that its mean equals the mean of all three (uint8 in and out)."""
    pixels = image.astype(np.float64)
    means = pixels.reshape(-1, 3).mean(axis=0)
    gains = means.mean() / np.maximum(means, 1e-6)
    return np.clip(pixels * gains, 0, 255).round().astype(np.uint8)


def classical_correction(image: np.ndarray, cutoff: float = 0.5) -> np.ndarray:
    """Gray-world white balance, then Pillow's ``ImageOps.autocontrast`` (``cutoff`` % clipped)."""
    balanced = Image.fromarray(gray_world(image))
    return np.asarray(ImageOps.autocontrast(balanced, cutoff=cutoff), dtype=np.uint8)
