"""Serializable layers kerastl puts inside its models."""

from __future__ import annotations

from kerastl._tf import keras_module

keras = keras_module()
ops = keras.ops

PREPROCESSING_MODES = ("caffe", "tf", "torch", "none")

_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
_TORCH_MEAN = (0.485, 0.456, 0.406)
_TORCH_STD = (0.229, 0.224, 0.225)


def _scaling_layer(mode: str, dtype):
    """The Keras layer that scales ``mode``'s pixels (None for ``none``)."""
    if mode == "tf":
        return keras.layers.Rescaling(1 / 127.5, offset=-1.0, dtype=dtype)
    if mode == "torch":  # (x / 255 - mean) / std
        return keras.layers.Normalization(
            mean=[255.0 * m for m in _TORCH_MEAN],
            variance=[(255.0 * s) ** 2 for s in _TORCH_STD], dtype=dtype)
    if mode == "caffe":
        return keras.layers.Normalization(mean=list(_CAFFE_MEAN_BGR), variance=[1.0] * 3,
                                          dtype=dtype)
    return None


@keras.saving.register_keras_serializable(package="kerastl")
class Preprocess(keras.layers.Layer):
    """Map RGB pixels in 0-255 to what a backbone expects.

    Modes follow ``keras.applications.imagenet_utils.preprocess_input``:
    ``caffe`` (BGR, mean subtracted: ResNet50, VGG), ``tf`` (-1..1: Inception,
    Xception, MobileNetV2, ResNetV2), ``torch`` (0..1, ImageNet mean/std:
    DenseNet), ``none`` (the backbone preprocesses inside: MobileNetV3,
    EfficientNetV2, ConvNeXt).

    Living inside the model, it makes training, ``predict`` and every export
    see the same preprocessing. The arithmetic is Keras' own layers (``Rescaling`` for
    ``tf``, ``Normalization`` with fixed statistics for ``torch`` and ``caffe``), which hold
    no variables: a saved model keeps only the mode.
    """

    def __init__(self, mode: str = "tf", **kwargs):
        super().__init__(**kwargs)
        if mode not in PREPROCESSING_MODES:
            raise ValueError(f"mode must be one of {PREPROCESSING_MODES}. Received: mode={mode!r}")
        self.mode = mode
        self.scale = _scaling_layer(mode, self.dtype_policy)

    def build(self, input_shape):
        # Built here, eagerly: Normalization turns its fixed statistics into tensors when it
        # builds, and built lazily inside this layer's symbolic call they would belong to a
        # scratch graph and be unusable after it ("out of scope").
        if self.scale is not None:
            self.scale.build(input_shape)

    def call(self, images):
        images = ops.cast(images, self.compute_dtype)
        if self.mode == "caffe":
            images = ops.flip(images, axis=-1)  # RGB -> BGR
        return images if self.scale is None else self.scale(images)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


@keras.saving.register_keras_serializable(package="kerastl")
class ConditionalBatchNorm(keras.layers.Layer):
    """BatchNorm whose scale and offset depend on the class: ``[features, one_hot_label]`` ->
    ``normalise(features) * gamma[label] + beta[label]`` (conditional BatchNorm, de Vries et al.
    2017, as in the generator of Miyato & Koyama's projection-discriminator GAN). The label
    then steers every block it sits in, not only the input. It starts as plain BatchNorm
    (every class's gamma 1, beta 0)."""

    def __init__(self, momentum: float = 0.99, synchronized: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.momentum = momentum
        self.norm = keras.layers.BatchNormalization(momentum=momentum, synchronized=synchronized,
                                                    center=False, scale=False, name="norm")

    def build(self, input_shape):
        features_shape, label_shape = input_shape
        self.norm.build(features_shape)
        shape = (label_shape[-1], features_shape[-1])
        self.gamma = self.add_weight(shape=shape, initializer="ones", name="gamma")
        self.beta = self.add_weight(shape=shape, initializer="zeros", name="beta")

    def call(self, inputs, training=None):
        features, label = inputs
        normalised = self.norm(features, training=training)
        label = ops.cast(label, normalised.dtype)
        gamma, beta = ops.matmul(label, self.gamma), ops.matmul(label, self.beta)
        for _ in range(len(normalised.shape) - 2):  # per channel, broadcast over the map
            gamma, beta = ops.expand_dims(gamma, 1), ops.expand_dims(beta, 1)
        return normalised * gamma + beta

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        # the inner layer's flag: kerastl.distribute.synchronize_batchnorm may have set it
        return {**super().get_config(), "momentum": self.momentum,
                "synchronized": self.norm.synchronized}
