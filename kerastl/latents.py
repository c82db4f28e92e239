"""Latent vectors of the generative models: draws from the prior, walks between points."""

from __future__ import annotations

import numpy as np


def slerp(a: np.ndarray, b: np.ndarray, steps: int) -> np.ndarray:
    """Spherical interpolation from ``a`` to ``b`` (Gaussian latents live near a sphere)."""
    unit_a, unit_b = a / np.linalg.norm(a), b / np.linalg.norm(b)
    angle = np.arccos(np.clip(np.dot(unit_a, unit_b), -1.0, 1.0))
    weights = np.linspace(0.0, 1.0, steps)
    if angle < 1e-6:
        return np.stack([(1 - w) * a + w * b for w in weights]).astype(np.float32)
    return np.stack([(np.sin((1 - w) * angle) * a + np.sin(w * angle) * b) / np.sin(angle)
                     for w in weights]).astype(np.float32)


def lerp(a: np.ndarray, b: np.ndarray, steps: int) -> np.ndarray:
    """Linear interpolation from ``a`` to ``b`` in ``steps`` points, ends included."""
    weights = np.linspace(0.0, 1.0, steps, dtype=np.float32)[:, None]
    return ((1 - weights) * a + weights * b).astype(np.float32)


def prior_latents(count: int, dim: int, seed: int = 0) -> np.ndarray:
    """``count`` latent vectors from the standard normal prior (the same for the same seed)."""
    return np.random.default_rng(seed).standard_normal((count, dim)).astype(np.float32)
