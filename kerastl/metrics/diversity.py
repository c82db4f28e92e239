"""How varied a batch of images is, to catch a generator that collapses while it trains.

A collapsed GAN gives many copies of one image or one texture while its losses still move.
The figure here needs no feature extractor, so it costs nothing per epoch and works offline:
the mean pairwise Euclidean distance between images average-pooled to 8x8 (fine textures
average out; shapes, layout and colour remain), in pixel units of [0, 1]. It is read against
the same figure for real images: ``diversity_ratio`` near 1 is as varied as the data, near 0
is one image repeated.
"""

from __future__ import annotations

import numpy as np

#: The side images are pooled to before distances are taken.
POOLED_SIDE = 8
#: Below this share of the real images' diversity, samples count as collapsed.
COLLAPSE_BELOW = 0.25
#: Training steps before alike samples count as collapse: an untrained generator's samples
#: all look alike (measured on a DCGAN: 0.06-0.12 of the real images' diversity after 38-156
#: steps, 0.88-1.0 after 312).
COLLAPSE_MIN_STEPS = 300


def sample_diversity(images: np.ndarray, side: int = POOLED_SIDE) -> float:
    """Mean pairwise distance of uint8 ``images`` (N, H, W, C), pooled to ``side`` x ``side``."""
    pooled = _pooled(np.asarray(images, np.float64) / 255.0, side).reshape(len(images), -1)
    if len(pooled) < 2:
        raise ValueError("diversity needs at least 2 images")
    # Differences taken directly, not as |a|^2 + |b|^2 - 2ab: that form cancels to rounding
    # noise (3e-8, varying with the BLAS's summation order) where images are equal.
    pairs = np.concatenate([np.linalg.norm(pooled[i + 1:] - pooled[i], axis=1)
                            for i in range(len(pooled) - 1)])
    return float(pairs.mean())


def diversity_ratio(samples: np.ndarray, real: np.ndarray) -> float:
    """``sample_diversity(samples) / sample_diversity(real)``."""
    return sample_diversity(samples) / max(sample_diversity(real), 1e-12)


def _pooled(images: np.ndarray, side: int) -> np.ndarray:
    """Average pooling to ``side`` x ``side`` (the image side divisible by ``side``: 32, 64,
    128 and 28 -> 7 are; others are cropped to the nearest multiple)."""
    count, height, width, channels = images.shape
    side = min(side, height, width)
    rows, cols = height // side, width // side
    cropped = images[:, :rows * side, :cols * side]
    return cropped.reshape(count, side, rows, side, cols, channels).mean(axis=(2, 4))
