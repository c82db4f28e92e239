"""Multi-task: one shared backbone, several heads, metrics per head, read back like any run."""

import json

import keras
import pytest
from click.testing import CliRunner

from kerastl.errors import KerastlError
from kerastl.transfer.heads import make_head, parse_head
from kerastl_cli.main import cli


@pytest.fixture
def warmth(tmp_path):
    path = tmp_path / "warmth.json"
    path.write_text(json.dumps({"red": "warm", "green": "cold", "blue": "cold"}))
    return path


def test_head_mapping_files(tmp_path, warmth):
    head = make_head("warmth", warmth, 0.5, ["blue", "green", "red"])
    assert head.class_names == ("cold", "warm") and head.lookup == (0, 0, 1)
    csv_file = tmp_path / "warmth.csv"
    csv_file.write_text("class,label\nred,warm\ngreen,cold\n")
    with pytest.raises(KerastlError, match=r"does not map these classes to a warmth: \['blue'\]"):
        make_head("warmth", csv_file, 1.0, ["blue", "green", "red"])
    assert parse_head(f"warmth={warmth}:0.5") == ("warmth", warmth, 0.5)


def test_multitask_run_shares_one_backbone_and_reports_each_head(session_folder, warmth,
                                                                 tmp_path):
    result = CliRunner().invoke(cli, [
        "-q", "multitask", str(session_folder), "--head", f"warmth={warmth}:0.5",
        "--backbone", "kerastl_small", "--weights", "none", "--image-size", "32",
        "--frozen-epochs", "1", "--finetune-epochs", "1", "--batch-size", "8", "--select", "loss",
        "--runs-dir", str(tmp_path), "--name", "mt"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    run = tmp_path / "mt"
    model = keras.models.load_model(run / "model.keras")
    assert set(model.output) == {"class", "warmth"}
    backbones = [layer for layer in model.layers if layer.name == "backbone"]
    assert len(backbones) == 1
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["val"]["heads"]["warmth"]["class_names"] == ["cold", "warm"]
    assert 0 <= metrics["val"]["accuracy"] <= 1
    assert json.loads((run / "heads.json").read_text())["warmth"] == ["cold", "warm"]
    assert "warmth" in result.output
    history = (run / "history.csv").read_text().splitlines()[0]
    assert "val_warmth_accuracy" in history and "val_class_accuracy" in history
    assert "val_class_loss" in history  # what --select loss follows: the class head's loss
    evaluated = CliRunner().invoke(cli, ["evaluate", str(run), str(session_folder), "--json"])
    assert evaluated.exit_code == 0 and json.loads(evaluated.output)["n"] == 48
