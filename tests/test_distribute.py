"""tf.distribute: strategy names, and mirrored runs matching one device (in subprocesses)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kerastl.distribute import make_strategy, parse_devices, per_replica_batch
from kerastl.errors import KerastlError


def test_strategy_names_and_devices():
    assert parse_devices("cpu:0, GPU:1") == ["/cpu:0", "/gpu:1"]
    assert parse_devices(None) is None
    with pytest.raises(KerastlError, match="--devices"):
        parse_devices("first")
    with pytest.raises(KerastlError, match="--strategy"):
        make_strategy("horovod")
    default = make_strategy("auto")  # no GPUs here: one device
    assert default.num_replicas_in_sync == 1
    assert per_replica_batch(default, 32) == 32


def run_helper(*args: str) -> dict:
    """The helper in a fresh process (logical devices before TensorFlow starts), with a
    timeout so that a stuck collective cannot hang the suite."""
    helper = Path(__file__).parent / "helpers" / "mirrored_check.py"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, str(helper), *args], capture_output=True, text=True,
                          timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


def test_mirrored_over_two_cpus_matches_one_device():
    report = run_helper()
    assert report["replicas"] == 2
    for part in ("classifier", "gan"):
        assert report[part]["repeatable"], report  # one device repeats itself exactly
        assert report[part]["weights"] < 1e-5, report
        assert report[part]["loss"] < 1e-5, report


def test_finetune_runs_end_to_end_under_mirrored(session_folder, tmp_path):
    report = run_helper("--finetune", str(session_folder), str(tmp_path))
    assert 0.0 <= report["accuracy"] <= 1.0
    assert (tmp_path / "mirrored" / "metrics.json").exists()
    assert (tmp_path / "mirrored" / "model.keras").exists()


def test_replica_safe_batch_leaves_no_replica_empty():
    from kerastl.distribute import replica_safe_batch

    assert replica_safe_batch(9, 8, 2) == 9  # 8 + 1 would leave one replica empty
    assert replica_safe_batch(10, 8, 2) == 8  # 8 + 2 is fine
    assert replica_safe_batch(9, 8, 1) == 8
