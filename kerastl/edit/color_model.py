"""The colour-correction model: a backbone that regresses the adjustments to undo.

The saved model maps a uint8-range image at the model's size to six adjustment
parameters (natural units, :mod:`kerastl.edit.color_ops`); correcting an image
is :func:`~kerastl.edit.color_ops.invert` with them, at any resolution.
Training wraps it so that the corrected image is an output too, and the loss
sees both the parameters and the image (L1 in Lab).
"""

from __future__ import annotations

from kerastl._tf import keras_module, tensorflow
from kerastl.edit import color_ops
from kerastl.colorspace import rgb_to_lab
from kerastl.task import build_task

keras = keras_module()

#: The trainer's outputs: the parameters found and the corrected image.
PARAMS, IMAGE = "params", "corrected"


@keras.saving.register_keras_serializable(package="kerastl")
class ScaleToRanges(keras.layers.Layer):
    """tanh outputs in [-1, 1] -> parameters within each adjustment's range."""

    def call(self, inputs):
        return inputs * keras.ops.convert_to_tensor(color_ops.LIMITS, inputs.dtype)


@keras.saving.register_keras_serializable(package="kerastl")
class ColorStatistics(keras.layers.Layer):
    """Per-channel mean, spread and 5/50/95th percentiles of an image in 0-255, scaled to 0-1.

    Global levels are what colour correction is about; handing them to the
    head directly spares the backbone from learning to measure them.
    """

    QUANTILES = (0.05, 0.5, 0.95)

    def call(self, images):
        tf = tensorflow()
        pixels = tf.cast(images, "float32") / 255.0
        flat = tf.reshape(pixels, (tf.shape(pixels)[0], -1, 3))
        ordered = tf.sort(flat, axis=1)
        count = tf.cast(tf.shape(flat)[1] - 1, "float32")
        picks = [ordered[:, tf.cast(tf.round(q * count), "int32"), :] for q in self.QUANTILES]
        mean, spread = tf.reduce_mean(flat, axis=1), tf.math.reduce_std(flat, axis=1)
        return tf.concat([mean, spread, *picks], axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 3 * (2 + len(self.QUANTILES)))


@keras.saving.register_keras_serializable(package="kerastl")
class ApplyCorrection(keras.layers.Layer):
    """(image 0-255, parameters) -> the corrected image in [0, 1]."""

    def call(self, images, params):
        images = keras.ops.cast(images, "float32") / 255.0
        return keras.ops.clip(color_ops.invert(images, params), 0.0, 1.0)

    def compute_output_shape(self, images_shape, params_shape):
        return images_shape


@keras.saving.register_keras_serializable(package="kerastl")
def normalized_param_loss(y_true, y_pred):
    """Mean squared error of the parameters, each divided by its range limit."""
    limits = keras.ops.convert_to_tensor(color_ops.LIMITS, "float32")
    return keras.ops.mean(keras.ops.square((y_true - y_pred) / limits), axis=-1)


@keras.saving.register_keras_serializable(package="kerastl")
def lab_l1_loss(y_true, y_pred):
    """Mean absolute Lab difference per image, divided by 100 (the range of L)."""
    difference = keras.ops.abs(rgb_to_lab(y_true) - rgb_to_lab(y_pred)) / 100.0
    return keras.ops.mean(difference, axis=(1, 2, 3))


def build_predictor(backbone, *, hidden: int = 128, dropout: float = 0.1):
    """The colour task (:func:`kerastl.task.build_task`): the pooled features of the backbone
    beside the image's colour statistics -> Dense -> six parameters.

    ``backbone`` is a :class:`~kerastl.transfer.model.ResolvedBackbone`.
    """
    def head(features, image):
        x = keras.layers.Concatenate(name="features")(
            [features, ColorStatistics(name="statistics")(image)])
        x = keras.layers.Dense(hidden, activation="relu", name="head_hidden")(x)
        x = keras.layers.Dense(len(color_ops.ADJUSTMENTS), activation="tanh", dtype="float32",
                               name="params_unit")(x)
        return ScaleToRanges(dtype="float32", name=PARAMS)(x)

    return build_task(backbone, head, dropout=dropout, name=f"{backbone.meta.name}_color")


def build_trainer(predictor):
    """Wrap ``predictor`` so the corrected image is an output beside the parameters."""
    inputs = keras.Input(predictor.input_shape[1:], name="degraded")
    params = predictor(inputs)
    corrected = ApplyCorrection(dtype="float32", name=IMAGE)(inputs, params)
    named_params = keras.layers.Identity(name=PARAMS)(params)
    return keras.Model(inputs, {PARAMS: named_params, IMAGE: corrected}, name="color_trainer")
