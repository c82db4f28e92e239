"""One affine warp for mirror, rotation, zoom and shift: its geometry and its randomness."""

import math

import numpy as np
import pytest

from kerastl._tf import keras_module
from kerastl.data.affine import RandomAffine, affine_matrices

keras = keras_module()


@pytest.fixture
def image():
    return np.random.default_rng(0).uniform(0, 255, (1, 9, 9, 3)).astype(np.float32)


def warp(image, angle=0.0, scale=1.0, mirror=1.0, shift_x=0.0, shift_y=0.0):
    one = lambda value: np.array([value], np.float32)  # noqa: E731
    matrix = affine_matrices(one(angle), one(scale), one(mirror), one(shift_x), one(shift_y),
                             image.shape[1], image.shape[2])
    return keras.ops.convert_to_numpy(keras.ops.image.affine_transform(
        image, matrix, interpolation="bilinear", fill_mode="constant"))


def test_mirror_is_exactly_a_left_right_flip(image):
    np.testing.assert_allclose(warp(image, mirror=-1.0), image[:, :, ::-1], atol=1e-3)


def test_quarter_turn_is_exactly_a_rotation_about_the_centre(image):
    turned = warp(image, angle=math.pi / 2)
    assert any(np.allclose(turned[0], np.rot90(image[0], k), atol=1e-3) for k in (1, 3))


def test_whole_pixel_shift_moves_content_and_fills_with_black(image):
    shifted = warp(image, shift_x=2.0)
    np.testing.assert_allclose(shifted[:, :, :-2], image[:, :, 2:], atol=1e-3)
    assert np.all(shifted[:, :, -2:] == 0)


def test_zoom_keeps_the_centre_and_magnifies_around_it(image):
    zoomed = warp(image, scale=0.5)  # each output pixel reads half as far from the centre
    np.testing.assert_allclose(zoomed[0, 4, 4], image[0, 4, 4], atol=1e-3)
    np.testing.assert_allclose(zoomed[0, 4, 6], image[0, 4, 5], atol=1e-3)


def test_layer_draws_a_warp_per_image_and_passes_through_outside_training(image):
    batch = np.repeat(image, 8, axis=0)
    layer = RandomAffine(seed=3)
    out = keras.ops.convert_to_numpy(layer(batch, training=True))
    assert out.shape == batch.shape
    assert len({out[i].tobytes() for i in range(8)}) == 8  # one draw per image
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(batch, training=False)),
                                  batch)
    again = keras.ops.convert_to_numpy(RandomAffine(seed=3)(batch, training=True))
    np.testing.assert_array_equal(out, again)  # seeded: the same draws
