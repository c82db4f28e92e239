"""A run of any trainer killed with SIGKILL mid-epoch resumes and ends complete and
consistent; a finetuning run resumes with the phases and rates of an unbroken one."""

from __future__ import annotations

import csv
import importlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import write_class_folder


def finetune_command(data: Path, runs: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "kerastl_cli", "finetune", str(data),
            "--backbone", "kerastl_small", "--weights", "none", "--image-size", "32",
            "--frozen-epochs", "0", "--finetune-epochs", "6", "--batch-size", "4",
            "--augment", "light", "--lr", "3e-3", "--runs-dir", str(runs), *extra]


#: Every trainer, started for 6 epochs on a tiny folder, and resumed: (start, resume).
TRAINERS = {
    "finetune": (lambda data, runs: finetune_command(data, runs, "--name", "killed"),
                 lambda run: ["finetune", "--resume", str(run)]),
    "colour": (lambda data, runs: [
        sys.executable, "-m", "kerastl_cli", "edit", "train-color", str(data),
        "--backbone", "kerastl_small", "--weights", "none", "--image-size", "32",
        "--frozen-epochs", "0", "--finetune-epochs", "6", "--patience", "10", "--copies", "2",
        "--batch-size", "4", "--runs-dir", str(runs), "--name", "killed"],
        lambda run: ["edit", "train-color", "--resume", str(run)]),
    "gan": (lambda data, runs: [
        sys.executable, "-m", "kerastl_cli", "gan", "train", str(data), "--image-size", "32",
        "--width", "8", "--latent-dim", "8", "--epochs", "6", "--batch-size", "4",
        "--min-epoch-images", "0", "--runs-dir", str(runs), "--name", "killed"],
        lambda run: ["gan", "resume", str(run)]),
    "vae": (lambda data, runs: [
        sys.executable, "-m", "kerastl_cli", "vae", "train", str(data), "--image-size", "32",
        "--width", "8", "--latent-dim", "4", "--epochs", "6", "--batch-size", "4",
        "--runs-dir", str(runs), "--name", "killed"],
        lambda run: ["vae", "resume", str(run)]),
}


#: How each trainer's run is read back.
LOADERS = {"finetune": ("kerastl.inference", "load_classifier"),
           "colour": ("kerastl.edit.color_apply", "load_color_model"),
           "gan": ("kerastl.gan.train", "load_gan"),
           "vae": ("kerastl.vae.train", "load_vae")}


def wait_for_epochs(state_file: Path, epochs: int, process, timeout: float = 240) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if process.poll() is not None:
            pytest.fail(f"training ended before it could be killed: {process.returncode}")
        if state_file.exists():
            try:
                if json.loads(state_file.read_text())["epochs_done"] >= epochs:
                    return
            except (ValueError, KeyError):
                pass  # never a half-written file: replaced atomically; retry anyway
        time.sleep(0.05)
    pytest.fail("no checkpoint appeared in time")


@pytest.mark.parametrize("trainer", TRAINERS)
def test_sigkill_mid_epoch_then_resume_finishes_a_consistent_run(trainer, tmp_path):
    """Every trainer: killed mid-epoch, resumed from its last epoch, ends with the same files."""
    start, resume = TRAINERS[trainer]
    data = write_class_folder(tmp_path / "images", per_class=40)
    runs = tmp_path / "runs"
    run = runs / "killed"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    process = subprocess.Popen(start(data, runs), env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_epochs(run / "checkpoints" / "state.json", 2, process)
        time.sleep(0.3)  # into the next epoch
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    state = json.loads((run / "checkpoints" / "state.json").read_text())
    assert 2 <= state["epochs_done"] < 6
    assert not (run / "metrics.json").exists()
    assert not list(run.rglob("*.tmp*")) or all(p.name.startswith(".")
                                                for p in run.rglob("*.tmp*"))

    resumed = subprocess.run([sys.executable, "-m", "kerastl_cli", *resume(run)], env=env,
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    rows = read_history(run)
    assert [int(float(row["epoch"])) for row in rows] == list(range(6))  # the killed one redone
    assert json.loads((run / "checkpoints" / "state.json").read_text())["epochs_done"] == 6
    assert not list((run / "checkpoints").glob("epoch_*"))
    for name in ("config.json", "metrics.json", "model.keras", "run.log"):
        assert (run / name).stat().st_size > 0, name
    assert list((run / "logs").rglob("*tfevents*")), "no TensorBoard events"
    assert "resum" in (run / "run.log").read_text()

    module, loader = LOADERS[trainer]
    getattr(importlib.import_module(module), loader)(run)
    again = subprocess.run([sys.executable, "-m", "kerastl_cli", *resume(run)], env=env,
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 1 and "finished already" in again.stderr


def read_history(run: Path) -> list[dict]:
    with (run / "history.csv").open() as handle:
        return list(csv.DictReader(handle))


def test_a_finished_run_keeps_its_state_and_refuses_to_resume(tmp_path):
    import kerastl
    from kerastl.errors import RunDirError
    from kerastl.runs import RunDir
    from kerastl.engine.checkpoint import TrainingState
    from kerastl.transfer.finetune import resume_finetune

    data = write_class_folder(tmp_path / "images", per_class=8)
    result = kerastl.finetune(str(data), backbone="kerastl_small", weights="none",
                              image_size=32, frozen_epochs=0, finetune_epochs=1, batch_size=4,
                              runs_dir=str(tmp_path / "runs"), name="r", verbose=0)
    state = TrainingState.read(RunDir(result.run_dir))
    assert state.phase_finished and state.epochs_done == 1
    with pytest.raises(RunDirError, match="finished already"):
        resume_finetune(result.run_dir)
    assert TrainingState.read(RunDir(tmp_path)) is None  # no epoch finished there


class SimulatedKill(Exception):
    """Raised right after a checkpoint is written: what a SIGKILL at that moment leaves."""


RESUME_CASES = {
    "at the phase boundary": dict(frozen_epochs=2, finetune_epochs=2, stop_after=2),
    "inside the second phase": dict(frozen_epochs=1, finetune_epochs=3, stop_after=2),
    "with cached features": dict(frozen_epochs=3, finetune_epochs=1, augment="none",
                                 stop_after=1),
    "with per-group rates": dict(frozen_epochs=1, finetune_epochs=3, group_factor=2.6,
                                 stop_after=3),
    "with the backbone-rate ramp": dict(frozen_epochs=1, finetune_epochs=3,
                                        recipe="backbone_finetuning", stop_after=2),
}


@pytest.mark.parametrize("case", RESUME_CASES)
def test_resume_repeats_the_phases_and_rates_of_an_unbroken_run(case, tmp_path, monkeypatch):
    import kerastl
    from kerastl.quickstart import SAMPLE_BACKBONE_DIR
    from kerastl.engine.checkpoint import EpochCheckpoint
    from kerastl.transfer.finetune import resume_finetune

    settings = dict(RESUME_CASES[case])
    stop_after = settings.pop("stop_after")
    common = dict(weights=str(SAMPLE_BACKBONE_DIR), backbone=None, classes="5-9", per_class=6,
                  image_size=32, batch_size=8, patience=10, runs_dir=str(tmp_path), verbose=0,
                  **settings)
    whole = kerastl.finetune("sample", name="whole", **common)

    save = EpochCheckpoint.on_epoch_end

    def save_then_die(self, epoch, logs=None):
        save(self, epoch, logs)
        if self.state.epochs_done == stop_after:
            raise SimulatedKill()

    monkeypatch.setattr(EpochCheckpoint, "on_epoch_end", save_then_die)
    with pytest.raises(SimulatedKill):
        kerastl.finetune("sample", name="broken", **common)
    monkeypatch.undo()
    resumed = resume_finetune(tmp_path / "broken")
    columns = ("epoch", "phase", "learning_rate")
    assert [[row[c] for c in columns] for row in resumed.history] == \
        [[row[c] for c in columns] for row in whole.history]
    assert [row["loss"] for row in resumed.history[:stop_after]] == \
        [row["loss"] for row in whole.history[:stop_after]]  # deterministic up to the kill
    assert (tmp_path / "broken" / "metrics.json").exists()


def test_optimizer_state_is_restored_by_path_not_position(tmp_path):
    import io

    import keras
    import numpy as np

    from kerastl.runs import RunDir
    from kerastl.engine.checkpoint import TrainingState, restore_optimizer, state_key

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="d")])
    kernel, bias = model.trainable_variables
    first = keras.optimizers.Adam(1e-3)
    first.build([kernel, bias])
    for i, variable in enumerate(first.variables):
        variable.assign(np.full(variable.shape, float(i), variable.dtype))
    (tmp_path / "checkpoints").mkdir()
    buffer = io.BytesIO()
    np.savez(buffer, **{state_key(v): v.numpy() for v in first.variables})
    (tmp_path / "checkpoints" / "epoch_001.optimizer.npz").write_bytes(buffer.getvalue())
    state = TrainingState(0, 0, 1, False, 0.0, None, {})
    second = keras.optimizers.Adam(1e-3)  # another name (adam_1), variables in another order
    restore_optimizer(RunDir(tmp_path), state, second, [bias, kernel])
    saved = {state_key(v): v.numpy() for v in first.variables}
    for variable in second.variables:
        np.testing.assert_array_equal(variable.numpy(), saved[state_key(variable)])


def test_checkpoint_weights_come_back_and_a_changed_model_is_one_line(tmp_path):
    """Weights go to an .npz by position (milliseconds, where save_weights took 0.5 s per
    epoch); a checkpoint of earlier versions (.weights.h5) still resumes; a checkpoint that
    does not fit the rebuilt model is a RunDirError, not a half-loaded model."""
    import io

    import keras
    import numpy as np

    from kerastl.engine.checkpoint import TrainingState, load_weights, weight_arrays
    from kerastl.errors import RunDirError
    from kerastl.runs import RunDir

    def model(units=2):
        return keras.Sequential([keras.Input((3,)), keras.layers.Dense(units)])

    trained, state = model(), TrainingState(0, 0, 1, False, 0.0, None, {})
    trained.layers[0].bias.assign([1.0, 2.0])
    (tmp_path / "checkpoints").mkdir()
    buffer = io.BytesIO()
    np.savez(buffer, **weight_arrays(trained))
    (tmp_path / "checkpoints" / "epoch_001.weights.npz").write_bytes(buffer.getvalue())
    fresh = model()
    load_weights(RunDir(tmp_path), state, fresh)
    for mine, theirs in zip(fresh.weights, trained.weights):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy())
    with pytest.raises(RunDirError, match="has shape"):
        load_weights(RunDir(tmp_path), state, model(units=4))
    trained.layers[0].bias.assign([5.0, 6.0])
    trained.save_weights(tmp_path / "checkpoints" / "epoch_001.weights.h5")
    load_weights(RunDir(tmp_path), state, fresh)
    np.testing.assert_array_equal(fresh.layers[0].bias.numpy(), [5.0, 6.0])
