"""Finetune (and pretrain) a classifier through the freeze-then-unfreeze schedule."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np

from kerastl._tf import tensorflow
from kerastl.compute import precision_policy, use_xla
from kerastl.backbones import BACKBONE_FILE, BACKBONE_META, layer_groups
from kerastl.data import DataBundle, ImageSet, load_data
from kerastl.data.pipeline import make_dataset
from kerastl.distribute import synchronize_batchnorm, validation_batch, worker_run_dir
from kerastl.engine import start_run
from kerastl.engine.callbacks import FittedPhases
from kerastl.engine.checkpoint import TrainingState, read_resumable
from kerastl.engine.loop import needs_own_loop
from kerastl.engine.phases import PhaseEngine, PhaseSetup
from kerastl.errors import KerastlError
from kerastl.report import plot_confusion, plot_history
from kerastl.runs import CLASSIFIER_JOBS, CONFIG_FILE, HEADS_FILE, LABELS_FILE, \
    METRICS_FILE, RunDir, default_run_name, run_path, versions
from kerastl.task import PREDICTIONS, PRIMARY, split_at_features
from kerastl.transfer.heads import Head, lookups, make_head, parse_head
from kerastl.transfer.feature_cache import can_cache_features, features_of
from kerastl.transfer.imprint import imprint_heads
from kerastl.transfer.model import ResolvedBackbone, backbone_of_run, build_classifier, \
    resolve_backbone
from kerastl.settings import from_settings
from kerastl.transfer.config import SELECT_MODES, FinetuneConfig
from kerastl.transfer.rates import RecipeEpochs, make_optimizer, make_schedule
from kerastl.transfer.recipes import Budget, Recipe, make_recipe, plan_phases
from kerastl.transfer.schedule import Phase

log = logging.getLogger("kerastl")

__all__ = ["FinetuneConfig", "FinetuneResult", "finetune", "multitask", "pretrain",
           "resume_finetune", "run_finetune"]


@dataclasses.dataclass
class FinetuneResult:
    """What a run leaves: the best model, its directory, its figures and its history."""

    model: object
    run_dir: Path
    metrics: dict
    history: list[dict]
    config: FinetuneConfig
    data: DataBundle


def finetune(data: str, **settings) -> FinetuneResult:
    """Finetune a backbone on ``data`` through freeze-then-unfreeze; see :class:`FinetuneConfig`.

    Example:
        >>> result = kerastl.finetune("sample", backbone="kerastl_small", weights="none",
        ...                           image_size=32, frozen_epochs=1, finetune_epochs=1)
        >>> result.metrics["test"]["accuracy"]
    """
    return run_finetune(FinetuneConfig(data=data, **settings))


def multitask(data: str, heads: list[str], **settings) -> FinetuneResult:
    """Train one shared backbone with the data's classes and extra ``heads`` together.

    Each head is ``"NAME=MAPPING_FILE[:LOSS_WEIGHT]"``; the mapping file maps every
    class of ``data`` to the head's label (JSON object or two-column CSV).
    """
    settings.setdefault("job", "multitask")
    return run_finetune(FinetuneConfig(data=data, heads=list(heads), **settings))


def pretrain(data: str, **settings) -> FinetuneResult:
    """Train a backbone from scratch (temporary head) and keep it as ``backbone.keras``."""
    settings.setdefault("weights", "none")
    settings.setdefault("job", "pretrain")
    return run_finetune(FinetuneConfig(data=data, save_backbone=True, **settings))


def run_finetune(config: FinetuneConfig, existing: Path | None = None) -> FinetuneResult:
    """Run the whole job described by ``config`` and write its run directory (or train from
    the start in the ``existing`` run directory that holds this config)."""
    strategy = _start(config)
    with precision_policy(config.precision):
        with strategy.scope():  # before any layer is built
            backbone = resolve_backbone(config.backbone, config.weights, config.image_size,
                                        config.bn_momentum)
        bundle = config_data(config, backbone.meta.image_size)
        heads = [make_head(*parse_head(option), bundle.class_names)
                 for option in config.heads or []]
        path = existing or run_path(config.runs_dir, config.name,
                                    default_run_name(config.job, backbone.meta.name))
        with worker_run_dir(strategy, path, config.job, config.overwrite,
                            existing=existing is not None) as run, run.capture_log(log):
            return _train(config, strategy, backbone, bundle, heads, run)


def resume_finetune(run_dir: str | Path) -> FinetuneResult:
    """Continue an interrupted run from its last completed epoch: phase, unfrozen layers,
    weights, optimizer state and schedule position; the data split is re-drawn from the seed.
    A run stopped before its first epoch ended starts again from its config.

    A resumed run repeats the weights and schedule of an uninterrupted one, not its exact
    random draws (shuffling and augmentation restart from the seed at the resumed epoch).
    """
    run, record, config, state = read_resumable(run_dir, CLASSIFIER_JOBS,
                                                "kerastl finetune --resume", FinetuneConfig)
    if state is None:
        log.info("%s stopped before its first epoch ended: training it again from the start",
                 run.path)
        return run_finetune(config, existing=run.path)
    strategy = _start(config)
    with precision_policy(config.precision):
        with strategy.scope():
            backbone = backbone_of_run(record, run / CONFIG_FILE)
        bundle = config_data(config, backbone.meta.image_size)
        heads = [make_head(*parse_head(option), bundle.class_names)
                 for option in config.heads or []]
        with worker_run_dir(strategy, run.path, existing=True) as worker_run, \
                worker_run.capture_log(log):
            return _train(config, strategy, backbone, bundle, heads, worker_run, state)


def config_data(config: FinetuneConfig, image_size: int) -> DataBundle:
    """The data a run's settings select (the split is re-drawn the same from the seed)."""
    return load_data(config.data, image_size, val_fraction=config.val_fraction,
                     seed=config.seed, classes=config.classes, per_class=config.per_class,
                     limit=config.limit)


def _start(config: FinetuneConfig):
    return start_run(config, config.batch_size, ("lr", "finetune_lr"), config.seed,
                     config.deterministic)


def _train(config: FinetuneConfig, strategy, backbone: ResolvedBackbone, bundle: DataBundle,
           heads: list[Head], run: RunDir, resume: TrainingState | None = None
           ) -> FinetuneResult:
    """Train under ``strategy``, then evaluate the kept model (the trained one, with the best
    epoch's weights put back: no reload, no new model to trace)."""
    with strategy.scope():
        fitted = _fit_phases(config, backbone, bundle, heads, run, resume)
    return _finish(config, backbone, bundle, heads, run, fitted)


def _fit_phases(config: FinetuneConfig, backbone: ResolvedBackbone, bundle: DataBundle,
                heads: list[Head], run: RunDir, resume: TrainingState | None) -> FittedPhases:
    phases = plan_run_phases(config, backbone)
    if not backbone.transferred:
        log.info("--weights none: nothing to transfer, so every layer trains from the start "
                 "(%d epochs, BatchNorm momentum %s)", phases[0].epochs, backbone.meta.bn_momentum)
    _log_data(bundle)
    model = build_run_model(config, backbone, bundle, phases, heads)
    if resume is None:
        _write_run_files(run, config, backbone, bundle, phases, heads)
    engine = PhaseEngine(run, model, monitor=_monitor(bundle, heads, config.select),
                         mode=SELECT_MODES[config.select], patience=config.patience,
                         resume=resume, verbose=config.verbose)
    trainer = PhaseTrainer(config, model, backbone, bundle, heads)
    if resume is None and config.head_init == "centroids":
        figures, trainer.untrained_features = imprint_run_heads(config, model, bundle, heads)
        engine.keep_initial(figures)
    return engine.fit(phases, trainer.setup)


def imprint_run_heads(config: FinetuneConfig, model, bundle: DataBundle,
                      heads: list[Head]) -> tuple[dict, ImageSet]:
    """Set every softmax layer from the training images' class centroids (a resumed run keeps
    its trained head). Returns the figures the run selects on, for the model as it now is,
    and the training images' pooled features."""
    targets = {PREDICTIONS: None, **{h.name: np.asarray(h.lookup) for h in heads}}
    imprinted, features = imprint_heads(model, bundle.train, config.batch_size, targets)
    empty = imprinted[PREDICTIONS].empty_classes
    if empty:
        log.warning("no training image of %s: their outputs start at zero",
                    ", ".join(bundle.class_names[c] for c in empty))
    figures = validation_figures(model, bundle, config, heads)
    log.info("head set from the class centroids of %d training images (imprinting, scale "
             "%.3g)%s", len(bundle.train), imprinted[PREDICTIONS].scale,
             "".join(f"; {k} {v:.3f} before training" for k, v in figures.items()))
    return figures, features


def validation_figures(model, bundle: DataBundle, config: FinetuneConfig,
                       heads: list[Head]) -> dict:
    """The primary head's validation accuracy and loss as the run's compiled model reports
    them (label smoothing included), under the names the run selects by."""
    from kerastl.inference import predictions

    if not len(bundle.val):
        return {}
    outputs = predictions(model, make_dataset(bundle.val, config.batch_size))
    probabilities = outputs[PRIMARY] if heads else outputs
    labels = bundle.val.labels
    log_p = np.log(np.clip(probabilities, 1e-7, 1.0))
    smoothing = config.label_smoothing
    loss = -((1 - smoothing) * log_p[np.arange(len(labels)), labels] +
             smoothing * log_p.mean(axis=1))
    prefix = f"val_{PRIMARY}_" if heads else "val_"
    return {f"{prefix}accuracy": float(np.mean(probabilities.argmax(axis=1) == labels)),
            f"{prefix}loss": float(loss.mean())}


def plan_run_phases(config: FinetuneConfig, backbone: ResolvedBackbone) -> list[Phase]:
    """The phases a run of ``config`` trains (``lr_find`` sweeps the first)."""
    budget = Budget(config.frozen_epochs, config.finetune_epochs, config.lr, config.finetune_lr,
                    config.unfreeze, config.train_bn, config.schedule,
                    len(layer_groups(backbone.model, backbone.spec)))
    return plan_phases(budget, transfer=backbone.transferred, recipe=run_recipe(config))


def run_recipe(config: FinetuneConfig) -> Recipe:
    """The recipe object ``config`` names (its hooks freeze layers and set rates)."""
    return make_recipe(config.recipe, group_factor=config.group_factor, gradual=config.gradual)


def build_run_model(config: FinetuneConfig, backbone: ResolvedBackbone, bundle: DataBundle,
                    phases: list[Phase], heads: list[Head]):
    """The classifier a run of ``config`` trains, BatchNorm synchronized across replicas."""
    model = build_classifier(backbone, bundle.num_classes, dropout=config.dropout,
                             train_bn=any(p.train_bn for p in phases),
                             extra_heads={h.name: len(h.class_names) for h in heads})
    if tensorflow().distribute.get_strategy().num_replicas_in_sync > 1:
        synchronize_batchnorm(model)  # one set of moving statistics on every replica
    return model


def _monitor(bundle: DataBundle, heads: list[Head], select: str) -> str | None:
    """The validation metric (``select``: accuracy or loss, of the primary head) that picks
    the best epoch; None without validation data."""
    if not len(bundle.val):
        log.info("no validation split (--val-fraction 0): no early stopping, and the model "
                 "of the last epoch is kept")
        return None
    return f"val_{PRIMARY}_{select}" if heads else f"val_{select}"


def _finish(config: FinetuneConfig, backbone: ResolvedBackbone, bundle: DataBundle,
            heads: list[Head], run: RunDir, fitted: FittedPhases) -> FinetuneResult:
    best_model = fitted.best.target
    metrics = _evaluate_splits(best_model, bundle, config.batch_size, heads)
    metrics["best_epoch"] = (fitted.best.best_epoch or 0) + 1
    metrics["train_seconds"] = round(fitted.elapsed, 1)
    if fitted.initial:
        metrics["before_training"] = fitted.initial
    run.write_json(METRICS_FILE, metrics)
    _plots(run, fitted.history.rows, fitted.phase_starts, metrics, bundle.class_names)
    if config.save_backbone:
        _save_backbone(run, backbone, bundle)
    return FinetuneResult(best_model, run.path, metrics, fitted.history.rows, config, bundle)


class PhaseTrainer:
    """What a classifier's phase fits: the model (or its head on cached features), its
    data, optimizer and objectives; :class:`~kerastl.engine.phases.PhaseEngine` runs it."""

    def __init__(self, config: FinetuneConfig, model, backbone: ResolvedBackbone,
                 bundle: DataBundle, heads: list[Head] | None = None):
        self.config, self.model, self.backbone, self.bundle = config, model, backbone, bundle
        self.heads = heads or []
        self.groups = layer_groups(backbone.model, backbone.spec)
        self.recipe = run_recipe(config)
        self.one_hot = config.mixup or config.cutmix or config.label_smoothing > 0
        strategy = tensorflow().distribute.get_strategy()
        self.replicas = strategy.num_replicas_in_sync
        self.own_loop = needs_own_loop(strategy)
        self.xla = use_xla(config.jit_compile)
        self._image_data = None
        #: The training images' pooled features from the backbone as built (imprinting read
        #: them): the first phase's feature cache reuses them; later phases may have trained it.
        self.untrained_features: ImageSet | None = None

    def setup(self, phase: Phase, start: int, epochs_done: int) -> PhaseSetup:
        """Open the backbone as ``phase`` says and compile what it fits (a fresh optimizer,
        on the phase's schedule from ``epochs_done`` of its epochs on)."""
        untrained, self.untrained_features = self.untrained_features, None
        opened = self.recipe.freeze_before_training(self.backbone.model, self.groups, phase)
        cached = self.config.feature_cache and not self.heads and not self.own_loop and \
            can_cache_features(bool(opened), self.config.augment, self.one_hot, phase.train_bn)
        fit_model, train_ds, val_ds = self._features_and_head(untrained) if cached else \
            (self.model, *self._image_datasets())
        trainable = sum(int(np.prod(w.shape)) for w in self.model.trainable_weights)
        log.info("phase %s: %d epoch(s) at lr %.2g, %d backbone layer(s) unfrozen, %s trainable "
                 "parameters%s", phase.name, phase.epochs, phase.learning_rate, len(opened),
                 f"{trainable:,}", " (head on cached features)" if cached else "")
        optimizer = self._optimizer(phase, opened, epochs_done)
        fit_model.compile(optimizer=optimizer, jit_compile=self.xla,
                          steps_per_execution=self._steps_per_execution(), **self._objectives())
        hook = RecipeEpochs(self.recipe, optimizer, self.groups, phase, opened, start)
        return PhaseSetup(fit_model, train_ds, val_ds, [hook], class_weight=self._class_weight())

    def _optimizer(self, phase: Phase, opened: set[str], epochs_done: int = 0):
        """A fresh optimizer per phase (none meets a variable it was not built on), on the
        phase's schedule, with the per-layer rates the recipe gives the phase's epoch."""
        steps = -(-len(self.bundle.train) // self.config.batch_size) * phase.epochs
        factors = self.recipe.rate_factors(self.groups, phase, opened, epochs_done)
        if factors:
            log.info("backbone rates: x%.3g to x%.3g of the head's", min(factors.values()),
                     max(factors.values()))
        return make_optimizer(make_schedule(phase.schedule, phase.learning_rate, steps),
                              self.config.weight_decay, factors)

    def _objectives(self) -> dict:
        """Loss, loss weights and metrics: one head, or one of each per head."""
        import keras

        if not self.heads:
            loss = (keras.losses.CategoricalCrossentropy(
                label_smoothing=self.config.label_smoothing) if self.one_hot
                else keras.losses.SparseCategoricalCrossentropy())
            return {"loss": loss, "metrics": ["accuracy"]}
        names = [PRIMARY] + [h.name for h in self.heads]
        weights = [1.0] + [h.weight for h in self.heads]
        return {"loss": {n: keras.losses.SparseCategoricalCrossentropy() for n in names},
                "loss_weights": dict(zip(names, weights)),
                "metrics": {n: ["accuracy"] for n in names}}

    def _image_datasets(self):
        """Batches are whole under several replicas (see :func:`validation_batch`)."""
        if self._image_data is None:
            config = self.config
            maps = lookups(self.heads) if self.heads else None
            train = make_dataset(self.bundle.train, config.batch_size, training=True,
                                 seed=config.seed, augment=config.augment, mixup=config.mixup,
                                 cutmix=config.cutmix, one_hot=self.one_hot, label_maps=maps,
                                 drop_remainder=self.replicas > 1)
            val = make_dataset(self.bundle.val, self._val_batch(), one_hot=self.one_hot,
                               label_maps=maps, drop_remainder=self.replicas > 1) \
                if len(self.bundle.val) else None
            self._image_data = (train, val)
        return self._image_data

    def _features_and_head(self, train: ImageSet | None = None):
        extractor, head = split_at_features(self.model)
        size = self.config.batch_size
        if train is None:
            train = features_of(extractor, self.bundle.train, size)
        val = make_dataset(features_of(extractor, self.bundle.val, size), self._val_batch(),
                           one_hot=self.one_hot, drop_remainder=self.replicas > 1) \
            if len(self.bundle.val) else None
        return (head, make_dataset(train, size, training=True, seed=self.config.seed,
                                   one_hot=self.one_hot, drop_remainder=self.replicas > 1), val)

    def _val_batch(self) -> int:
        return validation_batch(self.replicas, self.config.batch_size, len(self.bundle.val))

    def _class_weight(self) -> dict[int, float] | None:
        if self.config.class_weight != "balanced":
            return None
        return balanced_class_weights(self.bundle.train.labels, self.bundle.num_classes)

    def _steps_per_execution(self) -> int:
        """Several steps per call into TensorFlow: small models are dispatch-bound on a CPU.

        One under a multi-replica strategy: Keras 3.15's multi-step loop there fails with
        "You must feed a value for placeholder tensor ... while/cond"."""
        if self.replicas > 1:
            return 1
        steps = -(-len(self.bundle.train) // self.config.batch_size)
        return max(1, min(16, steps))


def balanced_class_weights(labels: np.ndarray, num_classes: int) -> dict[int, float]:
    """scikit-learn's "balanced": n / (classes x count), so every class weighs the same."""
    counts = np.bincount(labels, minlength=num_classes)
    return {i: float(len(labels) / (num_classes * c)) if c else 0.0
            for i, c in enumerate(counts)}


def _evaluate_splits(model, bundle: DataBundle, batch_size: int,
                     heads: list[Head] | None = None) -> dict:
    """Reports per split; with extra heads, the primary's figures plus ``heads`` per head.
    Each worker evaluates on its own (a forward pass in inference mode, no collectives)."""
    from kerastl.inference import evaluate_heads

    return {split: evaluate_heads(model, data, heads or [], split, batch_size)
            for split, data in (("val", bundle.val), ("test", bundle.test))
            if data is not None and len(data)}


def _plots(run: RunDir, rows, phase_starts, metrics, class_names) -> None:
    if rows:  # none when an imprinted head was kept without training
        plot_history(rows, phase_starts, run / "plots" / "training_curves.png",
                     before_training=metrics.get("before_training"))
    split = "test" if "test" in metrics else "val"
    if split not in metrics:
        return
    plot_confusion(metrics[split]["confusion_matrix"], class_names,
                   run / "plots" / "confusion_matrix.png", f"confusion matrix ({split})")


def _save_backbone(run: RunDir, backbone: ResolvedBackbone, bundle: DataBundle) -> None:
    meta = dataclasses.replace(backbone.meta, source_classes=list(bundle.class_names),
                               source_data=bundle.spec)
    run.save_model(backbone.model, BACKBONE_FILE)  # trained inside the kept model
    run.write_text(BACKBONE_META, meta.to_json() + "\n")


def _write_run_files(run: RunDir, config: FinetuneConfig, backbone: ResolvedBackbone,
                     bundle: DataBundle, phases: list[Phase], heads: list[Head]) -> None:
    run.write_json(CONFIG_FILE, _config_record(config, backbone, bundle, phases, heads))
    run.write_text(LABELS_FILE, "\n".join(bundle.class_names) + "\n")
    if heads:
        run.write_json(HEADS_FILE, {PRIMARY: bundle.class_names,
                                    **{h.name: list(h.class_names) for h in heads}})


def _log_data(bundle: DataBundle) -> None:
    counts = bundle.describe()
    log.info("data %s: %d classes, %d train / %d val / %d test images", bundle.spec,
             bundle.num_classes, counts["train"], counts["val"], counts["test"])


def _config_record(config: FinetuneConfig, backbone: ResolvedBackbone, bundle: DataBundle,
                   phases: list[Phase], heads: list[Head]) -> dict:
    return {"job": config.job, "settings": dataclasses.asdict(config),
            "seed": config.seed, "backbone": dataclasses.asdict(backbone.meta),
            "transferred": backbone.transferred,
            "phases": [dataclasses.asdict(p) for p in phases], "data": bundle.describe(),
            "heads": [h.as_dict() for h in heads], "versions": versions()}


def config_from_file(path: str | Path, **overrides) -> FinetuneConfig:
    """The settings of an earlier run's ``config.json`` (or a JSON object of settings), with
    ``overrides`` applied; checked before anything is created."""
    import json

    try:
        record = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise KerastlError(f"cannot read a kerastl config from {path}: {exc}") from None
    job = record.get("job", "finetune") if isinstance(record, dict) else "finetune"
    if job not in CLASSIFIER_JOBS:
        raise KerastlError(f"{path} is the config of a {job} run, not of a classifier: "
                           "repeat it with the command that trained it")
    settings = record.get("settings", record) if isinstance(record, dict) else record
    return from_settings(FinetuneConfig, settings, str(path),
                         **{"name": None, "overwrite": False, **overrides})
