"""Train a VAE from scratch, or adapt a trained one to a few target images, on the engine.

A run directory holds what every kerastl run holds (``config.json``, ``model.keras``: the
epoch of lowest validation negative ELBO, ``history.csv``, ``logs/``, ``checkpoints/``,
``run.log``, ``metrics.json``) and per epoch ``plots/samples_epoch_NNN.png`` (a fixed latent
batch) and ``plots/reconstructions_epoch_NNN.png`` (a fixed batch of validation images, above
their reconstructions); with a 2-D latent, ``plots/latent_map.png``.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np

from kerastl._tf import keras_module, tensorflow
from kerastl.blocks import seed_from_run
from kerastl.data.generative import GenerativeImages, generative_splits, image_batches, \
    sample_images
from kerastl.distribute import synchronize_batchnorm, worker_run_dir
from kerastl.engine import start_run
from kerastl.engine.callbacks import CollapseWatch, SampleGrid
from kerastl.engine.checkpoint import TrainingState, read_resumable
from kerastl.engine.phases import PhaseEngine, PhaseSetup, Stage
from kerastl.errors import KerastlError
from kerastl.metrics.diversity import COLLAPSE_MIN_STEPS
from kerastl.report import save_image_grid, square_grid
from kerastl.runs import CONFIG_FILE, METRICS_FILE, VAE_JOBS, RunDir, default_run_name, \
    run_path, versions
from kerastl.vae.config import VaeConfig
from kerastl.vae.model import VAE, KLWarmup, build_decoder, build_encoder, load_vae

keras = keras_module()
log = logging.getLogger("kerastl")

GRID_SAMPLES = 64
#: What the collapse warning suggests for a VAE: its samples all alike means the decoder is
#: ignoring the latent (posterior collapse).
COLLAPSE_ADVICE = "the decoder may be ignoring the latent: try --kl-warmup 5 or a lower --beta"
#: The name of a VAE run's one stage in its history.
STAGE = "train"
#: The figure that picks the kept epoch: the validation negative ELBO (KL weight 1).
MONITOR = "val_neg_elbo"


@dataclasses.dataclass
class VaeResult:
    vae: VAE
    run_dir: Path
    history: list[dict]
    metrics: dict


def train_vae(data: str, **settings) -> VaeResult:
    """Train a VAE on the images of ``data``; see :class:`VaeConfig`.

    Example:
        >>> result = kerastl.vae.train_vae("fashion_mnist", image_size=28, epochs=5)
        >>> result.vae.sample(16, seed=0).shape
        (16, 28, 28, 1)
    """
    return run_vae(VaeConfig(data=data, **settings))


def finetune_vae(init: str, data: str, **settings) -> VaeResult:
    """Adapt the VAE of run ``init`` to the images of ``data`` (few-shot transfer)."""
    settings.setdefault("job", "vae-finetune")
    return run_vae(VaeConfig(data=data, init=str(init), **settings))


def run_vae(config: VaeConfig, existing: Path | None = None, callbacks=()) -> VaeResult:
    """Run the job ``config`` describes (or train from the start in the ``existing`` run
    directory that holds this config); ``callbacks`` join kerastl's own in ``fit``."""
    strategy = _start(config)
    with strategy.scope():
        source = load_vae(config.init) if config.init else None
        size, channels = source.image_shape[0] if source else config.image_size, \
            source.image_shape[-1] if source else config.channels
        splits = _splits(config, size, channels)
        vae = _build(config, source, size, splits["train"])
    path = existing or run_path(config.runs_dir, config.name,
                                default_run_name(config.job, f"vae{size}"))
    with worker_run_dir(strategy, path, config.job, config.overwrite,
                        existing=existing is not None) as run, run.capture_log(log):
        run.write_json(CONFIG_FILE, {"job": config.job, "settings": dataclasses.asdict(config),
                                     "image_size": size, "channels": splits["train"].channels,
                                     "class_names": list(splits["train"].data.class_names)
                                     if vae.num_classes else None, "versions": versions()})
        return _fit(config, strategy, vae, run, splits, None, callbacks)


def resume_vae(run_dir: str | Path) -> VaeResult:
    """Continue an interrupted VAE run from its last completed epoch (weights, optimizer
    state); one stopped before its first epoch ended starts again from its config."""
    run, record, config, state = read_resumable(run_dir, VAE_JOBS, "kerastl vae resume",
                                                VaeConfig)
    if state is None:
        log.info("%s stopped before its first epoch ended: training it again from the start",
                 run.path)
        return run_vae(config, existing=run.path)
    strategy = _start(config)
    size, channels = int(record.get("image_size", config.image_size)), record.get("channels")
    with strategy.scope():  # the same architecture; the checkpoint brings the weights
        source = load_vae(config.init) if config.init else None
        splits = _splits(config, size, channels)
        vae = _build(dataclasses.replace(config, encoder_from=None), source, size,
                     splits["train"])
    with worker_run_dir(strategy, run.path, existing=True) as worker_run, \
            worker_run.capture_log(log):
        return _fit(config, strategy, vae, worker_run, splits, state, ())


def _start(config: VaeConfig):
    return start_run(config, config.batch_size, ("lr",), config.seed, config.deterministic)


def _splits(config: VaeConfig, size: int, channels: int | None) -> dict[str, GenerativeImages]:
    return generative_splits(config.data, size, seed=config.seed, channels=channels,
                             val_fraction=config.val_fraction, classes=config.classes,
                             per_class=config.per_class, limit=config.limit,
                             labelled=config.conditional)


def _build(config: VaeConfig, source: VAE | None, size: int, train: GenerativeImages) -> VAE:
    classes = len(train.data.class_names) if config.conditional else 0
    if source is not None:
        if source.num_classes != classes:
            raise KerastlError(f"{config.init} is a VAE of {source.num_classes or 'no'} "
                               f"classes; the data has {len(train.data.class_names)}"
                               f"{'' if config.conditional else ' (and --conditional is off)'}: "
                               "adapt a conditional VAE to data of as many classes")
        encoder, decoder = source.encoder, source.decoder
    else:
        encoder = build_encoder(size, train.channels, config.latent_dim, config.width, classes)
        decoder = build_decoder(size, train.channels, config.latent_dim, config.width, classes)
    if config.encoder_from:
        copied = seed_from_run(encoder, config.encoder_from, "--encoder-from")
        log.info("encoder seeded from %s: %d layers", config.encoder_from, len(copied))
    vae = VAE(encoder, decoder, likelihood=config.likelihood, sigma=config.sigma,
              beta=config.beta, seed=config.seed)
    if source is not None and source.log_sigma is not None and vae.log_sigma is not None:
        vae.log_sigma.assign(source.log_sigma)
    if tensorflow().distribute.get_strategy().num_replicas_in_sync > 1:
        synchronize_batchnorm(encoder)
        synchronize_batchnorm(decoder)
    vae.compile(optimizer=keras.optimizers.Adam(config.lr), jit_compile=config.jit_compile)
    return vae


def _fit(config: VaeConfig, strategy, vae: VAE, run: RunDir,
         splits: dict[str, GenerativeImages], resume: TrainingState | None,
         callbacks) -> VaeResult:
    train, val = splits["train"], splits.get("val")
    log.info("%s: %d training and %d validation images at %dx%dx%d, latent %d, %s likelihood",
             config.job, len(train), len(val) if val else 0, *vae.image_shape,
             vae.latent_dim, vae.likelihood)
    replicas, classes = strategy.num_replicas_in_sync, vae.num_classes
    batches = image_batches(train, config.batch_size, seed=config.seed, low=0.0,
                            num_classes=classes)
    validation = image_batches(val, min(config.batch_size, len(val)), seed=None, low=0.0,
                               drop_remainder=replicas > 1, num_classes=classes) if val else None
    shown = (val or train).data
    fixed = np.asarray(shown.images[:8])[..., :train.channels]
    fixed_labels = shown.labels[:8] if classes else None
    engine = PhaseEngine(run, vae, monitor=MONITOR if val else None, mode="min",
                         patience=config.patience, resume=resume, verbose=config.verbose,
                         learning_rate_column=True)
    latents = vae.latents(GRID_SAMPLES, config.seed)
    plan = PhaseSetup(vae, batches, validation, callbacks=[
        KLWarmup(config.beta, config.kl_warmup),
        SampleGrid(run, latents),
        CollapseWatch(latents, sample_images(train, GRID_SAMPLES, config.seed),
                      COLLAPSE_ADVICE, COLLAPSE_MIN_STEPS),
        ReconstructionGrid(run, fixed, fixed_labels), *callbacks])
    with strategy.scope():
        fitted = engine.fit([Stage(STAGE, config.epochs)], lambda *_: plan)
    vae = load_vae(run.path)  # the kept epoch
    metrics = {"best_epoch": (fitted.best.best_epoch or 0) + 1,
               "train_seconds": round(fitted.elapsed, 1),
               "final": fitted.history.rows[-1] if fitted.history.rows else {}}
    if val:
        from kerastl.vae.evaluate import elbo_report

        metrics["val"] = elbo_report(vae, val, config.batch_size)
    run.write_json(METRICS_FILE, metrics)
    _final_plots(run, vae, config.seed)
    return VaeResult(vae, run.path, fitted.history.rows, metrics)


def _final_plots(run: RunDir, vae: VAE, seed: int) -> None:
    images = vae.sample(GRID_SAMPLES, seed)
    save_image_grid(square_grid(images), run / "plots" / "samples_final.png",
                    cell=max(images.shape[1], 64))
    if vae.latent_dim == 2:
        save_image_grid(latent_map(vae), run / "plots" / "latent_map.png",
                        cell=max(images.shape[1], 32))


def latent_map(vae: VAE, steps: int = 15, extent: float = 2.0) -> list[list[np.ndarray]]:
    """The rows of a grid of images decoded over ``[-extent, extent]^2`` (a 2-D latent; of
    the first class, for a conditional model)."""
    axis = np.linspace(-extent, extent, steps, dtype=np.float32)
    latents = np.array([[x, y] for y in axis[::-1] for x in axis], np.float32)
    images = vae.generate(latents, np.zeros(len(latents), int) if vae.num_classes else None)
    images = np.repeat(images, 3, axis=-1) if images.shape[-1] == 1 else images
    return [list(images[r * steps:(r + 1) * steps]) for r in range(steps)]


class ReconstructionGrid(keras.callbacks.Callback):
    """After each epoch, a fixed batch of images above their reconstructions:
    ``plots/reconstructions_epoch_NNN.png``."""

    def __init__(self, run: RunDir, images: np.ndarray, labels: np.ndarray | None = None):
        super().__init__()
        self.run, self.images, self.labels = run, images, labels

    def on_epoch_end(self, epoch, logs=None):
        rows = [self.images, self.model.reconstruct(self.images, self.labels)]
        rows = [np.repeat(r, 3, axis=-1) if r.shape[-1] == 1 else r for r in rows]
        save_image_grid([list(r) for r in rows],
                        self.run / "plots" / f"reconstructions_epoch_{epoch + 1:03d}.png",
                        cell=max(self.images.shape[1], 64))
