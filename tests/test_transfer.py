"""Transfer for real: the shipped backbone's recipe, reuse of a pretrained run, learning."""

import json

import pytest
from click.testing import CliRunner

import kerastl
from kerastl.backbones import BackboneMeta
from kerastl.quickstart import SAMPLE_BACKBONE_DIR
from kerastl_cli.main import cli


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """The documented command that made the shipped backbone, with fewer epochs."""
    runs = tmp_path_factory.mktemp("pretrain")
    result = invoke("-q", "pretrain", "sample", "--classes", "0-4", "--backbone",
                    "kerastl_small", "--image-size", 32, "--epochs", 2, "--seed", 0,
                    "--name", "sample_backbone", "--runs-dir", runs)
    assert result.exit_code == 0, result.output
    return runs / "sample_backbone"


def test_pretrain_remakes_the_shipped_backbone(pretrained):
    import keras

    made = BackboneMeta.read(pretrained / "backbone.json")
    shipped = BackboneMeta.read(SAMPLE_BACKBONE_DIR / "backbone.json")
    assert made == shipped
    assert made.source_classes == ["T-shirt_top", "Trouser", "Pullover", "Dress", "Coat"]
    ours = keras.models.load_model(pretrained / "backbone.keras")
    theirs = keras.models.load_model(SAMPLE_BACKBONE_DIR / "backbone.keras")
    assert [w.shape for w in ours.weights] == [w.shape for w in theirs.weights]


def test_finetune_from_a_pretrained_run_needs_no_backbone_name(pretrained, tmp_path):
    result = kerastl.finetune("sample", weights=str(pretrained), backbone=None,
                              classes="5-9", per_class=4, frozen_epochs=1, finetune_epochs=1,
                              runs_dir=str(tmp_path), name="target", verbose=0)
    config = json.loads((result.run_dir / "config.json").read_text())
    assert config["backbone"]["name"] == "kerastl_small"
    assert [p["name"] for p in config["phases"]] == ["frozen", "finetune"]
    assert config["phases"][1]["learning_rate"] < config["phases"][0]["learning_rate"]
    assert {p["schedule"] for p in config["phases"]} == {"cosine"}  # the default
    assert [row["phase"] for row in result.history] == ["frozen", "finetune"]


def test_backbone_finetuning_recipe_ramps_the_backbone_rate_in_a_real_run(tmp_path):
    result = invoke("finetune", "sample", "--weights", SAMPLE_BACKBONE_DIR, "--classes", "5-9",
                    "--per-class", 4, "--recipe", "backbone_finetuning", "--frozen-epochs", 1,
                    "--finetune-epochs", 3, "--runs-dir", tmp_path, "--name", "ramp")
    assert result.exit_code == 0, result.output
    log = (tmp_path / "ramp" / "run.log").read_text()
    for epoch, factor in ((1, "0.1"), (2, "0.15"), (3, "0.225")):
        assert f"epoch {epoch} of phase finetune: backbone rate x{factor} of the head's" in log
    config = json.loads((tmp_path / "ramp" / "config.json").read_text())
    assert [p["learning_rate"] for p in config["phases"]] == [1e-3, 1e-3]


def test_size_mismatch_with_a_pretrained_run_is_clear(pretrained, tmp_path):
    result = invoke("finetune", "sample", "--weights", pretrained, "--image-size", 48,
                    "--runs-dir", tmp_path)
    assert result.exit_code == 1 and "takes 32 px images" in result.output


def test_quickstart_transfer_beats_scratch(tmp_path):
    result = invoke("quickstart", "--runs-dir", tmp_path)
    assert result.exit_code == 0, result.output
    assert "Transfer gain from ImageNet: +" in result.output
    assert "kerastl_small from the clothes" in result.output
    runs = list(tmp_path.glob("quickstart-*/transfer/plots/training_curves.png"))
    assert runs
    transfer = json.loads((runs[0].parents[1] / "metrics.json").read_text())
    small = json.loads((runs[0].parents[2] / "small" / "metrics.json").read_text())
    assert "before_training" in transfer and "before_training" not in small  # imprinted head


def test_learning_on_fashion_mnist_is_well_above_chance(fashion_available, tmp_path):
    result = kerastl.finetune("fashion_mnist", backbone="kerastl_small", weights="none",
                              image_size=32, per_class=100, frozen_epochs=0, finetune_epochs=4,
                              augment="none", val_fraction=0.02, runs_dir=str(tmp_path),
                              name="fm", verbose=0)
    assert result.metrics["test"]["n"] == 10000
    assert result.metrics["test"]["accuracy"] > 0.6  # chance is 0.1
    assert "top5_accuracy" in result.metrics["test"]


def test_handoff_carries_the_pretrained_weights(pretrained, tmp_path):
    """A frozen-only finetune keeps the backbone exactly as pretrained."""
    import keras
    import numpy as np

    result = kerastl.finetune("sample", weights=str(pretrained), backbone=None, classes="5-9",
                              per_class=4, frozen_epochs=1, finetune_epochs=0,
                              runs_dir=str(tmp_path), name="handoff", verbose=0)
    source = keras.models.load_model(pretrained / "backbone.keras")
    tuned = result.model.get_layer("backbone")
    assert len(source.weights) == len(tuned.weights)
    for a, b in zip(source.weights, tuned.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_from_scratch_runs_get_bn_momentum_0_9_unless_told():
    """Keras builds MobileNetV3 with momentum 0.999, too slow to converge in short runs."""
    import keras

    from kerastl.transfer.model import resolve_backbone

    def momenta(weights, bn_momentum=None):
        backbone = resolve_backbone("mobilenetv3small", weights, 32, bn_momentum)
        return {layer.momentum for layer in backbone.model.layers
                if isinstance(layer, keras.layers.BatchNormalization)}

    assert momenta("none") == {0.9}
    assert momenta("none", 0.75) == {0.75}
    assert momenta(None) == {0.9}


def test_a_registered_recipe_of_ones_own_drives_a_run_through_its_hooks(tmp_path):
    """The trainer knows recipes only by their hooks: a user's subclass plans the phases,
    opens the layers and is called before every epoch with the optimizer."""
    from kerastl.transfer.recipes import RECIPES, Recipe, register_recipe
    from kerastl.transfer.schedule import FINETUNE, FROZEN, Phase

    calls = []

    @register_recipe
    class HeadThenTopBlock(Recipe):
        name = "test_head_then_top_block"

        def plan(self, budget):
            return [Phase(FROZEN, 1, budget.lr, "none"), Phase(FINETUNE, 2, budget.lr, "1blocks")]

        def finetune_function(self, optimizer, groups, phase, opened, epoch_in_phase):
            calls.append((phase.name, epoch_in_phase, opened == set(groups[-1])))

    try:
        result = kerastl.finetune("sample", weights=SAMPLE_BACKBONE_DIR, classes="5-9",
                                  per_class=4, recipe=HeadThenTopBlock.name, verbose=0,
                                  runs_dir=tmp_path, name="own")
    finally:
        RECIPES.pop(HeadThenTopBlock.name)
    assert calls == [(FROZEN, 0, False), (FINETUNE, 0, True), (FINETUNE, 1, True)]
    config = json.loads((result.run_dir / "config.json").read_text())
    assert config["settings"]["recipe"] == HeadThenTopBlock.name
    assert [(p["name"], p["epochs"]) for p in config["phases"]] == [(FROZEN, 1), (FINETUNE, 2)]
