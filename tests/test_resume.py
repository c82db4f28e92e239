"""A finetuning run killed with SIGKILL mid-epoch resumes and ends complete and consistent."""

from __future__ import annotations

import csv
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


def test_sigkill_mid_epoch_then_resume_finishes_a_consistent_run(tmp_path):
    data = write_class_folder(tmp_path / "images", per_class=40)
    runs = tmp_path / "runs"
    run = runs / "killed"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    process = subprocess.Popen(finetune_command(data, runs, "--name", "killed"), env=env,
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

    resumed = subprocess.run([sys.executable, "-m", "kerastl_cli", "finetune", "--resume",
                              str(run)], env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    rows = read_history(run)
    assert [int(float(row["epoch"])) for row in rows] == list(range(6))  # the killed one redone
    reference = subprocess.run(finetune_command(data, runs, "--name", "whole"), env=env,
                               capture_output=True, text=True, timeout=600)
    assert reference.returncode == 0, reference.stderr[-2000:]
    # the schedule resumed where it was: the same rate at every epoch as an unbroken run
    assert [row["learning_rate"] for row in rows] == \
        [row["learning_rate"] for row in read_history(runs / "whole")]
    metrics = json.loads((run / "metrics.json").read_text())
    assert 1 <= metrics["best_epoch"] <= 6
    assert not list((run / "checkpoints").glob("epoch_*"))

    from kerastl.inference import load_classifier

    assert load_classifier(run).class_names == ["blue", "green", "red"]
    again = subprocess.run([sys.executable, "-m", "kerastl_cli", "finetune", "--resume",
                            str(run)], env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 1 and "finished already" in again.stderr


def read_history(run: Path) -> list[dict]:
    with (run / "history.csv").open() as handle:
        return list(csv.DictReader(handle))


def test_a_finished_run_keeps_its_state_and_refuses_to_resume(tmp_path):
    import kerastl
    from kerastl.errors import RunDirError
    from kerastl.runs import RunDir
    from kerastl.transfer.checkpoint import TrainingState
    from kerastl.transfer.finetune import resume_finetune

    data = write_class_folder(tmp_path / "images", per_class=8)
    result = kerastl.finetune(str(data), backbone="kerastl_small", weights="none",
                              image_size=32, frozen_epochs=0, finetune_epochs=1, batch_size=4,
                              runs_dir=str(tmp_path / "runs"), name="r", verbose=0)
    state = TrainingState.read(RunDir(result.run_dir))
    assert state.phase_finished and state.epochs_done == 1
    with pytest.raises(RunDirError, match="finished already"):
        resume_finetune(result.run_dir)
    with pytest.raises(RunDirError, match="no checkpoint"):
        TrainingState.read(RunDir(tmp_path))
