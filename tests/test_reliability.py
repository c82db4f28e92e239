"""Nothing lost, nothing written outside its place, no traceback (issue 18).

Each test drives the real command (click, in process, or a subprocess for signals) on small
data, and checks what is on disk afterwards as well as what was printed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from kerastl_cli.main import cli
from tests.conftest import COLOURS, make_image, write_class_folder

SMALL = ["--backbone", "kerastl_small", "--weights", "none", "--image-size", "32",
         "--frozen-epochs", "0", "--finetune-epochs", "1", "--batch-size", "8"]


def run_cli(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def assert_one_error_line(result, *fragments: str) -> None:
    """Exit 1 or 2 through ``sys.exit`` (not an exception), one ``Error:`` line, no traceback."""
    assert isinstance(result.exception, SystemExit), (result.exception, result.output)
    assert result.exit_code in (1, 2), result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in errors[0], result.output


def snapshot(root: Path) -> dict:
    """Every file and folder under ``root`` with its size and modification time."""
    return {str(p.relative_to(root)): (p.is_dir(), p.stat().st_size if p.is_file() else 0,
                                       p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*"))}


@contextlib.contextmanager
def kerastl_warnings():
    """Collect the warnings the ``kerastl`` logger emits (it does not propagate to root)."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append
    logger = logging.getLogger("kerastl")
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)


@pytest.fixture
def a_run(trained_run, tmp_path) -> Path:
    """A private copy of a finished finetuning run, free to break."""
    return Path(shutil.copytree(trained_run, tmp_path / "runs" / "colours"))


# --- 1. data loss -----------------------------------------------------------------------

def test_overwrite_refuses_a_folder_kerastl_did_not_write(tmp_path, session_folder):
    mine = tmp_path / "runs" / "mine"
    mine.mkdir(parents=True)
    (mine / "thesis.txt").write_text("years of work")
    result = run_cli("finetune", session_folder, *SMALL, "--runs-dir", mine.parent, "--name",
                     "mine", "--overwrite")
    assert_one_error_line(result, "not a kerastl run")
    assert (mine / "thesis.txt").read_text() == "years of work"
    assert sorted(p.name for p in mine.iterdir()) == ["thesis.txt"]


def test_overwrite_replaces_a_kerastl_run_and_drops_the_old_one_once_done(a_run, session_folder):
    (a_run / "marker.txt").write_text("from the old run")
    result = run_cli("-q", "finetune", session_folder, *SMALL, "--runs-dir", a_run.parent,
                     "--name", a_run.name, "--overwrite")
    assert result.exit_code == 0, result.output
    assert not (a_run / "marker.txt").exists() and (a_run / "metrics.json").exists()
    assert [p.name for p in a_run.parent.iterdir()] == [a_run.name]  # nothing left aside


def test_a_replacement_that_fails_before_saving_puts_the_old_run_back(a_run):
    from kerastl.runs import RunDir

    before = snapshot(a_run)
    with pytest.raises(RuntimeError):
        with RunDir.create(a_run, "finetune", overwrite=True):
            assert not (a_run / "model.keras").exists()  # the old run waits aside
            raise RuntimeError("the new run failed")
    assert snapshot(a_run) == before
    assert [p.name for p in a_run.parent.iterdir()] == [a_run.name]


def _image_folder(root: Path) -> Path:
    root.mkdir(parents=True)
    make_image(COLOURS["red"], 1, size=32).save(root / "red.png")
    return root


def test_predict_csv_never_replaces_an_input_and_an_existing_file_only_when_asked(a_run,
                                                                                   tmp_path):
    images = _image_folder(tmp_path / "images")
    image, labels = images / "red.png", a_run / "labels.txt"
    originals = {path: path.read_bytes() for path in (image, labels)}
    for target in (image, labels):
        assert_one_error_line(run_cli("predict", a_run, images, "--csv", target, "--overwrite"),
                              "inputs")
    assert {path: path.read_bytes() for path in originals} == originals
    notes = tmp_path / "notes.csv"
    notes.write_text("mine")
    assert_one_error_line(run_cli("predict", a_run, image, "--csv", notes), "--overwrite")
    assert notes.read_text() == "mine"
    assert run_cli("predict", a_run, image, "--csv", notes, "--overwrite").exit_code == 0
    assert notes.read_text().startswith("file,rank,label")


def test_evaluate_errors_plot_never_replaces_an_input_or_an_existing_file(a_run, tmp_path):
    data = write_class_folder(tmp_path / "data", per_class=3)
    image = next((data / "red").iterdir())
    original = image.read_bytes()
    assert_one_error_line(run_cli("evaluate", a_run, data, "--errors", image, "--overwrite"),
                          "inputs")
    assert image.read_bytes() == original
    plot = tmp_path / "plot.png"
    plot.write_text("mine")
    assert_one_error_line(run_cli("evaluate", a_run, data, "--errors", plot), "--overwrite")
    assert plot.read_text() == "mine"


# --- 3. writing outside its place ---------------------------------------------------------

@pytest.mark.parametrize("name", [".", "..", "../escape", "/tmp/kerastl-absolute", "a/b"])
@pytest.mark.parametrize("command", ["finetune", "pretrain", "gan", "edit-color", "export"])
def test_a_name_is_one_folder_name_for_every_command(command, name, tmp_path, session_folder,
                                                     trained_run):
    work = tmp_path / "work"
    (work / "runs" / "other-run").mkdir(parents=True)
    (work / "keep.txt").write_text("mine")
    args = {"finetune": ["finetune", session_folder, *SMALL, "--runs-dir", work / "runs"],
            "pretrain": ["pretrain", session_folder, "--image-size", "32", "--runs-dir",
                         work / "runs"],
            "gan": ["gan", "train", "sample", "--runs-dir", work / "runs"],
            "edit-color": ["edit", "train-color", session_folder, "--backbone", "kerastl_small",
                           "--weights", "none", "--runs-dir", work / "runs"],
            "export": ["export", trained_run, "--out", work / "runs"]}[command]
    before = snapshot(tmp_path)
    result = run_cli(*args, "--name", name, *(["--overwrite"] if command != "export" else []))
    assert_one_error_line(result, "--name")
    assert snapshot(tmp_path) == before
    assert not Path("/tmp/kerastl-absolute").exists()


# --- 4, 15. NaN -------------------------------------------------------------------------------

def _tiny_model():
    import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def test_a_nan_epoch_stops_training_and_the_last_finite_model_is_kept(tmp_path):
    import keras

    from kerastl.runs import RunDir
    from kerastl.engine.callbacks import BestModelSaver, StopOnNaN

    class PoisonAfterFirstEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            kernel = self.model.layers[-1].kernel
            kernel.assign(kernel * np.nan)

    model, run = _tiny_model(), RunDir(tmp_path)
    saver, guard = BestModelSaver(run, model, monitor=None), StopOnNaN()
    x, y = np.ones((8, 4), np.float32), np.zeros(8, np.int64)
    model.fit(x, y, batch_size=4, epochs=5, verbose=0,
              callbacks=[saver, guard, PoisonAfterFirstEpoch()])
    assert "epoch 2" in guard.reason and len(model.history.history["loss"]) == 2
    assert saver.best_epoch == 0
    kept = keras.models.load_model(tmp_path / "model.keras")
    assert all(np.isfinite(w).all() for w in kept.get_weights())
    guard.require_kept_model(tmp_path / "model.keras")  # a model was kept: no error


def test_a_nan_validation_loss_with_no_finite_epoch_fails_clearly(tmp_path):
    from kerastl.errors import TrainingError
    from kerastl.runs import RunDir
    from kerastl.engine.callbacks import BestModelSaver, StopOnNaN

    model, run = _tiny_model(), RunDir(tmp_path)
    saver, guard = BestModelSaver(run, model, "val_accuracy"), StopOnNaN()
    x, y = np.ones((8, 4), np.float32), np.zeros(8, np.int64)
    x_val = np.full((4, 4), np.nan, np.float32)  # training is finite, validation is not
    model.fit(x, y, validation_data=(x_val, y[:4]), epochs=3, verbose=0,
              callbacks=[saver, guard])
    assert "val_loss" in guard.reason and len(model.history.history["loss"]) == 1
    assert not (tmp_path / "model.keras").exists()
    with pytest.raises(TrainingError, match="no model to keep"):
        guard.require_kept_model(tmp_path / "model.keras")


def test_a_diverging_run_is_one_line_and_its_log_says_why(tmp_path, session_folder):
    result = run_cli("finetune", session_folder, *SMALL, "--lr", "1e30", "--runs-dir",
                     tmp_path, "--name", "diverged")
    assert_one_error_line(result, "no model to keep")
    assert "training stopped" in (tmp_path / "diverged" / "run.log").read_text()


def test_export_refuses_non_finite_outputs_and_parity_counts_nan_as_disagreement(a_run,
                                                                                    tmp_path):
    import keras

    from kerastl.export.parity import agreement

    model = keras.models.load_model(a_run / "model.keras")
    model.set_weights([w * np.nan for w in model.get_weights()])
    model.save(a_run / "model.keras")
    result = run_cli("export", a_run, "--out", tmp_path / "exports")
    assert_one_error_line(result, "non-finite")
    assert not (tmp_path / "exports").exists()
    reference = np.array([[0.9, 0.1], [0.2, 0.8]])
    report = agreement(reference, np.array([[np.nan, np.nan], [0.3, 0.7]]))
    assert report == {"max_abs_diff": None, "top1_agreement": 0.5, "non_finite_rows": 1}


# --- 5, 7. settings ---------------------------------------------------------------------

@pytest.mark.parametrize("option,value", [("--lr", "-1"), ("--lr", "0"), ("--finetune-lr", "-1"),
                                          ("--frozen-epochs", "-3"), ("--batch-size", "0")])
def test_nonsense_ranges_are_usage_errors(option, value, tmp_path, session_folder):
    result = run_cli("finetune", session_folder, *SMALL, option, value, "--runs-dir", tmp_path)
    assert_one_error_line(result, option)
    assert result.exit_code == 2 and not any(tmp_path.iterdir())


@pytest.mark.parametrize("settings,fragment", [
    ({"frozen_epochs": -3}, "--frozen-epochs must be >= 0"),
    ({"batch_size": "eight"}, "--batch-size takes a whole number"),
    ({"lr": "0.001"}, "--lr takes a number"),
    ({"lr": -1}, "--lr must be > 0"),
    ({"learning_rate": 0.1}, "unknown setting(s) 'learning_rate'"),
    ([1, 2], "must be a JSON object"),
])
def test_a_bad_config_is_one_line_and_creates_nothing(settings, fragment, a_run, tmp_path):
    record = json.loads((a_run / "config.json").read_text())
    if isinstance(settings, dict):
        record["settings"].update(settings)
    else:
        record = settings
    config = tmp_path / "config.json"
    config.write_text(json.dumps(record))
    runs = tmp_path / "new-runs"
    assert_one_error_line(run_cli("finetune", "--config", config, "--runs-dir", runs), fragment)
    assert not runs.exists()


def test_resume_of_a_run_stopped_before_its_first_epoch_starts_it_again(a_run):
    for name in ("metrics.json", "model.keras", "history.csv"):
        (a_run / name).unlink()
    shutil.rmtree(a_run / "checkpoints")
    result = run_cli("-q", "finetune", "--resume", a_run)
    assert result.exit_code == 0, result.output
    assert (a_run / "metrics.json").exists() and (a_run / "model.keras").exists()


# --- 6-10. the bad-input matrix ---------------------------------------------------------------

def _broken_inputs(root: Path, classifier_run: Path, gan_run: Path) -> dict[str, Path]:
    """One broken input of each kind, built under ``root``."""
    import keras

    def run_copy(name, source=classifier_run, finished=True):
        path = Path(shutil.copytree(source, root / name))
        if not finished:
            (path / "metrics.json").unlink(missing_ok=True)
        return path

    def with_settings(path, **changes):
        record = json.loads((path / "config.json").read_text())
        record["settings"].update(changes)
        (path / "config.json").write_text(json.dumps(record))
        return path

    truncated = run_copy("truncated")
    data = (truncated / "model.keras").read_bytes()
    (truncated / "model.keras").write_bytes(data[:len(data) // 2])
    (root / "random.keras").write_bytes(np.random.default_rng(0).bytes(4096))
    lambda_model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Lambda(lambda x: x * 2),
                                     keras.layers.GlobalAveragePooling2D()])
    lambda_model.save(root / "lambda.keras")
    bad_json = run_copy("bad-json", finished=False)
    (bad_json / "config.json").write_text("{oops")
    list_settings = run_copy("list-settings", finished=False)
    (list_settings / "config.json").write_text(json.dumps({"job": "finetune", "settings": [1]}))
    return {
        "missing": root / "nothing-here", "truncated": truncated,
        "random": root / "random.keras", "lambda": root / "lambda.keras",
        "bad-json": bad_json, "list-settings": list_settings,
        "unknown-key": with_settings(run_copy("unknown-key", finished=False), learning_rate=1),
        "wrong-type": with_settings(run_copy("wrong-type", finished=False), batch_size="eight"),
        "gan": run_copy("gan", gan_run),
        "gan-unknown-key": with_settings(run_copy("gan-unknown", gan_run), lrate=1),
        "classifier": run_copy("classifier"),
    }


MODEL_READERS = {
    "predict": ["predict", "{model}", "{image}"],
    "evaluate": ["evaluate", "{model}", "{data}"],
    "export": ["export", "{model}", "--out", "{out}"],
    "edit color": ["edit", "color", "{model}", "{image}", "--out", "{out}"],
    "gan sample": ["gan", "sample", "{model}", "--out", "{out}/grid.png"],
    "gan evaluate": ["gan", "evaluate", "{model}", "--real", "sample", "--n", "8",
                     "--extractor", "{classifier}"],
}
CLASSIFIER_BREAKERS = ["missing", "truncated", "random", "lambda", "bad-json", "gan"]
GAN_BREAKERS = ["missing", "truncated", "random", "lambda", "bad-json", "classifier"]
MATRIX = [
    *[(command, broken) for command in ("predict", "evaluate", "export")
      for broken in CLASSIFIER_BREAKERS
      if (command, broken) != ("export", "gan")],  # a GAN run exports its generator
    *[("edit color", broken) for broken in CLASSIFIER_BREAKERS],
    *[(command, broken) for command in ("gan sample", "gan evaluate") for broken in GAN_BREAKERS],
    *[("finetune --resume", broken) for broken in
      ("missing", "truncated", "bad-json", "list-settings", "unknown-key", "wrong-type", "gan",
       "random")],
    *[("gan resume", broken) for broken in
      ("missing", "bad-json", "gan-unknown-key", "classifier", "random")],
    *[("finetune --config", broken) for broken in
      ("bad-json", "list-settings", "unknown-key", "wrong-type", "gan")],
    *[("data", spec) for spec in ("missing", "file", "no-classes", "tfds:",
                                  "tfds:no_such_dataset_anywhere")],
]
OTHER_COMMANDS = {
    "finetune --resume": ["finetune", "--resume", "{model}"],
    "gan resume": ["gan", "resume", "{model}", "--epochs", "5"],
    "finetune --config": ["finetune", "--config", "{model}/config.json", "--runs-dir", "{out}"],
}


def _data_spec(name: str, root: Path) -> str:
    if name == "missing":
        return str(root / "no-such-folder")
    if name == "file":
        return str(root / "random.keras")
    if name == "no-classes":
        (root / "flat").mkdir(exist_ok=True)
        return str(root / "flat")
    return name


@pytest.fixture(scope="module")
def broken(tmp_path_factory, trained_run, gan_run):
    root = tmp_path_factory.mktemp("broken")
    inputs = _broken_inputs(root / "inputs", trained_run, gan_run)
    write_class_folder(root / "inputs" / "data", per_class=2)
    make_image(COLOURS["red"], 3).save(root / "inputs" / "one.png")
    return root, inputs


@pytest.mark.parametrize("command,kind", MATRIX, ids=[f"{c}-{k}" for c, k in MATRIX])
def test_bad_input_matrix(command, kind, broken, trained_run, monkeypatch, tmp_path):
    root, inputs = broken
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)  # anything written by accident lands here, and is seen
    fill = {"image": root / "inputs" / "one.png", "data": root / "inputs" / "data",
            "out": work / "out", "classifier": trained_run}
    if command == "data":
        args = ["finetune", _data_spec(kind, root / "inputs"), *SMALL, "--runs-dir", work]
    else:
        template = MODEL_READERS.get(command) or OTHER_COMMANDS[command]
        fill["model"] = inputs[kind]
        args = [part.format(**fill) for part in template]
    before_inputs, before_work = snapshot(root), snapshot(work)
    assert_one_error_line(run_cli(*args))
    assert snapshot(root) == before_inputs
    assert snapshot(work) == before_work


def test_every_classifier_job_is_read_back_by_predict(a_run, tmp_path):
    from kerastl.runs import CLASSIFIER_JOBS

    image = _image_folder(tmp_path / "images") / "red.png"
    record = json.loads((a_run / "config.json").read_text())
    for job in CLASSIFIER_JOBS:  # quickstart runs too: the README's next step
        (a_run / "config.json").write_text(json.dumps({**record, "job": job}))
        assert run_cli("predict", a_run, image).exit_code == 0, job


def test_job_errors_name_the_commands_that_take_the_run(broken):
    _, inputs = broken
    assert_one_error_line(run_cli("predict", inputs["gan"], inputs["lambda"]),
                          "gan run", "kerastl gan sample")
    assert_one_error_line(run_cli("gan", "resume", inputs["classifier"]),
                          "finetune run", "kerastl finetune --resume")
    assert_one_error_line(run_cli("finetune", "--resume", inputs["gan"]),
                          "gan run", "kerastl gan resume")
    assert_one_error_line(run_cli("predict", inputs["lambda"], inputs["lambda"]),
                          "Lambda layer", "safe mode")
    assert_one_error_line(run_cli("predict", inputs["truncated"], inputs["lambda"]),
                          "not a readable Keras file")


# --- 11. a full disk ----------------------------------------------------------------------

@pytest.fixture
def tiny_disk(tmp_path):
    """A 96 KiB tmpfs: a run's first model save fills it."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96k", "tmpfs", str(mount)],
                          capture_output=True)
    if done.returncode:
        pytest.skip("mounting a small tmpfs needs root")
    try:
        yield mount
    finally:
        # lazily: a file this process still holds open there must not keep it mounted
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_is_one_line_naming_the_folder_and_what_to_do(tiny_disk, session_folder,
                                                                   trained_run):
    result = run_cli("-q", "finetune", session_folder, *SMALL, "--runs-dir", tiny_disk,
                     "--name", "full")
    assert_one_error_line(result, "disk is full", str(tiny_disk / "full"),
                          f"kerastl finetune --resume {tiny_disk / 'full'}")
    assert not list((tiny_disk / "full").glob("*.tmp*"))
    exported = run_cli("export", trained_run, "--out", tiny_disk / "exports")
    assert_one_error_line(exported, "disk is full")


# --- 12, 13. data -----------------------------------------------------------------------------

def test_a_tfds_split_the_dataset_does_not_have_is_named():
    from kerastl.data.sources import _check_tfds_split
    from kerastl.errors import DataError

    _check_tfds_split("tfds:mnist:train[:10%]+test", "train[:10%]+test", ["train", "test"])
    _check_tfds_split("tfds:mnist:bogus", "bogus", [])  # unknown until downloaded
    with pytest.raises(DataError, match="no split 'bogus'; it has train, test"):
        _check_tfds_split("tfds:mnist:bogus", "bogus", ["train", "test"])


def test_linked_folders_are_skipped_and_empty_or_tiny_classes_warned(tmp_path):
    from kerastl.data import load_data

    data = write_class_folder(tmp_path / "data", per_class=3)
    (data / "loop").symlink_to(data, target_is_directory=True)
    (data / "empty").mkdir()
    (data / "solo").mkdir()
    make_image(COLOURS["blue"], 9).save(data / "solo" / "one.png")
    with kerastl_warnings() as records:
        bundle = load_data(str(data), 16, val_fraction=0.34, seed=0)
    assert bundle.class_names == ["blue", "empty", "green", "red", "solo"]
    assert len(bundle.train) + len(bundle.val) == 3 * 3 + 1  # no copies through the link
    text = "\n".join(record.getMessage() for record in records)
    assert "loop: a link to a folder inside the same tree" in text
    assert "empty hold no readable image" in text
    assert "solo have too few images for a validation image" in text


# --- 14. signals ------------------------------------------------------------------------------

@pytest.mark.parametrize("sig,code,word", [(signal.SIGTERM, 143, "Terminated"),
                                           (signal.SIGINT, 130, "Interrupted")])
def test_a_signal_prints_the_run_and_the_resume_command(sig, code, word, tmp_path):
    data = write_class_folder(tmp_path / "images", per_class=30)
    run = tmp_path / "runs" / "signalled"
    command = [sys.executable, "-m", "kerastl_cli", "finetune", str(data), *SMALL[:6],
               "--frozen-epochs", "0", "--finetune-epochs", "30", "--batch-size", "4",
               "--runs-dir", str(tmp_path / "runs"), "--name", "signalled"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    try:
        deadline = time.time() + 240
        while not (run / "checkpoints" / "state.json").exists():
            assert process.poll() is None and time.time() < deadline, process.stderr.read()
            time.sleep(0.05)
        process.send_signal(sig)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == code, err
    assert f"{word}: continue it with: kerastl finetune --resume {run}" in err
    assert "Traceback" not in err
    assert "Epoch 1/30" in out  # the buffered epoch line is not lost


def test_sigterm_ends_a_command_blocked_inside_tensorflow():
    """Python signal handlers run only between bytecodes: a main thread blocked in a
    TensorFlow op (as a collective waiting for a dead peer is) would ignore SIGTERM; the
    watchdog ends the process after its grace period."""
    script = (
        "import sys\n"
        "import tensorflow as tf\n"
        "from kerastl_cli.main import cli, main\n"
        "@cli.command('block')\n"
        "def block():\n"
        "    print('blocking', flush=True)\n"
        "    tf.queue.FIFOQueue(1, tf.int32).dequeue()  # waits forever, in C++\n"
        "sys.argv = ['kerastl', 'block']\n"
        "main()\n")
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    try:
        assert process.stdout.readline().strip() == "blocking"
        time.sleep(0.5)
        started = time.time()
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 143 and "Terminated: nothing was written" in err
    assert time.time() - started < 30


def test_an_interrupt_python_drops_in_a_finalizer_still_ends_the_command_as_interrupted():
    """Ctrl-C whose KeyboardInterrupt is raised inside ``__del__`` is printed and dropped by
    Python; the command then ran on to its end and exited 0 (a flaky CI run). It must end as
    interrupted all the same."""
    script = (
        "import gc, os, signal, sys\n"
        "from kerastl_cli.main import cli, main\n"
        "class Dropping:\n"
        "    def __del__(self):\n"
        "        os.kill(os.getpid(), signal.SIGINT)\n"
        "        sum(range(1000))  # the handler runs here, inside the finalizer\n"
        "@cli.command('finish')\n"
        "def finish():\n"
        "    Dropping()\n"
        "    gc.collect()\n"
        "    print('finished', flush=True)\n"
        "sys.argv = ['kerastl', 'finish']\n"
        "main()\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert "finished" in done.stdout  # the interrupt was indeed dropped
    assert done.returncode == 130, done.stderr
    assert "Interrupted: nothing was written" in done.stderr


# --- issue 19: bugs found by reading ----------------------------------------------------------

def test_a_monitor_missing_from_the_logs_fails_at_the_first_epoch(tmp_path):
    from kerastl.errors import TrainingError
    from kerastl.runs import RunDir
    from kerastl.engine.callbacks import BestModelSaver

    model = _tiny_model()
    saver = BestModelSaver(RunDir(tmp_path), model, "val_acuracy")  # a typo
    with pytest.raises(TrainingError, match="'val_acuracy' that picks the best epoch"):
        model.fit(np.ones((8, 4), np.float32), np.zeros(8, np.int64), epochs=3, verbose=0,
                  validation_data=(np.ones((4, 4), np.float32), np.zeros(4, np.int64)),
                  callbacks=[saver])
    assert len(model.history.history.get("loss", [])) <= 1


def test_only_a_download_failure_is_reported_as_offline():
    import urllib.error

    from kerastl.backbones import build_backbone, is_download_failure
    from kerastl.errors import WeightsError

    assert is_download_failure(urllib.error.URLError("Name or service not known"))
    assert is_download_failure(Exception("URL fetch failure on https://x: None -- [Errno -2]"))
    assert not is_download_failure(ValueError("The input must have 3 channels"))
    assert not is_download_failure(OSError("Unable to synchronously open file (truncated)"))
    with pytest.raises(WeightsError, match="could not download ImageNet weights.*Offline"):
        build_backbone("mobilenetv3small", 32, "imagenet")  # this machine has no internet
