"""The settings of a classifier run (finetune, pretrain, multitask), with no TensorFlow
imported: the CLI reads its defaults and choices from here (``kerastl --help`` stays fast), and
``config.json`` records them to repeat a run."""

from __future__ import annotations

import dataclasses

from kerastl.compute import check_precision, normalise_jit
from kerastl.data.imageset import parse_classes
from kerastl.data.pipeline import AUGMENTATIONS
from kerastl.distribute import ScaleSettings
from kerastl.errors import KerastlError
from kerastl.runs import CLASSIFIER_JOBS
from kerastl.settings import DataSelection, RunSettings, check_choice, check_settings
from kerastl.transfer.recipes import RECIPES, make_recipe
from kerastl.transfer.schedule import SCHEDULES, parse_unfreeze

#: The backbone a classifier run uses when none is named (and no pretrained run gives one).
DEFAULT_BACKBONE = "mobilenetv3small"

#: How the classification layer starts: random (Keras' Glorot), or from the class centroids
#: of the training images' pooled features (imprinting, :mod:`kerastl.transfer.imprint`).
HEAD_INITS = ("random", "centroids")

#: What ``select`` may be, and whether its best is the highest or lowest value.
SELECT_MODES = {"accuracy": "max", "loss": "min"}


@dataclasses.dataclass(kw_only=True)
class PhaseSettings:
    """A backbone and its freeze-then-unfreeze schedule: what classifier and colour runs
    share (a :class:`kerastl.transfer.recipes.Budget`). ``patience`` epochs
    without a better validation figure end a phase early. Without a ``backbone``, a run
    directory in ``weights`` names its own, and ImageNet or no weights mean
    :data:`DEFAULT_BACKBONE`."""

    backbone: str | None = None
    weights: str | None = "imagenet"
    image_size: int | None = None
    batch_size: int = 32
    frozen_epochs: int = 2
    lr: float = 1e-3
    finetune_lr: float | None = None
    unfreeze: str = "all"
    patience: int = 5

    def _settle_weights(self) -> None:
        """``weights`` as kerastl keeps it (None for none) and the backbone it implies."""
        self.weights = None if self.weights in (None, "none") else str(self.weights)
        if self.backbone is None and self.weights in (None, "imagenet"):
            self.backbone = DEFAULT_BACKBONE


#: (setting, low, high, low is open) of :class:`PhaseSettings`.
PHASE_RANGES = [("batch_size", 1, None, False), ("frozen_epochs", 0, None, False),
                ("lr", 0, None, True), ("finetune_lr", 0, None, True),
                ("patience", 1, None, False)]


@dataclasses.dataclass
class FinetuneConfig(ScaleSettings, DataSelection, RunSettings, PhaseSettings):
    """Every setting of a finetuning run; saved as ``config.json`` to repeat it.

    The defaults are the documented ones: 2 frozen epochs at ``lr`` 1e-3 (Adam),
    then 3 epochs with the whole backbone unfrozen at ``lr / 10``, BatchNorm
    kept frozen, light augmentation, 20% of each class held out for validation.
    With ``augment="none"`` the frozen phase trains the head on backbone features
    computed once (``feature_cache``; same model, fewer forward passes).
    ``deterministic`` turns on TensorFlow's op determinism, so that a seed repeats
    a run exactly (on the same machine); it cannot be turned off again in the process.
    ``select`` is what picks the kept epoch and drives early stopping: the highest
    validation ``accuracy``, or the lowest validation ``loss`` (smoother with a few
    validation images, where accuracy moves in coarse steps and spikes).
    ``head_init="centroids"`` sets the classification layer from the class centroids of the
    training images' pooled features before training (imprinting: nearest-centroid
    classification from the start, strong with a few labels per class on pretrained
    features); that model is kept unless an epoch validates better (a tie keeps it), and with no
    epochs at all it is the result.
    """

    data: str
    val_fraction: float = 0.2
    finetune_epochs: int = 3
    train_bn: bool = False
    schedule: str = "cosine"
    group_factor: float = 1.0
    gradual: bool = False
    recipe: str | None = None
    bn_momentum: float | None = None
    dropout: float = 0.2
    augment: str = "light"
    mixup: bool = False
    cutmix: bool = False
    label_smoothing: float = 0.0
    class_weight: str | None = None
    weight_decay: float = 0.0
    select: str = "accuracy"
    jit_compile: str = "auto"
    precision: str = "float32"
    feature_cache: bool = True
    head_init: str = "random"
    heads: list[str] | None = None
    job: str = "finetune"
    save_backbone: bool = False

    def __post_init__(self):
        check_settings(self, [*PHASE_RANGES, *_RANGES])
        parse_unfreeze(self.unfreeze)  # a bad spec fails before any work
        for name, choices in (("select", SELECT_MODES), ("augment", AUGMENTATIONS),
                              ("schedule", SCHEDULES), ("recipe", (None, *RECIPES)),
                              ("job", CLASSIFIER_JOBS), ("head_init", HEAD_INITS)):
            check_choice(self, name, choices)
        make_recipe(self.recipe, group_factor=self.group_factor, gradual=self.gradual)
        if self.frozen_epochs + self.finetune_epochs == 0 and self.head_init == "random":
            raise KerastlError("nothing to train: --frozen-epochs and --finetune-epochs are "
                               "both 0 (only --head-init centroids gives a model without "
                               "training)")
        if self.head_init == "centroids" and self.weights in (None, "none"):
            raise KerastlError("--head-init centroids needs pretrained features (--weights "
                               "imagenet or a 'kerastl pretrain' run): random weights give "
                               "none to imprint from")
        self.class_weight = None if self.class_weight in (None, "none") else self.class_weight
        if self.heads and (self.label_smoothing or self.class_weight or self.mixup
                           or self.cutmix):
            raise KerastlError("multi-task runs take plain class labels: no --label-smoothing, "
                               "--class-weight, --mixup or --cutmix (per-head weights are not "
                               "supported yet)")
        if self.class_weight not in (None, "balanced"):
            raise KerastlError(f"--class-weight takes none or balanced. "
                               f"Received: {self.class_weight!r}")
        self.classes = parse_classes(self.classes)
        self.jit_compile = normalise_jit(self.jit_compile)
        check_precision(self.precision)
        self.data = str(self.data)
        self._settle_weights()


#: (setting, low, high, low is open): what FinetuneConfig accepts; the CLI's types agree.
_RANGES = [("image_size", 8, None, False), ("val_fraction", 0, 0.9, False),
           ("finetune_epochs", 0, None, False), ("group_factor", 1, None, False),
           ("bn_momentum", 0, 1, False), ("dropout", 0, 0.95, False),
           ("label_smoothing", 0, 0.5, False), ("weight_decay", 0, None, False)]
