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


def test_validation_batches_are_whole_and_fit_a_small_validation_set():
    from kerastl.distribute import validation_batch

    assert validation_batch(1, 8, 6) == 8  # one device: partial batches are fine
    assert [validation_batch(2, 8, n) for n in (6, 7, 30)] == [6, 6, 8]
    with pytest.raises(KerastlError, match="cannot be shared by 2 replicas"):
        validation_batch(2, 8, 1)


def test_a_device_that_does_not_exist_is_refused_not_waited_on():
    """MirroredStrategy accepts a missing device; its replicas then wait on each other."""
    with pytest.raises(KerastlError, match="no device /cpu:7 in this process"):
        make_strategy("mirrored", "cpu:0,cpu:7")


def test_mirrored_over_cpu_devices_from_the_command_line_finishes(tmp_path):
    """Issue 19's hang, in its exact shape: the CLI makes the two CPU devices it is asked for
    (cpu:1 did not exist, so both replicas shared cpu:0 and a collective waited forever), and
    6 validation images with a global batch of 8 still validate (a partial batch)."""
    from tests.conftest import write_class_folder

    data = write_class_folder(tmp_path / "images", per_class=12)
    command = [sys.executable, "-m", "kerastl_cli", "finetune", str(data), "--backbone",
               "mobilenetv3small", "--weights", "none", "--image-size", "32",
               "--frozen-epochs", "1", "--finetune-epochs", "1", "--batch-size", "8",
               "--strategy", "mirrored", "--devices", "cpu:0,cpu:1", "--runs-dir",
               str(tmp_path / "runs"), "--name", "mirrored"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert "MirroredStrategy with 2 replica(s)" in done.stderr
    metrics = json.loads((tmp_path / "runs" / "mirrored" / "metrics.json").read_text())
    assert metrics["val"]["n"] == 6


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
        for key in ("weights", "loss", "own_loop_weights", "own_loop_loss"):
            assert report[part][key] < 1e-5, (key, report)


def test_finetune_runs_end_to_end_under_mirrored(session_folder, tmp_path):
    report = run_helper("--finetune", str(session_folder), str(tmp_path))
    assert 0.0 <= report["accuracy"] <= 1.0
    assert (tmp_path / "mirrored" / "metrics.json").exists()
    assert (tmp_path / "mirrored" / "model.keras").exists()


def test_multiworker_needs_tf_config(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(KerastlError, match="TF_CONFIG"):
        make_strategy("multiworker")


def free_ports(count: int) -> list[int]:
    import socket

    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def test_two_workers_on_localhost_train_alike_and_only_the_chief_writes(session_folder,
                                                                         tmp_path):
    """Finetuning, GAN and colour jobs under MultiWorkerMirroredStrategy, two processes."""
    helper = Path(__file__).parent / "helpers" / "multiworker_check.py"
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    runs = tmp_path / "runs"
    workers = []
    for index in range(2):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TF_CONFIG": tf_config}
        workers.append(subprocess.Popen(
            [sys.executable, str(helper), str(session_folder), str(runs)], env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    try:
        outputs = [worker.communicate(timeout=600) for worker in workers]
    finally:
        for worker in workers:
            worker.kill()
    reports = []
    for worker, (out, err) in zip(workers, outputs):
        assert worker.returncode == 0, err[-3000:]
        line = next(line for line in out.splitlines() if line.startswith("RESULT "))
        reports.append(json.loads(line.removeprefix("RESULT ")))
    chief, other = reports
    assert sorted(p.name for p in runs.iterdir()) == ["color", "finetune", "gan"]
    for job in ("finetune", "gan", "color"):
        assert chief[job]["digest"] == other[job]["digest"], job  # identical weights
        assert Path(chief[job]["run_dir"]) == runs / job
        assert (runs / job / "metrics.json").exists() and (runs / job / "model.keras").exists()
        assert not Path(other[job]["run_dir"]).exists()  # the worker's copy is gone


def test_collective_timeout_is_off_unless_set(monkeypatch):
    """Off by default: TensorFlow keeps a thread per timed collective for the whole timeout."""
    from kerastl.distribute import TIMEOUT_VARIABLE, collective_timeout

    monkeypatch.delenv(TIMEOUT_VARIABLE, raising=False)
    assert collective_timeout() is None
    monkeypatch.setenv(TIMEOUT_VARIABLE, "600")
    assert collective_timeout() == 600
    monkeypatch.setenv(TIMEOUT_VARIABLE, "soon")
    with pytest.raises(KerastlError, match=TIMEOUT_VARIABLE):
        collective_timeout()
