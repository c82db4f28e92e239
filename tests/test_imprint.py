"""Imprinting: the classification layer set from class centroids, and the runs that use it."""

import json

import keras
import numpy as np
import pytest
from click.testing import CliRunner

import kerastl
from kerastl.errors import KerastlError
from kerastl.quickstart import SAMPLE_BACKBONE_DIR
from kerastl.task import split_at_features
from kerastl.transfer.imprint import class_centroids, fit_scale, imprint, left_out_cosines
from kerastl_cli.main import cli

IMPRINT_ONLY = dict(weights=str(SAMPLE_BACKBONE_DIR), backbone=None, classes="5-9", per_class=8,
                    image_size=32, batch_size=8, head_init="centroids", verbose=0)


def clusters(spread: float, seed: int = 0, per_class: int = 6, dim: int = 16):
    """Three classes of positive feature vectors around random directions."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0, 4, (3, dim))
    labels = np.repeat(np.arange(3), per_class)
    features = np.abs(centres[labels] + rng.normal(0, spread, (len(labels), dim)))
    return features.astype(np.float32), labels


def unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_imprinted_layer_picks_the_nearest_centroid_in_angle():
    features, labels = clusters(2.0)
    result = imprint(features, labels, num_classes=4)  # class 3 has no image
    assert result.empty_classes == (3,)
    np.testing.assert_array_equal(result.kernel[:, 3], 0)
    centroids = np.stack([unit(unit(features[labels == c]).mean(axis=0)) for c in range(3)])
    np.testing.assert_allclose(result.kernel[:, :3], result.scale * centroids.T, rtol=1e-5)
    probe = np.abs(np.random.default_rng(1).normal(2, 2, (50, 16))).astype(np.float32)
    nearest = np.argmax(unit(probe) @ centroids.T, axis=1)
    np.testing.assert_array_equal(np.argmax(probe @ result.kernel, axis=1), nearest)


def test_left_out_cosines_leave_each_image_out_of_its_own_centroid():
    features, labels = clusters(1.0)
    labels[-1] = 3  # a class of one image keeps its full centroid
    cosines = left_out_cosines(features, labels, 4)
    for i, label in enumerate(labels):
        for c in range(4):
            members = (labels == c) & ((np.arange(len(labels)) != i) | (c != label) |
                                       ((labels == c).sum() == 1))
            expected = unit(features[i]) @ unit(unit(features[members]).mean(axis=0))
            assert cosines[i, c] == pytest.approx(expected, abs=1e-6)
    assert np.allclose(class_centroids(features, labels, 4)[3], unit(features[-1]))


def test_the_scale_is_sharper_for_separated_classes_than_for_mixed_ones():
    assert fit_scale(*clusters(0.3), 3) > 3 * fit_scale(*clusters(3.0), 3)


def test_imprinted_run_without_epochs_is_a_nearest_centroid_classifier(tmp_path):
    result = kerastl.finetune("sample", frozen_epochs=0, finetune_epochs=0,
                              runs_dir=str(tmp_path), name="imprint", **IMPRINT_ONLY)
    assert result.history == [] and result.metrics["best_epoch"] == 0
    saved = keras.models.load_model(result.run_dir / "model.keras")
    extractor, _ = split_at_features(saved)
    train, test = result.data.train, result.data.test
    centroids = np.stack([unit(unit(extractor.predict(train.images[train.labels == c],
                                                      verbose=0)).mean(axis=0))
                          for c in range(5)])
    nearest = np.argmax(extractor.predict(test.images, verbose=0) @ centroids.T, axis=1)
    predicted = np.argmax(saved.predict(test.images, verbose=0), axis=1)
    assert np.mean(predicted == nearest) > 0.99
    assert result.metrics["test"]["accuracy"] == pytest.approx(np.mean(predicted == test.labels))


def test_a_diverging_run_keeps_the_imprinted_head(tmp_path):
    before = kerastl.finetune("sample", frozen_epochs=0, finetune_epochs=0,
                              runs_dir=str(tmp_path), name="before", **IMPRINT_ONLY)
    after = kerastl.finetune("sample", frozen_epochs=1, finetune_epochs=1, lr=1e30,
                             runs_dir=str(tmp_path), name="after", **IMPRINT_ONLY)
    assert after.metrics["best_epoch"] == 0
    assert after.metrics["test"]["accuracy"] == before.metrics["test"]["accuracy"]


def test_an_epoch_that_validates_better_replaces_the_imprinted_head(tmp_path):
    result = kerastl.finetune("sample", frozen_epochs=3, finetune_epochs=0, lr=1e-2,
                              augment="none", select="loss", runs_dir=str(tmp_path),
                              name="trained", **IMPRINT_ONLY)
    losses = [result.metrics["before_training"]["val_loss"]] + \
        [row["val_loss"] for row in result.history]
    assert len(losses) == 4
    assert result.metrics["best_epoch"] == int(np.argmin(losses))  # 0: before training


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_figures_before_training_are_the_ones_keras_reports(tmp_path, smoothing):
    """The imprinted head competes with the epochs on equal terms."""
    from kerastl.data.pipeline import make_dataset
    from kerastl.transfer.finetune import validation_figures

    result = kerastl.finetune("sample", frozen_epochs=0, finetune_epochs=0,
                              label_smoothing=smoothing, runs_dir=str(tmp_path), name="fig",
                              **IMPRINT_ONLY)
    loss = keras.losses.CategoricalCrossentropy(label_smoothing=smoothing) if smoothing \
        else keras.losses.SparseCategoricalCrossentropy()
    result.model.compile(loss=loss, metrics=["accuracy"])
    val = make_dataset(result.data.val, 8, one_hot=bool(smoothing))
    keras_loss, keras_accuracy = result.model.evaluate(val, verbose=0)
    figures = validation_figures(result.model, result.data, result.config, [])
    assert figures == result.metrics["before_training"]
    assert figures["val_loss"] == pytest.approx(keras_loss, rel=1e-4)
    assert figures["val_accuracy"] == pytest.approx(keras_accuracy)


def test_no_epochs_need_an_imprinted_head_and_imprinting_needs_pretrained_features():
    with pytest.raises(KerastlError, match="nothing to train.*--head-init centroids"):
        kerastl.FinetuneConfig(data="sample", frozen_epochs=0, finetune_epochs=0)
    with pytest.raises(KerastlError, match="centroids needs pretrained features"):
        kerastl.FinetuneConfig(data="sample", weights="none", head_init="centroids")


def test_multitask_imprints_every_head_from_its_own_labels(session_folder, tmp_path):
    warmth = tmp_path / "warmth.json"
    warmth.write_text(json.dumps({"red": "warm", "green": "cold", "blue": "cold"}))
    result = kerastl.multitask(str(session_folder), [f"warmth={warmth}"],
                               weights=str(SAMPLE_BACKBONE_DIR), image_size=32,
                               head_init="centroids", frozen_epochs=0, finetune_epochs=0,
                               runs_dir=str(tmp_path), name="mt", verbose=0)
    extractor, _ = split_at_features(result.model)
    train = result.data.train
    features = unit(extractor.predict(train.images, verbose=0))
    cold = np.isin(train.labels, [train.class_names.index(c) for c in ("blue", "green")])
    expected = unit(np.stack([features[cold].mean(axis=0), features[~cold].mean(axis=0)]))
    kernel = result.model.get_layer("warmth").get_weights()[0]  # columns: cold, warm
    np.testing.assert_allclose(unit(kernel.T), expected, atol=1e-4)


def test_cli_says_when_the_imprinted_head_is_kept(tmp_path):
    result = CliRunner().invoke(cli, [
        "-q", "finetune", "sample", "--weights", str(SAMPLE_BACKBONE_DIR), "--classes", "5-9",
        "--per-class", "4", "--image-size", "32", "--head-init", "centroids",
        "--frozen-epochs", "0", "--finetune-epochs", "0", "--runs-dir", str(tmp_path),
        "--name", "cli"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "Kept the imprinted head" in result.output
    config = json.loads((tmp_path / "cli" / "config.json").read_text())
    assert config["settings"]["head_init"] == "centroids"


def test_the_frozen_phase_trains_on_the_features_imprinting_read(tmp_path, monkeypatch):
    """One forward pass over the training images, not two, and the same head as the full
    model trains."""
    from kerastl.transfer import finetune as finetune_module

    reads = []
    original = finetune_module.features_of
    monkeypatch.setattr(finetune_module, "features_of",
                        lambda extractor, data, size: reads.append(len(data)) or
                        original(extractor, data, size))
    runs = {}
    for cache in (True, False):
        runs[cache] = kerastl.finetune("sample", frozen_epochs=2, finetune_epochs=0,
                                       augment="none", dropout=0.0, feature_cache=cache,
                                       runs_dir=str(tmp_path), name=f"cache-{cache}",
                                       **IMPRINT_ONLY)
    assert reads == [len(runs[True].data.val)]  # the cached phase read only validation
    for a, b in zip(runs[True].model.get_layer("predictions").weights,
                    runs[False].model.get_layer("predictions").weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-4)


def test_training_curves_mark_the_head_before_training_at_epoch_0(tmp_path, monkeypatch):
    from kerastl import report

    figures = []
    monkeypatch.setattr(report, "_save", lambda fig, path: figures.append(fig) or path)
    rows = [{"epoch": e, "loss": 1.0 - e / 10, "val_loss": 0.9, "accuracy": 0.5,
             "val_accuracy": 0.6} for e in range(3)]
    report.plot_history(rows, {"frozen": 0}, tmp_path / "curves.png",
                        before_training={"val_accuracy": 0.8, "val_loss": 0.4})
    report.plot_history(rows, {"frozen": 0}, tmp_path / "plain.png")
    for axis, value in zip(figures[0].axes, (0.4, 0.8)):
        stars = [line for line in axis.get_lines() if "before training" in line.get_label()]
        assert len(stars) == 1 and list(stars[0].get_xydata()[0]) == [0, value]
    assert not any("before training" in line.get_label()
                   for axis in figures[1].axes for line in axis.get_lines())
