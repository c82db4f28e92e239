"""Callbacks every trainer shares: best model, history, NaN guard, sample grids."""

from __future__ import annotations

import csv
import dataclasses
import io
import logging
import math
import sys
import time

import numpy as np

from kerastl._tf import keras_module
from kerastl.errors import TrainingError
from kerastl.report import save_image_grid, square_grid
from kerastl.runs import HISTORY_FILE, MODEL_FILE, RunDir

keras = keras_module()
log = logging.getLogger("kerastl")

#: The epoch index of a model kept as it was before any training (its kept epoch, counted
#: from 1 in ``metrics.json``, is then 0).
BEFORE_TRAINING = -1


class BestModelSaver(keras.callbacks.Callback):
    """Save ``target`` atomically whenever ``monitor`` improves, across all phases.

    ``target`` is the whole classifier even when a phase fits only its head. With
    ``monitor=None`` (no validation data) every epoch is saved: the last one is kept.
    A tie goes to the later epoch, which has trained longer: with a few validation
    images ties are common (10 images score in steps of 0.1), and keeping the first
    kept a half-trained model of the frozen phase (measured: 0.62 instead of about
    0.8 test accuracy on Fashion-MNIST at 10 labels per class). A tie with the model
    as it was before training (an imprinted head) keeps that model: on ImageNet features
    with 8 images per class, training from it never raised the test figure and a tied
    epoch lowered it (0.866 against 0.904). Figures compare at float32 precision, Keras'
    (0.9 computed in float64 is not below Keras' 0.9).
    """

    def __init__(self, run: RunDir, target, monitor: str | None = "val_accuracy",
                 mode: str = "max", keep_weights: bool = True):
        super().__init__()
        self.keep_weights = keep_weights  # a copy in memory for restore_best
        self.run = run
        self.target = target
        self.monitor = monitor
        self.mode = mode
        self.sign = 1.0 if mode == "max" else -1.0
        self.best = -math.inf
        self.best_epoch: int | None = None
        self._weights: list | None = None

    def on_epoch_end(self, epoch, logs=None):
        self.consider(epoch, logs)

    def consider(self, epoch: int, logs: dict | None) -> None:
        """Keep ``target`` if ``logs`` (the figures of ``epoch``, or of
        :data:`BEFORE_TRAINING`) beat the best so far, or tie a trained epoch's."""
        if non_finite(logs):
            return  # an epoch whose figures are NaN is never the one kept
        if self.monitor is None:
            self._keep(epoch)
            return
        value = (logs or {}).get(self.monitor)
        if value is None:
            raise TrainingError(f"the figure {self.monitor!r} that picks the best epoch is not "
                                f"among this run's figures ({', '.join(sorted(logs or {}))})")
        value = self.sign * float(np.float32(value))
        if value > self.best or (value == self.best and self.best_epoch != BEFORE_TRAINING):
            self.best = value
            self._keep(epoch)

    def _keep(self, epoch: int) -> None:
        self.best_epoch = epoch
        self.run.save_model(self.target, MODEL_FILE)
        if self.keep_weights:
            self._weights = [variable.numpy() for variable in self.target.weights]

    def restore_best(self) -> None:
        """Put the kept epoch's weights back into ``target``: from memory (a copy taken when
        it was saved), or from ``model.keras`` when that epoch ran before a resume."""
        if self._weights is not None:
            self.target.set_weights(self._weights)
        else:
            self.target.load_weights(self.run / MODEL_FILE)


class HistoryWriter(keras.callbacks.Callback):
    """One ``history.csv`` for the whole run: epoch, phase, learning rate, every metric, and
    the epoch's seconds (``train_seconds``: the training steps alone, before validation)."""

    def __init__(self, run: RunDir, learning_rate: bool = True):
        super().__init__()
        self.run = run
        self.rows: list[dict] = []
        self.phase = ""
        self.learning_rate = learning_rate
        self._started = self._trained = None

    def on_epoch_begin(self, epoch, logs=None):
        self._started, self._trained = time.perf_counter(), None

    def on_test_begin(self, logs=None):
        if self._started is not None and self._trained is None:
            self._trained = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": epoch, "phase": self.phase}
        if self.learning_rate:
            row["learning_rate"] = float(keras.ops.convert_to_numpy(
                self.model.optimizer.learning_rate))
        row.update({key: float(value) for key, value in (logs or {}).items()
                    if key != "learning_rate"})
        if self._started is not None:
            now = time.perf_counter()
            row["epoch_seconds"] = round(now - self._started, 3)
            row["train_seconds"] = round((self._trained or now) - self._started, 3)
            self._started = None
        self.rows.append(row)
        self.run.write_text(HISTORY_FILE, self.to_csv())

    def to_csv(self) -> str:
        columns: list[str] = []
        for row in self.rows:
            columns.extend(key for key in row if key not in columns)
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns)
        writer.writeheader()
        writer.writerows(self.rows)
        return buffer.getvalue()


def non_finite(logs) -> str | None:
    """The first figure of ``logs`` that is NaN or infinite (losses first), else None."""
    items = sorted((logs or {}).items(), key=lambda item: "loss" not in item[0])
    for key, value in items:
        try:
            if not math.isfinite(float(value)):
                return key
        except (TypeError, ValueError):
            continue
    return None


class StopOnNaN(keras.callbacks.Callback):
    """Stop training the moment a loss is NaN or infinite, or an epoch ends with any figure
    so (a validation loss included). The epoch that went bad is never kept
    (:class:`BestModelSaver` and the checkpoint skip it): the trainer finishes with the last
    finite model, or fails with :meth:`require_kept_model` if there is none. ``reason`` says
    what happened; it is logged as a warning, into ``run.log`` too."""

    def __init__(self):
        super().__init__()
        self.epoch = 0
        self.reason: str | None = None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        key = non_finite({k: v for k, v in (logs or {}).items() if "loss" in k})
        if key is not None and self.reason is None:
            self._stop(f"{key} became {float(logs[key])} at epoch {self.epoch + 1}, "
                       f"batch {batch + 1}")

    def on_epoch_end(self, epoch, logs=None):
        key = non_finite(logs)
        if key is not None and self.reason is None:
            self._stop(f"{key} became {float(logs[key])} at epoch {epoch + 1}")

    def _stop(self, what: str) -> None:
        self.reason = f"training stopped: {what}; lower the learning rate or check the data"
        log.warning("%s", self.reason)
        self.model.stop_training = True

    def require_kept_model(self, model_file) -> None:
        """After a stop: fail clearly when no epoch ended finite, so nothing was kept."""
        if self.reason is not None and not model_file.exists():
            raise TrainingError(f"{self.reason}. No epoch ended with finite figures, so there "
                                "is no model to keep")


def fit_verbosity(verbose: int | None) -> int:
    """Keras progress bars on a terminal, one line per epoch elsewhere, none when quiet."""
    if verbose is not None:
        return verbose
    return 1 if sys.stdout.isatty() else 2


@dataclasses.dataclass
class FittedPhases:
    """What training leaves for the final evaluation and plots."""

    elapsed: float
    best: BestModelSaver
    history: HistoryWriter
    phase_starts: dict[str, int]
    initial: dict | None = None  # the validation figures of the model before training


class SampleGrid(keras.callbacks.Callback):
    """After each epoch, a grid from the same latent batch: ``plots/samples_epoch_NNN.png``
    (any model with ``generate(latents) -> uint8 images``: the DCGAN, the VAE)."""

    def __init__(self, run: RunDir, latents: np.ndarray):
        super().__init__()
        self.run, self.latents = run, latents

    def on_epoch_end(self, epoch, logs=None):
        images = self.model.generate(self.latents)
        path = self.run / "plots" / f"samples_epoch_{epoch + 1:03d}.png"
        save_image_grid(square_grid(images), path, cell=max(images.shape[1], 64))


class CollapseWatch(keras.callbacks.Callback):
    """After each epoch, the diversity of a fixed sample batch against real images'
    (:func:`kerastl.metrics.diversity.diversity_ratio`) as the ``diversity`` figure of the
    epoch (into ``history.csv``; this callback runs before the history's), and one warning,
    the first epoch it is below :data:`~kerastl.metrics.diversity.COLLAPSE_BELOW` after at
    least ``min_steps`` training steps (an untrained generator's samples are all alike), that
    says what to try (``advice``)."""

    def __init__(self, latents: np.ndarray, real: np.ndarray, advice: str,
                 min_steps: int = 0):
        super().__init__()
        self.latents, self.real, self.advice = latents, real, advice
        self.min_steps, self.steps, self.epoch_steps = min_steps, 0, 0
        self.warned = False

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_steps = 0

    def on_train_batch_end(self, batch, logs=None):
        self.epoch_steps = batch + 1  # Keras gives the last step's index (several per call)

    def on_epoch_end(self, epoch, logs=None):
        from kerastl.metrics.diversity import COLLAPSE_BELOW, diversity_ratio

        self.steps += self.epoch_steps
        ratio = diversity_ratio(self.model.generate(self.latents), self.real)
        if logs is not None:
            logs["diversity"] = ratio
        if ratio < COLLAPSE_BELOW and self.steps >= self.min_steps and not self.warned:
            self.warned = True
            log.warning("samples look collapsed after epoch %d: their diversity is %.2f of the "
                        "real images' (below %.2f); %s", epoch + 1, ratio, COLLAPSE_BELOW,
                        self.advice)
