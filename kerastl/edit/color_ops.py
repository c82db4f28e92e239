"""Differentiable global colour adjustments, each undone by negating its parameter.

Images are float tensors in [0, 1], shape ``(..., H, W, 3)``; parameters are a
``(..., 6)`` tensor in the order of :data:`ADJUSTMENTS`. Every adjustment is a
multiplicative or exponent change written so that parameter ``p`` is undone by
``-p``; :func:`invert` applies the negated parameters in reverse order, which
undoes :func:`adjust` exactly as long as nothing was clipped in between.

=============  ============  ======================================================
adjustment     range         what ``p`` does
=============  ============  ======================================================
temperature    [-0.3, 0.3]   red x e^p, blue x e^-p (warmer for p > 0)
tint           [-0.2, 0.2]   green x e^p (greener for p > 0, magenta for p < 0)
exposure       [-1.0, 1.0]   every channel x 2^p (p in stops)
contrast       [-0.5, 0.5]   distance from the mean luminance x e^p
saturation     [-0.7, 0.7]   distance from each pixel's luminance x e^p
gamma          [-0.4, 0.4]   x -> x^(e^p) (darker mid-tones for p > 0)
=============  ============  ======================================================

Contrast keeps the image's mean luminance and saturation keeps each pixel's
luminance, which is what makes them exactly invertible.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from kerastl._tf import tensorflow

#: Rec. 709 / sRGB luminance weights.
LUMA = (0.2126, 0.7152, 0.0722)


@dataclasses.dataclass(frozen=True)
class Adjustment:
    name: str
    limit: float
    doc: str


ADJUSTMENTS = (
    Adjustment("temperature", 0.3, "red x e^p, blue x e^-p"),
    Adjustment("tint", 0.2, "green x e^p"),
    Adjustment("exposure", 1.0, "x 2^p (stops)"),
    Adjustment("contrast", 0.5, "distance from mean luminance x e^p"),
    Adjustment("saturation", 0.7, "distance from pixel luminance x e^p"),
    Adjustment("gamma", 0.4, "x^(e^p)"),
)
NAMES = tuple(a.name for a in ADJUSTMENTS)
LIMITS = np.array([a.limit for a in ADJUSTMENTS], dtype=np.float32)


def adjust(images, params):
    """Apply the six adjustments with ``params`` (natural units) in table order; no clipping."""
    tf = tensorflow()
    images = tf.convert_to_tensor(images, tf.float32)
    params = tf.convert_to_tensor(params, tf.float32)
    for index, op in enumerate(_OPS):
        images = op(images, _param(params, index))
    return images


def invert(images, params):
    """Undo :func:`adjust` with the same ``params``: negated, in reverse order."""
    tf = tensorflow()
    images = tf.convert_to_tensor(images, tf.float32)
    params = tf.convert_to_tensor(params, tf.float32)
    for index in reversed(range(len(_OPS))):
        images = _OPS[index](images, -_param(params, index))
    return images


def degrade(clean, params):
    """0-255 clean images -> adjusted, clipped and rounded as an 8-bit file would hold them
    (float32, 0-255)."""
    tf = tensorflow()
    adjusted = adjust(tf.cast(clean, tf.float32) / 255.0, params)
    return tf.round(tf.clip_by_value(adjusted, 0.0, 1.0) * 255.0)


def random_params(count: int, seed: int | None = None, strength: float = 1.0) -> np.ndarray:
    """``count`` parameter vectors drawn uniformly within each range (times ``strength``)."""
    rng = np.random.default_rng(seed)
    return (rng.uniform(-1.0, 1.0, (count, len(ADJUSTMENTS))) * LIMITS * strength) \
        .astype(np.float32)


def luminance(images):
    tf = tensorflow()
    return tf.reduce_sum(images * tf.constant(LUMA, images.dtype), axis=-1, keepdims=True)


def _param(params, index):
    """Parameter ``index`` shaped to broadcast over ``(..., H, W, C)``."""
    return params[..., index][..., None, None, None]


def _gains(images, red, green, blue):
    tf = tensorflow()
    return images * tf.concat([red, green, blue], axis=-1)


def _temperature(images, p):
    tf = tensorflow()
    return _gains(images, tf.exp(p), tf.ones_like(p), tf.exp(-p))


def _tint(images, p):
    tf = tensorflow()
    return _gains(images, tf.ones_like(p), tf.exp(p), tf.ones_like(p))


def _exposure(images, p):
    tf = tensorflow()
    return images * tf.pow(2.0, p)


def _contrast(images, p):
    tf = tensorflow()
    mean = tf.reduce_mean(luminance(images), axis=(-3, -2, -1), keepdims=True)
    return (images - mean) * tf.exp(p) + mean


def _saturation(images, p):
    tf = tensorflow()
    gray = luminance(images)
    return (images - gray) * tf.exp(p) + gray


def _gamma(images, p):
    """Sign-preserving power, so values pushed below 0 by contrast map back too."""
    tf = tensorflow()
    magnitude = tf.maximum(tf.abs(images), 1e-6)
    return tf.sign(images) * tf.pow(magnitude, tf.exp(p))


_OPS = (_temperature, _tint, _exposure, _contrast, _saturation, _gamma)
