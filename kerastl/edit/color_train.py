"""Train a colour-correction model, self-supervised, from any folder of images.

Clean images are degraded at random within the adjustments' ranges; the model
learns the parameters that undo the degradation. A pretrained backbone is
finetuned through the same freeze-then-unfreeze schedule as a classifier.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path


from kerastl._tf import tensorflow
from kerastl.backbones import layer_groups
from kerastl.data.bundle import DataBundle, load_images
from kerastl.data.imageset import ImageSet
from kerastl.data.pipeline import batch_reader
from kerastl.distribute import ScaleSettings, synchronize_batchnorm, validation_batch, \
    worker_run_dir
from kerastl.engine import start_run
from kerastl.edit import color_ops
from kerastl.edit.color_eval import evaluate_color
from kerastl.edit.color_model import IMAGE, PARAMS, build_predictor, build_trainer, \
    lab_l1_loss, normalized_param_loss
from kerastl.engine.loop import fit
from kerastl.report import plot_history, save_image_grid
from kerastl.settings import check_range, check_types
from kerastl.runs import COLOR_JOB, CONFIG_FILE, METRICS_FILE, MODEL_FILE, RunDir, \
    check_name, default_run_name, load_keras_model, run_path, versions
from kerastl.engine.callbacks import BestModelSaver, FittedPhases, HistoryWriter, StopOnNaN, \
    fit_verbosity
from kerastl.transfer.rates import make_optimizer
from kerastl.transfer.model import pretrained_run_backbone, resolve_backbone
from kerastl.transfer.config import DEFAULT_BACKBONE
from kerastl.transfer.schedule import apply_phase, parse_unfreeze, plan_phases

log = logging.getLogger("kerastl")

JOB = COLOR_JOB
DEFAULT_SIZE = 96


@dataclasses.dataclass
class ColorConfig(ScaleSettings):
    """Every setting of a colour-correction run; saved as ``config.json``.

    Each epoch sees ``copies`` differently degraded versions of every training
    image, with parameters drawn uniformly within each adjustment's range times
    ``strength``. The loss is the parameters' range-normalised squared error
    plus ``image_loss_weight`` x the corrected image's L1 distance to the clean
    one in Lab (divided by 100). ``image_size`` defaults to the saved backbone's
    size when ``weights`` is a run, else 96 px: global colour needs little detail.
    """

    data: str
    backbone: str | None = DEFAULT_BACKBONE
    weights: str | None = "imagenet"
    image_size: int | None = None
    classes: str | list[str | int] | None = None
    per_class: int | None = None
    limit: int | None = None
    strength: float = 1.0
    copies: int = 8
    batch_size: int = 32
    frozen_epochs: int = 2
    finetune_epochs: int = 6
    lr: float = 1e-3
    finetune_lr: float | None = None
    unfreeze: str = "all"
    image_loss_weight: float = 1.0
    val_fraction: float = 0.2
    seed: int = 0
    deterministic: bool = True
    runs_dir: str = "runs"
    name: str | None = None
    overwrite: bool = False
    verbose: int | None = None

    def __post_init__(self):
        check_types(self)
        for name, low, high, low_open in _RANGES:
            check_range(self, name, low, high, low_open)
        if self.name:
            check_name(self.name)
        parse_unfreeze(self.unfreeze)
        self.data = str(self.data)
        self.weights = None if self.weights in (None, "none") else str(self.weights)
        if self.image_size is None and pretrained_run_backbone(self.weights) is None:
            self.image_size = DEFAULT_SIZE


#: (setting, low, high, low is open): what ColorConfig accepts; the CLI's types agree.
_RANGES = [("image_size", 16, None, False), ("per_class", 1, None, False),
           ("limit", 1, None, False), ("strength", 0.05, 1, False),
           ("copies", 1, None, False), ("batch_size", 1, None, False),
           ("frozen_epochs", 0, None, False), ("finetune_epochs", 0, None, False),
           ("lr", 0, None, True),
           ("finetune_lr", 0, None, True), ("image_loss_weight", 0, None, False),
           ("val_fraction", 0.05, 0.9, False)]


@dataclasses.dataclass
class ColorResult:
    model: object
    run_dir: Path
    metrics: dict
    history: list[dict]


def train_color(data: str, **settings) -> ColorResult:
    """Train a colour-correction model on the images of ``data``; see :class:`ColorConfig`.

    Example:
        >>> result = kerastl.edit.train_color("photos/", backbone="mobilenetv3small")
        >>> result.metrics["val"]["corrected"]["ciede2000"]
    """
    return run_color(ColorConfig(data=data, **settings))


def run_color(config: ColorConfig) -> ColorResult:
    strategy = start_run(config, config.batch_size, ("lr", "finetune_lr"), config.seed,
                         config.deterministic)
    with strategy.scope():
        backbone = resolve_backbone(config.backbone, config.weights, config.image_size)
    bundle = load_images(config.data, backbone.meta.image_size,
                         val_fraction=config.val_fraction, seed=config.seed,
                         classes=config.classes, per_class=config.per_class, limit=config.limit)
    path = run_path(config.runs_dir, config.name, default_run_name(JOB, backbone.meta.name))
    with worker_run_dir(strategy, path, JOB, config.overwrite) as run, run.capture_log(log):
        with strategy.scope():
            trained = _fit_phases(config, backbone, bundle, run)
        return _finish(config, bundle, run, trained)


def _fit_phases(config: ColorConfig, backbone, bundle: DataBundle,
                run: RunDir) -> FittedPhases:
    phases = plan_phases(transfer=backbone.transferred, frozen_epochs=config.frozen_epochs,
                         finetune_epochs=config.finetune_epochs, lr=config.lr,
                         finetune_lr=config.finetune_lr, unfreeze=config.unfreeze,
                         train_bn=False, schedule="constant")  # what make_optimizer below does
    log.info("colour correction: %d training and %d validation images at %d px",
             len(bundle.train), len(bundle.val), backbone.meta.image_size)
    predictor = build_predictor(backbone)
    trainer = build_trainer(predictor)
    replicas = tensorflow().distribute.get_strategy().num_replicas_in_sync
    if replicas > 1:
        synchronize_batchnorm(predictor)
    run.write_json(CONFIG_FILE, _config_record(config, backbone, bundle, phases))
    train_ds = degraded_dataset(bundle.train, config.batch_size, seed=config.seed,
                                copies=config.copies, strength=config.strength,
                                drop_remainder=replicas > 1)
    val_ds = fixed_degraded_dataset(bundle.val,
                                    validation_batch(replicas, config.batch_size,
                                                     len(bundle.val)),
                                    seed=config.seed + 1, strength=config.strength,
                                    drop_remainder=replicas > 1)
    history, best = HistoryWriter(run), BestModelSaver(run, predictor, "val_loss", mode="min")
    groups = layer_groups(backbone.model, backbone.spec)
    phase_starts, started, nan_guard = {}, time.perf_counter(), StopOnNaN()
    for phase in phases:
        apply_phase(backbone.model, groups, phase)
        trainer.compile(optimizer=make_optimizer(phase.learning_rate),
                        loss={PARAMS: normalized_param_loss, IMAGE: lab_l1_loss},
                        loss_weights={PARAMS: 1.0, IMAGE: config.image_loss_weight})
        history.phase, start = phase.name, len(history.rows)
        phase_starts[phase.name] = start
        log.info("phase %s: %d epoch(s) at lr %.2g", phase.name, phase.epochs,
                 phase.learning_rate)
        fit(trainer, train_ds, validation_data=val_ds, initial_epoch=start,
            epochs=start + phase.epochs, callbacks=[best, history, nan_guard],
            verbose=fit_verbosity(config.verbose))
        if nan_guard.reason:
            break
    nan_guard.require_kept_model(run / MODEL_FILE)
    return FittedPhases(time.perf_counter() - started, best, history, phase_starts)


def _finish(config: ColorConfig, bundle: DataBundle, run: RunDir,
            fitted: FittedPhases) -> ColorResult:
    """Evaluate the best model on this process alone and write the run's reports."""
    model = load_keras_model(run / MODEL_FILE)
    held_out = bundle.test if bundle.test is not None and len(bundle.test) else bundle.val
    split = "test" if held_out is bundle.test else "val"
    report = evaluate_color(model, list(held_out.images), seed=config.seed + 2,
                            strength=config.strength)
    metrics = {split: report.summary, "best_epoch": (fitted.best.best_epoch or 0) + 1,
               "train_seconds": round(fitted.elapsed, 1)}
    run.write_json(METRICS_FILE, metrics)
    plot_history(fitted.history.rows, fitted.phase_starts, run / "plots" / "training_curves.png",
                 metrics=("loss", "corrected_loss"))
    save_image_grid(report.grid_rows(8), run / "plots" / "before_after.png",
                    titles=report.grid_titles)
    return ColorResult(model, run.path, metrics, fitted.history.rows)


def degraded_dataset(images: ImageSet, batch_size: int, *, seed: int, copies: int,
                     strength: float, drop_remainder: bool = False):
    """Training batches ``(degraded, {"params": p, "image": clean})``, new draws every epoch;
    the clean images are read batch by batch (from their files, for a streamed folder)."""
    tf = tensorflow()
    limits = tf.constant(color_ops.LIMITS * strength)
    read = batch_reader(images)

    def make_pair(index, pair_seed):
        clean = read(index)[0]
        count = tf.shape(clean)[0]
        unit = tf.random.stateless_uniform((count, len(color_ops.ADJUSTMENTS)), pair_seed,
                                           minval=-1.0, maxval=1.0)
        params = unit * limits
        return color_ops.degrade(clean, params), {PARAMS: params,
                                                  IMAGE: tf.cast(clean, tf.float32) / 255.0}

    indices = (tf.data.Dataset.range(len(images)).repeat(copies)
               .shuffle(len(images) * copies, seed=seed, reshuffle_each_iteration=True)
               .batch(batch_size, drop_remainder=drop_remainder))
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
    return (tf.data.Dataset.zip(indices, seeds).map(make_pair)
            .prefetch(tf.data.AUTOTUNE))


def fixed_degraded_dataset(images: ImageSet, batch_size: int, *, seed: int, strength: float,
                           drop_remainder: bool = False):
    """The same degraded copy of each image every epoch (validation), read batch by batch."""
    tf = tensorflow()
    params = tf.constant(color_ops.random_params(len(images), seed, strength), tf.float32)
    read = batch_reader(images)

    def pair(index):
        clean = read(index)[0]
        chosen = tf.gather(params, index)
        return color_ops.degrade(clean, chosen), {PARAMS: chosen,
                                                  IMAGE: tf.cast(clean, tf.float32) / 255.0}

    return (tf.data.Dataset.range(len(images)).batch(batch_size, drop_remainder=drop_remainder)
            .map(pair).prefetch(tf.data.AUTOTUNE))


def _config_record(config: ColorConfig, backbone, bundle: DataBundle, phases) -> dict:
    return {"job": JOB, "settings": dataclasses.asdict(config),
            "backbone": dataclasses.asdict(backbone.meta),
            "adjustments": {a.name: {"limit": a.limit, "effect": a.doc}
                            for a in color_ops.ADJUSTMENTS},
            "phases": [dataclasses.asdict(p) for p in phases], "data": bundle.describe(),
            "versions": versions()}
