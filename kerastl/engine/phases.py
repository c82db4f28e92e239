"""The phase loop every trainer runs: phases one after another on one model, with the same
best-model selection, per-epoch checkpoint and resume, early stopping, history, TensorBoard
and NaN stop.

A trainer says what differs: which model a phase fits, on what data, compiled how (a
:class:`PhaseSetup` from its ``setup`` function). :class:`PhaseEngine` does the rest and leaves
the same files in every run directory: ``model.keras`` (the kept model), ``history.csv``,
``logs/`` (TensorBoard), ``checkpoints/state.json`` and ``run.log``.

Two ways to checkpoint an epoch:

- ``checkpoint="weights"`` (classifiers, colour correction): the kept model is the best epoch,
  so the last epoch's weights and optimizer variables go to ``checkpoints/`` beside it
  (:class:`~kerastl.engine.checkpoint.EpochCheckpoint`).
- ``checkpoint="model"`` (generative models, which keep their last epoch and own several
  optimizers): ``model.keras`` is saved whole after every epoch, optimizers included, and
  ``state.json`` records the epoch; a resumed run loads the model itself.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Callable

from kerastl.engine.callbacks import BEFORE_TRAINING, BestModelSaver, FittedPhases, \
    HistoryWriter, StopOnNaN, fit_verbosity
from kerastl.engine.checkpoint import EpochCheckpoint, TrainingState, load_weights, \
    remove_checkpoints, restore_optimizer, truncate_history
from kerastl.engine.loop import fit
from kerastl.runs import HISTORY_FILE, MODEL_FILE, RunDir

log = logging.getLogger("kerastl")

CHECKPOINTS = ("weights", "model")


@dataclasses.dataclass(frozen=True)
class Stage:
    """A phase with nothing to freeze: ``epochs`` of training, named ``name`` in the history
    (a classifier's phases are :class:`kerastl.transfer.schedule.Phase`)."""

    name: str
    epochs: int


@dataclasses.dataclass
class PhaseSetup:
    """What one phase fits: a compiled ``model`` (the whole model, or a part of it such as a
    head on cached features) on ``train`` (and ``validation``), with the phase's own
    ``callbacks``."""

    model: object
    train: object
    validation: object = None
    callbacks: list = dataclasses.field(default_factory=list)
    steps_per_epoch: int | None = None
    class_weight: dict | None = None


#: ``setup(phase, first_epoch_of_phase, epochs_done_in_phase) -> PhaseSetup``
Setup = Callable[[object, int, int], PhaseSetup]


class PhaseEngine:
    """Fits ``phases`` (each has a ``name`` and ``epochs``) one after another on ``target``,
    the model the run keeps in ``model.keras``.

    ``monitor`` (a validation figure, with ``mode`` max or min) picks the kept epoch and,
    with ``patience``, stops a phase early; without it every epoch is kept (the last wins).
    ``resume`` is the state of an interrupted run (:meth:`TrainingState.read`): its
    finished phases are skipped and the interrupted one continues where it stopped.
    """

    def __init__(self, run: RunDir, target, *, monitor: str | None = None, mode: str = "max",
                 patience: int | None = None, checkpoint: str = "weights",
                 resume: TrainingState | None = None, verbose: int | None = None,
                 learning_rate_column: bool = True):
        if checkpoint not in CHECKPOINTS:
            raise ValueError(f"checkpoint must be one of {CHECKPOINTS}, not {checkpoint!r}")
        self.run, self.target, self.patience, self.verbose = run, target, patience, verbose
        self.whole_model = checkpoint == "model"
        self.history = HistoryWriter(run, learning_rate=learning_rate_column)
        self.best = BestModelSaver(run, target, monitor, mode=mode,
                                   keep_weights=not self.whole_model)
        self.resumed = resume is not None
        self.state = resume or TrainingState(0, 0, 0, False, self.best.best, None, {})
        if resume is not None:
            log.info("resuming %s after epoch %d (phase %d)", run.path, resume.epochs_done,
                     resume.phase_index + 1)
            if not self.whole_model:  # a whole model was loaded by its trainer
                load_weights(run, resume, target)
            self.history.rows = truncate_history(run / HISTORY_FILE, resume.epochs_done)
            self.best.best, self.best.best_epoch = resume.best, resume.best_epoch
        self.checkpoint = EpochCheckpoint(run, target, self.state, self.best,
                                          weights=not self.whole_model)
        self.nan_guard = StopOnNaN()
        self.initial: dict | None = None

    def keep_initial(self, logs: dict) -> None:
        """Let the model as it is now, before any training (a head set rather than trained),
        compete for the kept model; ``logs`` holds its validation figures. Training keeps an
        epoch only if it scores better (a tie keeps this model)."""
        self.initial = dict(logs)
        self.best.consider(BEFORE_TRAINING, logs)

    @property
    def stopped(self) -> bool:
        """Whether a non-finite figure stopped training."""
        return self.nan_guard.reason is not None

    def fit(self, phases, setup: Setup) -> FittedPhases:
        """Train every phase not done yet; the kept model is on disk when this returns, and
        (best-epoch selection) its weights are back in ``target``."""
        state, started = self.state, time.perf_counter()
        for index, phase in enumerate(phases):
            if index < state.phase_index or (index == state.phase_index and
                                             state.phase_finished):
                continue
            continuing = self.resumed and index == state.phase_index
            if not continuing:
                state.phase_index, state.phase_start = index, len(self.history.rows)
                state.phase_finished = False
                state.phase_starts[phase.name] = state.phase_start
            self._fit_phase(phase, setup, continuing)
            if self.stopped:
                break  # the model on disk is the last finite one
            state.phase_finished = True
            self.checkpoint.write_state()
        elapsed = time.perf_counter() - started
        self.nan_guard.require_kept_model(self.run / MODEL_FILE)
        if not self.whole_model:  # the kept epoch's weights, as in model.keras, back in target
            self.best.restore_best()
        remove_checkpoints(self.run)
        return FittedPhases(elapsed, self.best, self.history, state.phase_starts, self.initial)

    def _fit_phase(self, phase, setup: Setup, continuing: bool) -> None:
        import keras

        start = self.state.phase_start
        first = self.state.epochs_done if continuing else start
        plan = setup(phase, start, first - start)
        if continuing and not self.whole_model:
            restore_optimizer(self.run, self.state, plan.model.optimizer,
                              plan.model.trainable_variables)
        self.history.phase = phase.name
        # the plan's callbacks first: figures they add to an epoch's logs reach the history
        callbacks = [*plan.callbacks, self.best, self.history, self.checkpoint, self.nan_guard,
                     keras.callbacks.TensorBoard(str(self.run / "logs"), write_graph=False)]
        if self.best.monitor and self.patience:
            callbacks.append(keras.callbacks.EarlyStopping(
                self.best.monitor, mode=self.best.mode, patience=self.patience))
        fit(plan.model, plan.train, validation_data=plan.validation, initial_epoch=first,
            epochs=start + phase.epochs, steps_per_epoch=plan.steps_per_epoch,
            callbacks=callbacks, class_weight=plan.class_weight,
            verbose=fit_verbosity(self.verbose))
