"""Neural style transfer by optimisation over VGG features (Gatys et al., 2016).

The output image itself is optimised, starting from the content image: its
``block5_conv2`` features should match the content's, the Gram matrices of
``block1..5_conv1`` the style's, and a total-variation term keeps it smooth.
The default weights follow TensorFlow's style-transfer tutorial (image in
[0, 1], Adam at 0.02).
"""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import numpy as np
from PIL import Image

from kerastl import backbones
from kerastl._tf import tensorflow
from kerastl.data.images import BadImage, load_image, resize_array
from kerastl.errors import KerastlError, WeightsError
from kerastl.runs import atomic_write, check_output_file
from kerastl.transfer.model import pretrained_run_backbone

STYLE_LAYERS = tuple(f"block{i}_conv1" for i in range(1, 6))
CONTENT_LAYER = "block5_conv2"
BACKBONES = ("vgg16", "vgg19")


@dataclasses.dataclass
class StyleSettings:
    """Optimisation settings. ``size`` is the output's longer side in pixels."""

    backbone: str = "vgg19"
    weights: str | None = "imagenet"
    size: int = 384
    steps: int = 200
    content_weight: float = 1e4
    style_weight: float = 1e-2
    tv_weight: float = 30.0
    learning_rate: float = 0.02

    def __post_init__(self):
        if self.backbone not in BACKBONES:
            raise KerastlError(f"style transfer uses vgg16 or vgg19. Received: {self.backbone!r}")
        if self.size < 32:
            raise KerastlError(f"--size must be at least 32 px. Received: {self.size}")
        self.weights = None if self.weights in (None, "none") else str(self.weights)


@dataclasses.dataclass
class StyleResult:
    image: np.ndarray
    losses: list[dict[str, float]]
    output: Path | None = None


def feature_extractor(backbone: str = "vgg19", weights: str | None = "imagenet"):
    """A model mapping 0-255 RGB images of any size to {layer name: features}."""
    import keras

    from kerastl.layers import Preprocess

    vgg = backbones.build_backbone(backbone, 32, _keras_weights(weights), any_size=True)
    _load_saved_weights(vgg, weights)
    vgg.trainable = False
    inputs = keras.Input((None, None, 3))
    tap = keras.Model(vgg.input, {name: vgg.get_layer(name).output
                                  for name in (*STYLE_LAYERS, CONTENT_LAYER)})
    return keras.Model(inputs, tap(Preprocess("caffe")(inputs)), name=f"{backbone}_style")


def _keras_weights(weights: str | None) -> str | None:
    """What ``build_backbone`` loads itself: ImageNet or a ``.weights.h5`` file."""
    if weights is None or pretrained_run_backbone(weights) is not None:
        return None
    return weights


def _load_saved_weights(vgg, weights: str | None) -> None:
    """Copy the weights of a kerastl-pretrained VGG (a run or a backbone.keras) into ``vgg``."""
    import keras

    saved = pretrained_run_backbone(weights)
    if saved is None:
        return
    source = keras.models.load_model(saved, compile=False)
    try:
        vgg.set_weights(source.get_weights())
    except ValueError as exc:
        raise WeightsError(f"{weights} is not a {vgg.name}-shaped backbone: {exc}") from None


def gram_matrix(features):
    """Channel correlations averaged over positions: (N, H, W, C) -> (N, C, C)."""
    tf = tensorflow()
    positions = tf.cast(tf.shape(features)[1] * tf.shape(features)[2], tf.float32)
    return tf.einsum("bijc,bijd->bcd", features, features) / positions


def stylize(content: np.ndarray, style: np.ndarray, settings: StyleSettings | None = None,
            progress: bool = True) -> StyleResult:
    """Paint uint8 ``content`` in the style of uint8 ``style``; returns the image and the
    losses at every step (``total``, ``content``, ``style``, ``tv``)."""
    import keras

    tf = tensorflow()
    settings = settings or StyleSettings()
    extractor = feature_extractor(settings.backbone, settings.weights)
    content_batch = tf.constant(content[None], tf.float32)
    content_target = extractor(content_batch)[CONTENT_LAYER]
    style_features = extractor(tf.constant(style[None], tf.float32))
    style_targets = {name: gram_matrix(style_features[name]) for name in STYLE_LAYERS}
    image = tf.Variable(content_batch / 255.0)
    optimizer = keras.optimizers.Adam(settings.learning_rate, beta_1=0.99, epsilon=0.1)

    def losses():
        features = extractor(image * 255.0)
        content_loss = tf.reduce_mean(tf.square(features[CONTENT_LAYER] - content_target))
        style_loss = tf.add_n([tf.reduce_mean(tf.square(gram_matrix(features[n])
                                                        - style_targets[n]))
                               for n in STYLE_LAYERS]) / len(STYLE_LAYERS)
        tv_loss = tf.reduce_sum(tf.image.total_variation(image))
        parts = {"content": settings.content_weight * content_loss,
                 "style": settings.style_weight * style_loss,
                 "tv": settings.tv_weight * tv_loss}
        return tf.add_n(list(parts.values())), parts

    @tf.function(autograph=False)
    def step():
        with tf.GradientTape() as tape:
            total, parts = losses()
        optimizer.apply_gradients([(tape.gradient(total, image), image)])
        image.assign(tf.clip_by_value(image, 0.0, 1.0))
        return {"total": total, **parts}

    bar = keras.utils.Progbar(settings.steps, verbose=1 if progress else 0)
    history = []
    for _ in range(settings.steps):
        record = {name: float(value) for name, value in step().items()}
        history.append(record)
        bar.add(1, values=[("loss", record["total"])])
    total, parts = losses()
    history.append({"total": float(total), **{k: float(v) for k, v in parts.items()}})
    output = (np.clip(image.numpy()[0], 0, 1) * 255).round().astype(np.uint8)
    return StyleResult(output, history)


def style_transfer(content: str | Path, style: str | Path, out: str | Path, *,
                   overwrite: bool = False, progress: bool = True, **settings) -> StyleResult:
    """Read two image files, stylize, and write ``out`` (PNG or JPEG by its suffix).

    The content image is resized so that its longer side is ``size``; the
    output keeps the content's aspect ratio at that size.
    """
    options = StyleSettings(**settings)
    out = check_output_file(out, overwrite, [content, style], "--out")
    content_pixels = _read(content, options.size)
    style_pixels = _read(style, options.size)
    result = stylize(content_pixels, style_pixels, options, progress)
    buffer = io.BytesIO()
    fmt = "JPEG" if out.suffix.lower() in (".jpg", ".jpeg") else "PNG"
    Image.fromarray(result.image).save(buffer, format=fmt)
    result.output = atomic_write(out, buffer.getvalue())
    return result


def _read(path: str | Path, longer_side: int) -> np.ndarray:
    """The image upright (EXIF orientation applied before sizing, so a portrait photo keeps
    its aspect), resized so that its longer side is ``longer_side``."""
    try:
        pixels = load_image(path)
    except BadImage as bad:
        raise KerastlError(f"cannot read {path} as an image: {bad}") from None
    height, width = pixels.shape[:2]
    scale = longer_side / max(width, height)
    return resize_array(pixels, (max(1, round(height * scale)), max(1, round(width * scale))))
