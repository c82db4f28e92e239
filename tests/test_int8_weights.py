"""int8 weights chosen on calibration images: patches as the convolution sees them, adaptive
rounding, bias correction, and the converter keeping the chosen rounding."""

import keras
import numpy as np
import pytest

from kerastl.export.int8_weights import (adaptive_rounding, correction_targets,
                                         int8_weight_calibration, patch_sum, sample_patches)
from kerastl.export.tflite import convert, int8_exact_rescaling


@pytest.mark.parametrize("size,kernel,stride,padding", [
    (9, 3, 2, "same"), (8, 3, 2, "same"), (8, 5, 1, "same"), (9, 3, 1, "valid"),
    (10, 1, 1, "same"), (8, 3, 2, "valid")])
def test_patches_are_what_the_convolution_sees(size, kernel, stride, padding):
    """Even sizes with stride 2 pad one more row at the bottom (TensorFlow's 'same')."""
    images = np.random.default_rng(size).normal(size=(2, size, size, 3)).astype(np.float32)
    conv = keras.layers.Conv2D(4, kernel, strides=stride, padding=padding, use_bias=False)
    outputs = np.asarray(conv(images)).reshape(-1, 4)
    weights = np.asarray(conv.kernel).reshape(-1, 4)
    sampled = sample_patches(images, (kernel, kernel), (stride, stride), padding, 20,
                             np.random.default_rng(1)) @ weights
    assert all(np.isclose(outputs, row, atol=1e-4).all(axis=1).any() for row in sampled)
    total, positions = patch_sum(images, (kernel, kernel), (stride, stride), padding)
    assert positions == len(outputs)
    np.testing.assert_allclose(total @ weights / positions, outputs.mean(axis=0), atol=1e-5)


def test_per_channel_patches_are_the_same_patches_regrouped():
    images = np.random.default_rng(0).normal(size=(3, 7, 7, 5)).astype(np.float32)
    flat = sample_patches(images, (3, 3), (2, 2), "same", 11, np.random.default_rng(4))
    grouped = sample_patches(images, (3, 3), (2, 2), "same", 11, np.random.default_rng(4),
                             per_channel=True)
    np.testing.assert_array_equal(flat.reshape(33, 9, 5).transpose(2, 0, 1), grouped)


def test_adaptive_rounding_only_floors_or_ceils_and_never_does_worse():
    rng = np.random.default_rng(0)
    steps = rng.uniform(-127, 127, (16, 9))
    steps[:, 0] = 127.0  # each channel's largest weight fixes its step
    patches = rng.normal(size=(500, 9)) + rng.normal(size=9)  # correlated, non-zero mean
    moment = patches.T @ patches / len(patches)
    nearest = np.sign(steps) * np.floor(np.abs(steps) + 0.5)
    chosen = adaptive_rounding(steps, nearest, moment)

    def objective(rounded):
        error = rounded - steps
        return np.einsum("ci,ij,cj->c", error, moment, error)

    assert np.all((chosen == np.floor(steps)) | (chosen == np.ceil(steps)))
    assert np.all(chosen[:, 0] == 127) and np.abs(chosen).max() <= 127
    assert np.all(objective(chosen) <= objective(nearest) + 1e-9)
    assert objective(chosen).sum() < 0.8 * objective(nearest).sum()


def _edge_model(kind: str):
    """One convolution with large weights that nearly cancel (as EfficientNet-Lite's stem and
    first depthwise layer have), then what absorbs its bias; linear, so the mean error shows."""
    rng = np.random.default_rng(1)
    inputs = keras.Input((12, 12, 3))
    if kind == "depthwise":
        conv = keras.layers.DepthwiseConv2D(3, strides=2, padding="same", use_bias=False)
    else:
        conv = keras.layers.Conv2D(6, 3, strides=2 if kind == "conv" else 1, padding="same",
                                   use_bias=kind == "conv_bias")
    x = conv(inputs)
    if kind != "conv_bias":
        x = keras.layers.BatchNormalization(epsilon=1e-3)(x)
    model = keras.Model(inputs, x)
    kernel = rng.normal(size=conv.kernel.shape).astype(np.float32)
    kernel -= kernel.mean(axis=(0, 1), keepdims=True)  # edge filters: weights sum to ~0
    conv.kernel.assign(kernel * 20)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            channels = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 3, channels), rng.normal(size=channels),
                               rng.normal(size=channels), rng.uniform(0.1, 2, channels)])
    return model, conv


@pytest.mark.parametrize("kind", ["conv", "depthwise", "conv_bias"])
def test_calibrated_weights_are_on_the_int8_grid_and_carry_no_mean_error(kind):
    model, conv = _edge_model(kind)
    images = np.random.default_rng(2).uniform(0, 6, (8, 12, 12, 3)).astype(np.float32)
    reference = np.asarray(model(images))
    kernel, variables = np.asarray(conv.kernel), [np.asarray(v) for v in model.weights]
    [target] = correction_targets(model)
    assert (target.batch_norm is None) == (kind == "conv_bias")

    with int8_weight_calibration(model, [images[:4], images[4:]]) as changed:
        assert changed == 1
        weights = target.weights_per_channel()
        steps = weights / (np.abs(weights).max(axis=1, keepdims=True) / 127)
        np.testing.assert_allclose(steps, np.round(steps), atol=1e-3)  # on the int8 grid
        assert not np.allclose(np.asarray(conv.kernel), kernel)
        error = np.asarray(model(images)) - reference
        # the bias absorbed the rounding's mean error over the calibration images
        assert np.abs(error.mean(axis=(0, 1, 2))).max() < 1e-3 * np.abs(reference).mean()
        assert np.abs(error).max() > 1e-3 * np.abs(reference).mean()  # rounding did happen

    assert all(np.array_equal(np.asarray(v), w) for v, w in zip(model.weights, variables))


def test_only_a_convolution_whose_output_a_batch_norm_alone_reads_is_folded():
    inputs = keras.Input((8, 8, 3))
    shared = keras.layers.Conv2D(4, 3, padding="same", use_bias=False)(inputs)
    x = keras.layers.BatchNormalization()(shared)
    x = keras.layers.Add()([x, shared])  # the convolution's output is read twice: no folding
    dilated = keras.layers.Conv2D(4, 3, dilation_rate=2, padding="same")(x)
    model = keras.Model(inputs, dilated)
    assert correction_targets(model) == []


def _int8_weights(path, op_name: str) -> np.ndarray:
    import tensorflow as tf

    interpreter = tf.lite.Interpreter(model_path=str(path))
    op = next(op for op in interpreter._get_ops_details() if op["op_name"] == op_name)
    return interpreter.get_tensor(op["inputs"][1])


def test_the_converter_keeps_the_chosen_rounding(tmp_path):
    """The calibration works only if TFLite rounds folded weights as kerastl assumes (the
    channel's largest weight is 127 steps): without calibration its weights are the nearest
    rounding, with it they are exactly the chosen ones."""
    model, conv = _edge_model("depthwise")
    images = np.random.default_rng(3).uniform(0, 6, (16, 12, 12, 3)).astype(np.float32)
    representative = lambda: (image[None] for image in images)  # noqa: E731
    [target] = correction_targets(model)

    def grid(weights):
        return np.round(weights / (np.abs(weights).max(axis=1, keepdims=True) / 127))

    nearest = grid(target.weights_per_channel())
    with int8_weight_calibration(model, [images]):
        chosen = grid(target.weights_per_channel())
    assert not np.array_equal(chosen, nearest)
    for calibrate, expected in ((False, nearest), (True, chosen)):
        path = tmp_path / f"{calibrate}.tflite"
        path.write_bytes(convert(model, "int8", representative, calibrate_weights=calibrate))
        stored = _int8_weights(path, "DEPTHWISE_CONV_2D")  # (1, kh, kw, channels)
        np.testing.assert_array_equal(stored.reshape(-1, stored.shape[-1]).T, expected)


def _first_convolution_input(path, pixels) -> np.ndarray:
    """What an int8 TFLite model's first CONV_2D reads for ``pixels``, dequantized."""
    import tensorflow as tf

    interpreter = tf.lite.Interpreter(model_path=str(path), experimental_preserve_all_tensors=True)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], pixels)
    interpreter.invoke()
    op = next(op for op in interpreter._get_ops_details() if op["op_name"] == "CONV_2D")
    detail = interpreter.get_tensor_details()[op["inputs"][0]]
    scale, zero = detail["quantization"]
    return (interpreter.get_tensor(op["inputs"][0]).astype(np.float64) - zero) * scale


def test_int8_keeps_every_grey_level_through_rescaling(tmp_path):
    """EfficientNet-Lite's ``(x - 127) / 128`` as Keras computes it (``x / 128`` first) put
    the pixels on an int8 grid of 1.5 grey levels before the stem; rewritten, the stem reads
    every level exactly (an affine function of the pixels with no residual)."""
    pixels = np.random.default_rng(0).integers(0, 256, (1, 16, 16, 3)).astype(np.float32)
    pixels[0, 0, 0], pixels[0, 0, 1] = 0, 255
    inputs = keras.Input((16, 16, 3))
    rescaled = keras.layers.Rescaling(1 / 128, offset=-127 / 128)(inputs)
    model = keras.Model(inputs, keras.layers.Conv2D(4, 3, strides=2, padding="same",
                                                    use_bias=False)(rescaled))
    np.testing.assert_allclose(np.asarray(int8_exact_rescaling(pixels, 1 / 128, -127 / 128)),
                               np.asarray(model.layers[1](pixels)), atol=1e-6)
    path = tmp_path / "rescale.tflite"
    path.write_bytes(convert(model, "int8", lambda: iter([pixels])))
    seen = _first_convolution_input(path, pixels).ravel()
    slope, intercept = np.polyfit(pixels.ravel(), seen, 1)
    assert np.abs(seen - (slope * pixels.ravel() + intercept)).max() < 1e-3 * abs(slope)


def test_swapped_attributes_are_put_back_even_after_an_error():
    import keras

    from kerastl.export.swap import swapped

    layer = keras.layers.Dense(2, activation="relu")
    original = layer.activation
    with pytest.raises(RuntimeError):
        with swapped([(layer, "activation", abs), (layer, "call", lambda x: x)]) as count:
            assert count == 2 and layer.activation is abs and layer.call(3) == 3
            raise RuntimeError("converter failed")
    assert layer.activation is original
    assert "call" not in vars(layer) and layer.call.__func__ is keras.layers.Dense.call
