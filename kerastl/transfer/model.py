"""Assemble a classifier: preprocessing, a backbone, and a head."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from kerastl import backbones
from kerastl.backbones import BACKBONE_FILE, BACKBONE_META, BackboneMeta
from kerastl.errors import WeightsError
from kerastl.task import PREDICTIONS, PRIMARY, build_task

FROM_SCRATCH_BN_MOMENTUM = 0.9


@dataclasses.dataclass
class ResolvedBackbone:
    """A built backbone and what it is: registry name, size, where its weights came from."""

    model: object
    meta: BackboneMeta
    transferred: bool

    @property
    def spec(self) -> backbones.BackboneSpec:
        return backbones.get_spec(self.meta.name)


def pretrained_run_backbone(weights: str | None) -> Path | None:
    """The ``backbone.keras`` a ``--weights`` value points to, if it names one."""
    if not weights or weights in ("imagenet", "none"):
        return None
    path = Path(weights).expanduser()
    if path.is_dir() and (path / BACKBONE_FILE).exists():
        return path / BACKBONE_FILE
    if path.is_file() and path.suffix == ".keras":
        return path
    if path.is_dir():
        raise WeightsError(f"{path} has no {BACKBONE_FILE}: use a run from 'kerastl pretrain'")
    return None


def backbone_of_run(record: dict, config_file) -> ResolvedBackbone:
    """The backbone a run's ``config.json`` describes, rebuilt without weights (a resumed run
    loads its checkpoint's)."""
    from kerastl.errors import RunDirError

    try:
        meta = BackboneMeta(**record["backbone"])
        transferred = bool(record["transferred"])
    except (KeyError, TypeError) as exc:
        raise RunDirError(f"{config_file} does not describe its backbone ({exc})") from None
    model = backbones.build_backbone(meta.name, meta.image_size, None, meta.bn_momentum)
    return ResolvedBackbone(model, meta, transferred=transferred)


def resolve_backbone(name: str | None, weights: str | None, image_size: int | None,
                     bn_momentum: float | None = None) -> ResolvedBackbone:
    """Build or load the backbone named by ``name`` and ``weights``.

    ``weights`` is ``imagenet``, ``none``, a ``.weights.h5`` file, a saved
    ``backbone.keras``, or a run directory holding one (then ``name`` may be
    omitted and the run's metadata supplies it).
    """
    saved = pretrained_run_backbone(weights)
    if saved is not None:
        return _load_saved_backbone(saved, name, image_size, bn_momentum)
    if name is None:
        raise WeightsError("name a --backbone (see 'kerastl backbones'), or pass --weights "
                           "a run directory from 'kerastl pretrain'")
    spec = backbones.get_spec(name)
    size = image_size or spec.default_size
    transferred = weights not in (None, "none")
    if bn_momentum is None and not transferred:
        bn_momentum = FROM_SCRATCH_BN_MOMENTUM
    model = backbones.build_backbone(spec.name, size, weights, bn_momentum)
    meta = BackboneMeta(spec.name, size, 3, spec.preprocessing, bn_momentum)
    return ResolvedBackbone(model, meta, transferred)


def _load_saved_backbone(path: Path, name: str | None, image_size: int | None,
                         bn_momentum: float | None) -> ResolvedBackbone:
    import keras

    meta_path = path.parent / BACKBONE_META
    if not meta_path.exists():
        raise WeightsError(f"{path} has no {BACKBONE_META} beside it: kerastl cannot tell "
                           "which backbone it is")
    meta = BackboneMeta.read(meta_path)
    if name is not None and backbones.get_spec(name).name != meta.name:
        raise WeightsError(f"--backbone {name} does not match the saved backbone "
                           f"({meta.name}) in {path.parent}")
    if image_size is not None and image_size != meta.image_size:
        raise WeightsError(f"the saved backbone in {path.parent} takes {meta.image_size} px "
                           f"images. Received: --image-size {image_size}")
    if meta.channels != 3:
        raise WeightsError(f"the saved backbone takes {meta.channels}-channel images; "
                           "kerastl classifiers take 3")
    model = keras.models.load_model(path, compile=False)
    if bn_momentum is not None:
        backbones.set_bn_momentum(model, bn_momentum)
    return ResolvedBackbone(model, meta, transferred=True)


def build_classifier(backbone: ResolvedBackbone, num_classes: int, *, dropout: float = 0.2,
                     train_bn: bool = False, extra_heads: dict[str, int] | None = None):
    """The classification task (:func:`kerastl.task.build_task`): a softmax on the pooled
    features of the backbone.

    With ``extra_heads`` ({name: classes}) the outputs are a dict: the primary
    softmax under :data:`~kerastl.task.PRIMARY` and one softmax per extra head, all on the
    same pooled features (one shared backbone).
    """
    import keras

    def head(features, image):
        outputs = keras.layers.Dense(num_classes, activation="softmax", dtype="float32",
                                     name=PREDICTIONS)(features)
        if not extra_heads:
            return outputs
        return {PRIMARY: outputs, **{
            name: keras.layers.Dense(n, activation="softmax", dtype="float32", name=name)(
                features) for name, n in extra_heads.items()}}

    return build_task(backbone, head, dropout=dropout, train_bn=train_bn,
                      name=f"{backbone.meta.name}_classifier")
