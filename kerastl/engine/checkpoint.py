"""Checkpoints that survive SIGKILL, and what a resumed run reads back.

After every epoch: the model's weights and the optimizer's variables go to
files named by the epoch (``checkpoints/epoch_NNN.weights.npz`` and
``epoch_NNN.optimizer.npz``), each written to a temporary name and renamed;
then ``checkpoints/state.json`` (phase, epochs done, best score) is replaced
atomically to point at them; then older epochs' files are removed. A kill at
any moment leaves ``state.json`` pointing at a complete pair. A model saved whole
every epoch (optimizers included) is its own checkpoint: then only ``state.json``
is written, after the model.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from kerastl._tf import keras_module
from kerastl.errors import RunDirError
from kerastl.runs import RunDir, atomic_write, atomic_write_text

keras = keras_module()

STATE_FILE = "state.json"


@dataclasses.dataclass
class TrainingState:
    """Where a run stood after its last completed epoch."""

    phase_index: int
    phase_start: int
    epochs_done: int
    phase_finished: bool
    best: float
    best_epoch: int | None
    phase_starts: dict[str, int]

    @classmethod
    def read(cls, run: RunDir) -> "TrainingState | None":
        """The state of the run's last complete epoch; None if no epoch finished."""
        path = run / "checkpoints" / STATE_FILE
        if not path.exists():
            return None
        try:
            return cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError) as exc:
            raise RunDirError(f"{path} is not a readable kerastl checkpoint state ({exc})") \
                from None


class EpochCheckpoint(keras.callbacks.Callback):
    """Write the checkpoint of each finished epoch (see the module docstring): ``target``'s
    weights and the fitted model's optimizer state, or with ``weights=False`` the state alone
    (``target`` is saved whole every epoch by the caller)."""

    def __init__(self, run: RunDir, target, state: TrainingState, best, weights: bool = True):
        super().__init__()
        self.run, self.target, self.state, self.best = run, target, state, best
        self.weights = weights
        self.folder = run / "checkpoints"

    def on_epoch_end(self, epoch, logs=None):
        from kerastl.engine.callbacks import non_finite

        if non_finite(logs):
            return  # resume from the last finite epoch, never from a NaN one
        self.state.epochs_done = epoch + 1
        self.save()

    def save(self) -> None:
        epoch = self.state.epochs_done
        if self.weights:
            atomic_write(self.folder / f"epoch_{epoch:03d}.weights.npz",
                         _npz(weight_arrays(self.target)))
            variables = {state_key(v): v.numpy() for v in self.model.optimizer.variables}
            atomic_write(self.folder / f"epoch_{epoch:03d}.optimizer.npz", _npz(variables))
        self.write_state()

    def write_state(self) -> None:
        """Point ``state.json`` at the files of ``state.epochs_done`` (alone: at the end of a
        phase, whose last epoch's files were just written or were the ones resumed from)."""
        epoch = self.state.epochs_done
        self.state.best, self.state.best_epoch = self.best.best, self.best.best_epoch
        atomic_write_text(self.folder / STATE_FILE,
                          json.dumps(dataclasses.asdict(self.state), indent=2) + "\n")
        for old in self.folder.glob("epoch_*"):
            if not old.name.startswith(f"epoch_{epoch:03d}."):
                old.unlink(missing_ok=True)


def _npz(arrays: dict[str, np.ndarray]) -> bytes:
    import io

    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def weight_arrays(model) -> dict[str, np.ndarray]:
    """``model``'s weights by position (``w0000``...): an ``.npz`` of them takes milliseconds
    where Keras' ``save_weights`` took 0.5 s for MobileNetV3Small, every epoch."""
    return {f"w{i:04d}": variable.numpy() for i, variable in enumerate(model.weights)}


def load_weights(run: RunDir, state: TrainingState, model) -> None:
    """Put the checkpoint's weights back into ``model`` (the run's own architecture)."""
    stem = run / "checkpoints" / f"epoch_{state.epochs_done:03d}"
    legacy = stem.with_name(stem.name + ".weights.h5")  # written by earlier kerastl versions
    if legacy.exists():
        model.load_weights(legacy)
        return
    with np.load(stem.with_name(stem.name + ".weights.npz")) as saved:
        values = {name: saved[name] for name in saved.files}
    if len(values) != len(model.weights):
        raise RunDirError(f"the checkpoint holds {len(values)} weights, the rebuilt model "
                          f"{len(model.weights)}: the run's settings or code changed?")
    for key, variable in zip(sorted(values), model.weights):
        if tuple(values[key].shape) != tuple(variable.shape):
            raise RunDirError(f"the checkpoint's weight {key} has shape {values[key].shape}, "
                              f"the rebuilt model's {variable.path} {tuple(variable.shape)}")
        variable.assign(values[key])


def state_key(variable) -> str:
    """An optimizer variable's path without the optimizer's own name, which Keras numbers
    per process (``adam/...`` in one run, ``adam_1/...`` in the next): ``iteration``,
    ``learning_rate``, ``<model variable>_momentum``..."""
    return variable.path.split("/", 1)[-1].replace("/", "|")


def restore_optimizer(run: RunDir, state: TrainingState, optimizer, variables) -> None:
    """Build ``optimizer`` on ``variables`` and load the checkpoint's values into it
    (iterations included, so a schedule resumes where it was), matched by path."""
    optimizer.build(variables)
    path = run / "checkpoints" / f"epoch_{state.epochs_done:03d}.optimizer.npz"
    with np.load(path) as saved:
        values = {name: saved[name] for name in saved.files}
    if all(name.isdigit() for name in values):  # checkpoints before paths: by position
        values = {state_key(v): values[str(i)] for i, v in enumerate(optimizer.variables)
                  if str(i) in values}
    wanted = {state_key(v): v for v in optimizer.variables}
    if set(wanted) != set(values):
        differ = sorted(set(wanted) ^ set(values))
        raise RunDirError(f"the checkpoint's optimizer state does not match the rebuilt "
                          f"optimizer ({len(differ)} variable(s) differ, e.g. {differ[0]}): "
                          "the run's settings or code changed?")
    for key, variable in wanted.items():
        if tuple(values[key].shape) != tuple(variable.shape):
            raise RunDirError(f"the checkpoint's {key} has shape {values[key].shape}, the "
                              f"rebuilt optimizer's {tuple(variable.shape)}")
        variable.assign(values[key])


def remove_checkpoints(run: RunDir) -> None:
    """After a run has finished, its per-epoch files are no longer needed."""
    for old in (run / "checkpoints").glob("epoch_*"):
        old.unlink(missing_ok=True)


def truncate_history(path: Path, epochs: int) -> list[dict]:
    """History rows of the epochs a checkpoint covers (a kill can leave one more)."""
    import csv

    if not path.exists():
        return []
    with path.open() as handle:
        rows = [{k: (v if k == "phase" else float(v) if v not in ("", None) else None)
                 for k, v in row.items()} for row in csv.DictReader(handle)]
    for row in rows:
        row["epoch"] = int(row["epoch"])
    return rows[:epochs]


def read_resumable(run_dir: str | Path, jobs, command: str, config_class):
    """What resuming the run ``run_dir`` needs, checked: ``(run, record, config, state)``.
    ``state`` is None when the run stopped before its first epoch ended (it starts again)."""
    from kerastl.runs import CONFIG_FILE, METRICS_FILE, require_job, require_settings
    from kerastl.settings import from_settings

    run = RunDir(Path(run_dir))
    record = require_job(run.path, jobs, command)
    if record is None:
        raise RunDirError(f"{run.path} is not a kerastl run directory (no {CONFIG_FILE})")
    if (run / METRICS_FILE).exists():
        raise RunDirError(f"{run.path} finished already: nothing to resume")
    config = from_settings(config_class, require_settings(record, run.path),
                           str(run / CONFIG_FILE))
    return run, record, config, TrainingState.read(run)
