"""Train a DCGAN from scratch, or adapt a trained one to a few target images.

A run directory holds ``model.keras`` (the whole GAN, both optimizers' states
included: saved after every epoch, so a killed run resumes), ``history.csv``,
``plots/samples_epoch_NNN.png`` from a fixed latent batch and
``plots/samples_final.png``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from pathlib import Path

from kerastl._tf import keras_module, tensorflow
from kerastl.data.generative import GenerativeImages, generative_splits, image_batches, \
    sample_images
from kerastl.distribute import synchronize_batchnorm, worker_run_dir
from kerastl.engine import start_run
from kerastl.errors import KerastlError, RunDirError
from kerastl.gan.config import GanConfig
from kerastl.gan.dcgan import DCGAN, load_gan
from kerastl.gan.diffaugment import DEFAULT_POLICY, parse_policy
from kerastl.blocks import seed_from_run
from kerastl.gan.networks import build_discriminator, build_generator, freeze_blocks
from kerastl.report import save_image_grid, square_grid
from kerastl.runs import CONFIG_FILE, GAN_JOBS, HISTORY_FILE, METRICS_FILE, MODEL_FILE, \
    RunDir, default_run_name, require_job, require_settings, run_path, versions
from kerastl.settings import from_settings
from kerastl.engine.checkpoint import TrainingState, truncate_history
from kerastl.engine.callbacks import CollapseWatch, SampleGrid
from kerastl.metrics.diversity import COLLAPSE_MIN_STEPS
from kerastl.engine.phases import PhaseEngine, PhaseSetup, Stage

keras = keras_module()
log = logging.getLogger("kerastl")

GRID_SAMPLES = 64
#: What the collapse warning suggests.
COLLAPSE_ADVICE = ("try more augmentation (a lower --ada-target, or --ada-target 0), "
                   "--spectral-norm, or a lower --d-lr")
#: The name of a GAN run's one stage in its history.
STAGE = "train"


@dataclasses.dataclass
class GanResult:
    gan: DCGAN
    run_dir: Path
    history: list[dict]
    metrics: dict


def train_gan(data: str, **settings) -> GanResult:
    """Train a DCGAN on the images of ``data``; see :class:`GanConfig`.

    Example:
        >>> result = kerastl.gan.train_gan("fashion_mnist", image_size=32, epochs=5)
        >>> result.gan.sample(16, seed=0).shape
        (16, 32, 32, 1)
    """
    return run_gan(GanConfig(data=data, **settings))


def finetune_gan(init: str, data: str, **settings) -> GanResult:
    """Adapt the GAN of run ``init`` to the images of ``data`` (few-shot transfer)."""
    settings.setdefault("job", "gan-finetune")
    return run_gan(GanConfig(data=data, init=str(init), **settings))


def run_gan(config: GanConfig, callbacks=(), existing: Path | None = None) -> GanResult:
    """Run the job ``config`` describes (or train from the start in the ``existing`` run
    directory that holds this config); ``callbacks`` join kerastl's own in ``fit``."""
    strategy = _start(config)
    with strategy.scope():  # both networks and both optimizers
        source = load_gan(config.init) if config.init else None
        size = source.generator.output_shape[1] if source else config.image_size
        images = _images(config, size, source.generator.output_shape[-1] if source else None,
                         conditional=source.num_classes > 0 if source else config.conditional)
        classes = _classes(config, source, images)
        gan = _build(config, source, size, images.channels, _policy(config.diffaugment),
                     classes)
    path = existing or run_path(config.runs_dir, config.name,
                                default_run_name(config.job, f"dcgan{size}"))
    with worker_run_dir(strategy, path, config.job, config.overwrite,
                        existing=existing is not None) as run:
        run.write_json(CONFIG_FILE, {"job": config.job, "settings": dataclasses.asdict(config),
                                     "image_size": size, "channels": images.channels,
                                     "diffaugment": gan.diffaugment,
                                     "class_names": list(images.data.class_names)
                                     if classes else None, "versions": versions()})
        return _fit(config, strategy, gan, run, images, None, callbacks)


def resume_gan(run_dir: str | Path, epochs: int | None = None) -> GanResult:
    """Continue a GAN run from its last saved epoch (networks, EMA and both optimizers' states
    come back with ``model.keras``), up to its ``epochs`` or the ``epochs`` given. A run
    stopped before its first epoch ended starts again from its config."""
    run = RunDir(Path(run_dir))
    record = require_job(run.path, GAN_JOBS, "kerastl gan resume")
    if record is None:
        raise RunDirError(f"{run.path} is not a kerastl run directory (no {CONFIG_FILE})")
    if (run / METRICS_FILE).exists() and epochs is None:
        raise KerastlError(f"{run.path} finished already: pass more --epochs to train on")
    settings = require_settings(record, run.path)
    config = from_settings(GanConfig, settings, str(run / CONFIG_FILE),
                           epochs=epochs or settings.get("epochs", 10))
    if not (run / MODEL_FILE).exists():
        log.info("%s stopped before its first epoch ended: training it again from the start",
                 run.path)
        return run_gan(config, existing=run.path)
    state = _saved_state(run, config.epochs)
    strategy = _start(config)
    with strategy.scope():
        gan = load_gan(run.path)
        _synchronize(gan)
    images = _images(config, int(record.get("image_size", config.image_size)),
                     record.get("channels"), conditional=gan.num_classes > 0)
    with worker_run_dir(strategy, run.path, existing=True) as worker_run:
        return _fit(config, strategy, gan, worker_run, images, state, ())


def _saved_state(run: RunDir, epochs: int) -> TrainingState:
    """Where the run stopped: its checkpoint state, or for a run from before the engine kept
    one, its history; a finished phase reopens when more ``epochs`` are asked for."""
    state = TrainingState.read(run)
    if state is None:
        done = len(truncate_history(run / HISTORY_FILE, 10**9))
        state = TrainingState(0, 0, done, False, -math.inf, None, {STAGE: 0})
    if state.phase_finished and epochs > state.epochs_done:
        state.phase_finished = False
    return state


def _start(config: GanConfig):
    return start_run(config, config.batch_size, ("d_lr", "g_lr"), config.seed,
                     config.deterministic)


def _synchronize(gan: DCGAN) -> None:
    """BatchNorm over the global batch when there are several replicas."""
    if tensorflow().distribute.get_strategy().num_replicas_in_sync > 1:
        synchronize_batchnorm(gan.generator)
        synchronize_batchnorm(gan.discriminator)


def _images(config: GanConfig, size: int, channels: int | None,
            conditional: bool) -> GenerativeImages:
    return generative_splits(config.data, size, seed=config.seed,
                             channels=channels or config.channels, classes=config.classes,
                             per_class=config.per_class, limit=config.limit,
                             labelled=conditional)["train"]


def _classes(config: GanConfig, source: DCGAN | None, images: GenerativeImages) -> int:
    """The classes a conditional GAN is built for (0: unconditional); a conditional source
    adapts only to data of as many classes."""
    found = len(images.data.class_names)
    if source is None:
        return found if config.conditional else 0
    if source.num_classes and source.num_classes != found:
        raise KerastlError(f"{config.init} is a GAN of {source.num_classes} classes; "
                           f"{config.data} has {found}: adapt it to data of as many classes")
    return source.num_classes


def _fit(config: GanConfig, strategy, gan: DCGAN, run: RunDir, images: GenerativeImages,
         resume: TrainingState | None, callbacks) -> GanResult:
    with run.capture_log(log):
        size = images.size
        done = resume.epochs_done if resume else 0
        log.info("%s: %d images at %dx%dx%d, DiffAugment %s, from epoch %d", config.job,
                 len(images), size, size, images.channels, _augmentation(gan), done + 1)
        dataset = image_batches(images, config.batch_size, seed=config.seed,
                                num_classes=gan.num_classes)
        steps_per_epoch = _steps_per_epoch(config, len(images))
        # model.keras is the GAN of the last epoch, both optimizers included: its checkpoint
        engine = PhaseEngine(run, gan, checkpoint="model", resume=resume,
                             verbose=config.verbose, learning_rate_column=False)
        latents = gan.latents(GRID_SAMPLES, config.seed)
        plan = PhaseSetup(gan, dataset.repeat() if steps_per_epoch else dataset,
                          callbacks=[SampleGrid(run, latents),
                                     CollapseWatch(latents,
                                                   sample_images(images, GRID_SAMPLES,
                                                                 config.seed),
                                                   COLLAPSE_ADVICE, COLLAPSE_MIN_STEPS),
                                     *callbacks],
                          steps_per_epoch=steps_per_epoch)
        with strategy.scope():
            fitted = engine.fit([Stage(STAGE, config.epochs)], lambda *_: plan)
        if engine.stopped:
            gan = load_gan(run.path)  # the last epoch that ended finite
        rows = fitted.history.rows
        steps = (len(rows) - done) * (steps_per_epoch or len(images) // config.batch_size)
        metrics = {"final": rows[-1] if rows else {},
                   "train_seconds": round(fitted.elapsed, 1),
                   "steps_per_second": round(steps / fitted.elapsed, 2)
                   if fitted.elapsed else None}
        run.write_json(METRICS_FILE, metrics)
        save_image_grid(square_grid(gan.sample(GRID_SAMPLES, config.seed)),
                        run / "plots" / "samples_final.png", cell=max(size, 64))
        return GanResult(gan, run.path, rows, metrics)


def _steps_per_epoch(config: GanConfig, count: int) -> int | None:
    """The steps of an epoch: ``config.steps_per_epoch``; else None (one pass over the
    ``count`` images) unless a pass is shorter than ``config.min_epoch_images``."""
    if config.steps_per_epoch:
        return config.steps_per_epoch
    one_pass = count // config.batch_size
    wanted = math.ceil(config.min_epoch_images / config.batch_size)
    if wanted <= one_pass:
        return None
    log.info("an epoch is %d steps (%d images, --min-epoch-images): one pass over %d images "
             "is %d", wanted, wanted * config.batch_size, count, one_pass)
    return wanted


def _build(config: GanConfig, source: DCGAN | None, size: int, channels: int,
           policy: tuple[str, ...], classes: int) -> DCGAN:
    if source is not None:
        generator, discriminator = source.generator, source.discriminator
    else:
        generator = build_generator(size, channels, config.latent_dim, config.width,
                                    num_classes=classes)
        discriminator = build_discriminator(size, channels, config.width, config.spectral_norm,
                                            num_classes=classes)
    if config.d_from:
        copied = seed_from_run(discriminator, config.d_from, "--d-from")
        log.info("discriminator seeded from %s: %d layers", config.d_from, len(copied))
    if config.freeze_d:
        log.info("FreezeD: %s frozen", ", ".join(freeze_blocks(discriminator, config.freeze_d)))
    gan = DCGAN(generator, discriminator, loss=config.loss, ema_decay=config.ema_decay,
                diffaugment=",".join(policy), ada_target=config.ada_target, seed=config.seed)
    _synchronize(gan)
    if source is not None and source.ema_generator is not None and gan.ema_generator is not None:
        gan.ema_generator.set_weights(source.ema_generator.get_weights())
    gan.compile(d_optimizer=keras.optimizers.Adam(config.d_lr, beta_1=config.beta_1),
                g_optimizer=keras.optimizers.Adam(config.g_lr, beta_1=config.beta_1),
                jit_compile=config.jit_compile)
    return gan


def _augmentation(gan: DCGAN) -> str:
    if not gan.policy:
        return "off"
    if gan.augment_p is None:
        return f"{gan.diffaugment} on every image"
    return f"{gan.diffaugment}, adaptive (D's accuracy on real images held at {gan.ada_target})"


def _policy(diffaugment: str) -> tuple[str, ...]:
    return parse_policy(DEFAULT_POLICY if diffaugment == "auto" else diffaugment)
