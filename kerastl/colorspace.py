"""sRGB -> CIELAB (D65), differentiable in TensorFlow, for losses and colour metrics."""

from __future__ import annotations

from kerastl._tf import tensorflow

#: Linear sRGB -> XYZ (D65), rows X, Y, Z.
_RGB_TO_XYZ = ((0.4124564, 0.3575761, 0.1804375),
               (0.2126729, 0.7151522, 0.0721750),
               (0.0193339, 0.1191920, 0.9503041))
_WHITE_D65 = (0.95047, 1.0, 1.08883)


def srgb_to_linear(images):
    tf = tensorflow()
    images = tf.clip_by_value(images, 0.0, 1.0)
    return tf.where(images <= 0.04045, images / 12.92,
                    tf.pow((tf.maximum(images, 0.04045) + 0.055) / 1.055, 2.4))


def rgb_to_lab(images):
    """sRGB in [0, 1] (clipped) -> Lab with L in [0, 100]; last axis is the channel."""
    tf = tensorflow()
    linear = srgb_to_linear(tf.convert_to_tensor(images, tf.float32))
    xyz = tf.tensordot(linear, tf.constant(_RGB_TO_XYZ, tf.float32), axes=[[-1], [1]])
    xyz = xyz / tf.constant(_WHITE_D65, tf.float32)
    delta = 6.0 / 29.0
    f = tf.where(xyz > delta ** 3, tf.pow(tf.maximum(xyz, delta ** 3), 1.0 / 3.0),
                 xyz / (3 * delta ** 2) + 4.0 / 29.0)
    fx, fy, fz = f[..., 0], f[..., 1], f[..., 2]
    return tf.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], axis=-1)
