"""Mirror, rotation, zoom and translation drawn per image and applied as ONE affine warp.

Keras' ``RandomFlip``, ``RandomRotation``, ``RandomZoom`` and ``RandomTranslation`` in a
row resample every image three times (one projective transform each); composing the four
maps first and warping once does the same geometry for a third of the work and blurs once
instead of three times. That is kerastl's ``light`` augmentation.
"""

from __future__ import annotations

import math

from kerastl._tf import keras_module

keras = keras_module()
ops = keras.ops


class RandomAffine(keras.layers.Layer):
    """Per image: mirror (probability 1/2), rotate by up to ``rotation`` of a full turn,
    zoom by a factor in ``1 +- zoom`` and shift by up to ``translation`` of the height and
    width, about the image centre, in one bilinear warp (``fill_mode`` as Keras' layers).

    Images are a batch ``(N, H, W, C)`` of floats; outside training they pass unchanged.
    """

    def __init__(self, rotation: float = 0.05, zoom: float = 0.1, translation: float = 0.1,
                 flip: bool = True, fill_mode: str = "reflect", seed: int | None = None,
                 **kwargs):
        super().__init__(**kwargs)
        self.rotation, self.zoom, self.translation = rotation, zoom, translation
        self.flip, self.fill_mode, self.seed = flip, fill_mode, seed
        self.generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=True):
        if not training:
            return images
        shape = ops.shape(images)
        batch, height, width = shape[0], shape[1], shape[2]
        return ops.image.affine_transform(images, self.draw(batch, height, width),
                                          interpolation="bilinear", fill_mode=self.fill_mode)

    def draw(self, batch, height, width):
        """``batch`` random warps as Keras' 8-number transforms (output pixel -> input)."""
        def uniform(low, high):
            return keras.random.uniform((batch,), low, high, seed=self.generator)

        angle = uniform(-self.rotation, self.rotation) * 2.0 * math.pi
        scale = 1.0 + uniform(-self.zoom, self.zoom)
        mirror = ops.where(uniform(0.0, 1.0) < 0.5, -1.0, 1.0) if self.flip \
            else ops.ones((batch,))
        shift_x = uniform(-self.translation, self.translation) * ops.cast(width, "float32")
        shift_y = uniform(-self.translation, self.translation) * ops.cast(height, "float32")
        return affine_matrices(angle, scale, mirror, shift_x, shift_y, height, width)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "rotation": self.rotation, "zoom": self.zoom,
                "translation": self.translation, "flip": self.flip,
                "fill_mode": self.fill_mode, "seed": self.seed}


def affine_matrices(angle, scale, mirror, shift_x, shift_y, height, width):
    """Transforms (``(N, 8)``, Keras' ``affine_transform`` layout: output ``(x, y)`` reads
    input ``(a0 x + a1 y + a2, b0 x + b1 y + b2)``) that mirror (``mirror`` -1), rotate by
    ``angle`` radians and scale by ``scale`` about the centre, then shift by ``shift_x``,
    ``shift_y`` pixels; one value per image in each argument."""
    centre_x = (ops.cast(width, "float32") - 1.0) / 2.0
    centre_y = (ops.cast(height, "float32") - 1.0) / 2.0
    cos, sin = ops.cos(angle) * scale, ops.sin(angle) * scale
    a0, a1 = cos * mirror, -sin
    b0, b1 = sin * mirror, cos
    a2 = centre_x - a0 * centre_x - a1 * centre_y + shift_x
    b2 = centre_y - b0 * centre_x - b1 * centre_y + shift_y
    zeros = ops.zeros_like(angle)
    return ops.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)
