"""End to end through click: finetune, evaluate, predict, --config, errors."""

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner
from PIL import Image

from kerastl_cli.main import cli
from tests.helpers.history import learning_curve

RUN_FILES = ["config.json", "model.keras", "labels.txt", "history.csv", "metrics.json",
             "run.log", "plots/training_curves.png", "plots/confusion_matrix.png"]


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_help_does_not_import_tensorflow():
    code = ("import sys; from kerastl_cli.main import cli; "
            "from click.testing import CliRunner;"
            "r = CliRunner().invoke(cli, ['finetune', '--help']);"
            "assert r.exit_code == 0, r.output;"
            "assert '--frozen-epochs' in r.output;"
            "print('tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_backbones_lists_the_registry():
    result = invoke("backbones")
    assert result.exit_code == 0
    for name in ("resnet50", "vgg16", "inceptionv3", "kerastl_small", "convnexttiny"):
        assert name in result.output


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory, session_folder):
    runs = tmp_path_factory.mktemp("cli_runs")
    result = invoke("-q", "finetune", session_folder, "--backbone", "kerastl_small",
                    "--weights", "none", "--image-size", 32, "--frozen-epochs", 1,
                    "--finetune-epochs", 1, "--batch-size", 8, "--runs-dir", runs,
                    "--name", "first", "--seed", 5)
    assert result.exit_code == 0, result.output
    return runs / "first", result.output


def test_finetune_writes_a_complete_run(cli_run):
    run, output = cli_run
    for name in RUN_FILES:
        assert (run / name).exists(), name
    assert "phase" in (run / "run.log").read_text()  # -q quiets the console, not run.log
    assert any((run / "logs").rglob("*tfevents*"))
    assert (run / "labels.txt").read_text().split() == ["blue", "green", "red"]
    config = json.loads((run / "config.json").read_text())
    assert config["seed"] == 5 and config["versions"]["tensorflow"].startswith("2.21")
    assert config["data"]["fingerprint"]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["val"]["split"] == "val" and len(metrics["val"]["confusion_matrix"]) == 3
    assert "accuracy" in output and str(run) in output


def test_existing_run_is_not_overwritten(cli_run, session_folder):
    run, _ = cli_run
    before = (run / "model.keras").stat().st_mtime_ns
    result = invoke("finetune", session_folder, "--backbone", "kerastl_small", "--weights",
                    "none", "--runs-dir", run.parent, "--name", run.name)
    assert result.exit_code == 1 and "Error: run directory" in result.output
    assert (run / "model.keras").stat().st_mtime_ns == before


def test_config_repeats_the_run(cli_run):
    run, _ = cli_run
    result = invoke("-q", "finetune", "--config", run / "config.json", "--runs-dir",
                    run.parent, "--name", "again")
    assert result.exit_code == 0, result.output
    first = json.loads((run / "config.json").read_text())
    again = json.loads((run.parent / "again" / "config.json").read_text())
    assert again["data"]["fingerprint"] == first["data"]["fingerprint"]
    assert {k: v for k, v in again["settings"].items() if k != "name"} == \
        {k: v for k, v in first["settings"].items() if k != "name"}
    # op determinism: the same seed repeats the run exactly
    assert learning_curve(run.parent / "again") == learning_curve(run)


def test_evaluate_reads_the_run_back(cli_run, session_folder):
    run, _ = cli_run
    result = invoke("evaluate", run, session_folder, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["n"] == 48 and report["split"] == "train"
    assert set(report["per_class"]) == {"blue", "green", "red"}


def test_mirror_tta_makes_predictions_mirror_invariant(cli_run, session_folder):
    import numpy as np

    from kerastl.inference import load_classifier

    run, _ = cli_run
    classifier = load_classifier(run)
    images = np.random.default_rng(0).uniform(0, 255, (6, 32, 32, 3)).astype(np.float32)
    mirrored = images[:, :, ::-1]
    plain = classifier.probabilities(images), classifier.probabilities(mirrored)
    assert np.abs(plain[0] - plain[1]).max() > 1e-4  # the model itself is not mirror-invariant
    tta = classifier.probabilities(images, tta=True), classifier.probabilities(mirrored, tta=True)
    np.testing.assert_allclose(tta[0], tta[1], atol=1e-6)
    np.testing.assert_allclose(tta[0], (plain[0] + plain[1]) / 2, atol=1e-6)
    report = json.loads(invoke("evaluate", run, session_folder, "--json", "--tta").output)
    assert report["tta"] is True and report["n"] == 48


def test_predict_table_json_and_csv(cli_run, session_folder, tmp_path):
    run, _ = cli_run
    (tmp_path / "broken.png").write_bytes(b"nope")
    Image.open(next((session_folder / "red").iterdir())).save(tmp_path / "red.png")
    table = invoke("predict", run, tmp_path)
    assert table.exit_code == 0 and "red.png" in table.output and "skipped" in table.output
    as_json = json.loads(invoke("predict", run, tmp_path / "red.png", "--json",
                                "--top-k", 2).output)
    assert len(as_json[0]["top"]) == 2
    assert sum(t["probability"] for t in as_json[0]["top"]) <= 1.0001
    csv_file = tmp_path / "out.csv"
    assert invoke("predict", run, tmp_path, "--csv", csv_file).exit_code == 0
    lines = csv_file.read_text().splitlines()
    assert lines[0] == "file,rank,label,probability,error" and len(lines) == 1 + 3 + 1


@pytest.mark.parametrize("args,message", [
    (["finetune", "no/such/folder", "--backbone", "kerastl_small", "--weights", "none"],
     "no such file or folder"),
    (["finetune", "sample", "--backbone", "kerastl_small", "--weights", "imagenet"],
     "no ImageNet weights"),
    (["finetune", "sample", "--backbone", "inceptionv3", "--weights", "none", "--image-size",
      "32"], "at least 75 px"),
    (["finetune", "sample", "--weights", "none", "--backbone", "kerastl_small", "--unfreeze",
      "lots"], "--unfreeze"),
])
def test_user_errors_are_one_line(args, message, tmp_path):
    result = invoke(*args, "--runs-dir", tmp_path)
    assert result.exit_code == 1
    assert result.output.startswith("Error: ") and message in result.output
    assert "Traceback" not in result.output


def test_usage_errors_exit_2():
    assert invoke("finetune").exit_code == 2
    assert invoke("finetune", "sample", "--backbone", "resnet51").exit_code == 2


def test_evaluate_rejects_a_non_run(tmp_path):
    result = invoke("evaluate", tmp_path, "sample")
    assert result.exit_code == 1 and "not a finished kerastl run" in result.output




def test_evaluate_draws_the_most_confident_mistakes(tmp_path):
    import numpy as np

    from kerastl.report import plot_misclassified

    images = np.zeros((6, 20, 20, 3), np.uint8)
    labels = np.array([0, 1, 2, 0, 1, 2])
    probabilities = np.eye(3)[[0, 1, 2, 1, 2, 0]] * 0.7 + 0.1  # the last three are wrong
    path = plot_misclassified(images, labels, probabilities, ["a", "b", "c"],
                              tmp_path / "errors.png", columns=2)
    assert Image.open(path).size == (2 * 112, 2 * (112 + 14))  # 3 mistakes, 2 per row
    assert plot_misclassified(images, labels, np.eye(3)[labels], ["a", "b", "c"],
                              tmp_path / "none.png") is None


def test_evaluate_errors_option(cli_run, session_folder, tmp_path):
    run, _ = cli_run
    result = invoke("evaluate", run, session_folder, "--json", "--errors",
                    tmp_path / "errors.png")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    has_mistakes = report["accuracy"] < 1.0
    assert (report["errors_plot"] is not None) == has_mistakes
    assert (tmp_path / "errors.png").exists() == has_mistakes


DEFAULTS_CASES = {
    # command, its config class, how many options at least, where the CLI's word differs
    "finetune": (("finetune",), "kerastl.transfer.config:FinetuneConfig", 20,
                 {"class_weight": ("none", None)}),  # the CLI's word for no weighting
    "edit train-color": (("edit", "train-color"), "kerastl.edit.color_config:ColorConfig", 15,
                         {}),
    "gan train": (("gan", "train"), "kerastl.gan.config:GanConfig", 14,
                  {"image_size": ("32", 32)}),  # a choice of sizes, given as text
}


@pytest.mark.parametrize("case", DEFAULTS_CASES)
def test_the_cli_shows_and_uses_the_librarys_defaults(case):
    """One place for each default: a training command's options read its config class's."""
    import dataclasses
    import importlib

    path, target, at_least, words = DEFAULTS_CASES[case]
    module, name = target.split(":")
    config_class = getattr(importlib.import_module(module), name)
    library = {field.name: field.default for field in dataclasses.fields(config_class)}
    command = cli
    for part in path:
        command = command.commands[part]
    shown = {p.name: p.default for p in command.params
             if p.name in library and isinstance(p.default, (bool, int, float, str))}
    assert len(shown) >= at_least
    differ = {name: (value, library[name]) for name, value in shown.items()
              if value != library[name]}
    assert differ == words
