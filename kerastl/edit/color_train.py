"""Train a colour-correction model, self-supervised, from any folder of images.

Clean images are degraded at random within the adjustments' ranges; the model
learns the parameters that undo the degradation. A pretrained backbone is
finetuned through the same freeze-then-unfreeze schedule as a classifier.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from kerastl._tf import tensorflow
from kerastl.backbones import layer_groups
from kerastl.data.bundle import DataBundle, load_images
from kerastl.data.imageset import ImageSet
from kerastl.data.pipeline import batch_reader
from kerastl.distribute import synchronize_batchnorm, validation_batch, worker_run_dir
from kerastl.edit import color_ops
from kerastl.edit.color_config import ColorConfig
from kerastl.edit.color_eval import evaluate_color
from kerastl.edit.color_model import IMAGE, PARAMS, build_predictor, build_trainer, \
    lab_l1_loss, normalized_param_loss
from kerastl.engine import start_run
from kerastl.engine.callbacks import FittedPhases
from kerastl.engine.checkpoint import TrainingState, read_resumable
from kerastl.engine.phases import PhaseEngine, PhaseSetup
from kerastl.report import plot_history, save_image_grid
from kerastl.runs import COLOR_JOB, CONFIG_FILE, METRICS_FILE, RunDir, default_run_name, \
    run_path, versions
from kerastl.transfer.model import ResolvedBackbone, backbone_of_run, resolve_backbone
from kerastl.transfer.rates import make_optimizer, make_schedule
from kerastl.transfer.recipes import Budget, FreezeThenUnfreeze, plan_phases
from kerastl.transfer.schedule import Phase

log = logging.getLogger("kerastl")

JOB = COLOR_JOB
#: Colour correction trains the head, then the unfrozen backbone at a tenth of the rate.
COLOR_RECIPE = FreezeThenUnfreeze()

__all__ = ["ColorConfig", "ColorResult", "resume_color", "run_color", "train_color"]


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


def run_color(config: ColorConfig, existing: Path | None = None) -> ColorResult:
    """Run the job ``config`` describes (or train from the start in the ``existing`` run
    directory that holds this config)."""
    strategy = _start(config)
    with strategy.scope():
        backbone = resolve_backbone(config.backbone, config.weights, config.image_size)
    bundle = _data(config, backbone.meta.image_size)
    path = existing or run_path(config.runs_dir, config.name,
                                default_run_name(JOB, backbone.meta.name))
    with worker_run_dir(strategy, path, JOB, config.overwrite,
                        existing=existing is not None) as run, run.capture_log(log):
        return _train(config, strategy, backbone, bundle, run)


def resume_color(run_dir: str | Path) -> ColorResult:
    """Continue an interrupted colour run from its last completed epoch (phase, weights,
    optimizer state, schedule position); one stopped before its first epoch ended starts
    again from its config."""
    run, record, config, state = read_resumable(
        run_dir, (JOB,), "kerastl edit train-color --resume", ColorConfig)
    if state is None:
        log.info("%s stopped before its first epoch ended: training it again from the start",
                 run.path)
        return run_color(config, existing=run.path)
    strategy = _start(config)
    with strategy.scope():
        backbone = backbone_of_run(record, run / CONFIG_FILE)
    bundle = _data(config, backbone.meta.image_size)
    with worker_run_dir(strategy, run.path, existing=True) as worker_run, \
            worker_run.capture_log(log):
        return _train(config, strategy, backbone, bundle, worker_run, state)


def _start(config: ColorConfig):
    return start_run(config, config.batch_size, ("lr", "finetune_lr"), config.seed,
                     config.deterministic)


def _data(config: ColorConfig, image_size: int) -> DataBundle:
    return load_images(config.data, image_size, val_fraction=config.val_fraction,
                       seed=config.seed, classes=config.classes, per_class=config.per_class,
                       limit=config.limit)


def _train(config: ColorConfig, strategy, backbone: ResolvedBackbone, bundle: DataBundle,
           run: RunDir, resume: TrainingState | None = None) -> ColorResult:
    with strategy.scope():
        fitted = _fit_phases(config, backbone, bundle, run, resume)
    return _finish(config, bundle, run, fitted)


def _fit_phases(config: ColorConfig, backbone: ResolvedBackbone, bundle: DataBundle,
                run: RunDir, resume: TrainingState | None) -> FittedPhases:
    budget = Budget(config.frozen_epochs, config.finetune_epochs, config.lr, config.finetune_lr,
                    config.unfreeze, schedule=config.schedule)
    phases = plan_phases(budget, transfer=backbone.transferred, recipe=COLOR_RECIPE)
    log.info("colour correction: %d training and %d validation images at %d px",
             len(bundle.train), len(bundle.val), backbone.meta.image_size)
    predictor = build_predictor(backbone)
    if tensorflow().distribute.get_strategy().num_replicas_in_sync > 1:
        synchronize_batchnorm(predictor)
    if resume is None:
        run.write_json(CONFIG_FILE, _config_record(config, backbone, bundle, phases))
    engine = PhaseEngine(run, predictor, monitor="val_loss", mode="min",
                         patience=config.patience, resume=resume, verbose=config.verbose)
    return engine.fit(phases, ColorPhases(config, backbone, predictor, bundle).setup)


class ColorPhases:
    """What a colour phase fits: the trainer (the predictor with the corrected image as a
    second output) on freshly degraded copies, validated on fixed ones."""

    def __init__(self, config: ColorConfig, backbone: ResolvedBackbone, predictor,
                 bundle: DataBundle):
        self.config, self.backbone, self.bundle = config, backbone, bundle
        self.trainer = build_trainer(predictor)
        self.groups = layer_groups(backbone.model, backbone.spec)
        replicas = tensorflow().distribute.get_strategy().num_replicas_in_sync
        self.train = degraded_dataset(bundle.train, config.batch_size, seed=config.seed,
                                      copies=config.copies, strength=config.strength,
                                      drop_remainder=replicas > 1)
        self.validation = fixed_degraded_dataset(
            bundle.val, validation_batch(replicas, config.batch_size, len(bundle.val)),
            seed=config.seed + 1, strength=config.strength, drop_remainder=replicas > 1)

    def setup(self, phase: Phase, start: int, epochs_done: int) -> PhaseSetup:
        config = self.config
        COLOR_RECIPE.freeze_before_training(self.backbone.model, self.groups, phase)
        steps = -(-len(self.bundle.train) * config.copies // config.batch_size) * phase.epochs
        self.trainer.compile(
            optimizer=make_optimizer(make_schedule(phase.schedule, phase.learning_rate, steps)),
            loss={PARAMS: normalized_param_loss, IMAGE: lab_l1_loss},
            loss_weights={PARAMS: 1.0, IMAGE: config.image_loss_weight})
        log.info("phase %s: %d epoch(s) at lr %.2g (%s)", phase.name, phase.epochs,
                 phase.learning_rate, phase.schedule)
        return PhaseSetup(self.trainer, self.train, self.validation)


def _finish(config: ColorConfig, bundle: DataBundle, run: RunDir,
            fitted: FittedPhases) -> ColorResult:
    """Evaluate the kept model (the trained one, best weights back) and write the reports."""
    model = fitted.best.target
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
            "backbone": dataclasses.asdict(backbone.meta), "transferred": backbone.transferred,
            "adjustments": {a.name: {"limit": a.limit, "effect": a.doc}
                            for a in color_ops.ADJUSTMENTS},
            "phases": [dataclasses.asdict(p) for p in phases], "data": bundle.describe(),
            "versions": versions()}
