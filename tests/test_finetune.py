"""finetune() options that change the training path: mixing, NaN stop, BatchNorm training."""

import json

import numpy as np
import pytest

import kerastl
from kerastl.errors import TrainingError
from kerastl.quickstart import SAMPLE_BACKBONE_DIR

TINY = dict(image_size=32, frozen_epochs=1, finetune_epochs=1, batch_size=8, verbose=0)


def test_mixup_and_cutmix_train_with_one_hot_labels_on_a_streamed_folder(session_folder,
                                                                         tmp_path, monkeypatch):
    """Also the whole run on a folder decoded batch by batch from its files."""
    monkeypatch.setattr("kerastl.data.sources.STREAM_ABOVE_BYTES", 0)
    result = kerastl.finetune(str(session_folder), backbone="kerastl_small", weights="none",
                              mixup=True, cutmix=True, runs_dir=str(tmp_path), name="mix",
                              **TINY)
    assert 0.0 <= result.metrics["val"]["accuracy"] <= 1.0
    assert all(row["loss"] > 0 for row in result.history)


def test_nan_loss_stops_with_a_clear_error(session_folder, tmp_path):
    with pytest.raises(TrainingError, match="loss became nan.*no model to keep"):
        kerastl.finetune(str(session_folder), backbone="kerastl_small", weights="none",
                         lr=1e30, runs_dir=str(tmp_path), name="nan", **TINY)


def test_train_bn_with_block_unfreeze_runs_end_to_end(tmp_path):
    result = kerastl.finetune("sample", weights=str(SAMPLE_BACKBONE_DIR), backbone=None,
                              classes="5-9", per_class=3, train_bn=True, unfreeze="1blocks",
                              runs_dir=str(tmp_path), name="bn", **TINY)
    config = json.loads((result.run_dir / "config.json").read_text())
    assert config["phases"][1]["train_bn"] is True
    assert config["phases"][1]["unfreeze"] == "1blocks"


def _frozen_only(tmp_path, name, feature_cache):
    return kerastl.finetune("sample", weights=str(SAMPLE_BACKBONE_DIR), backbone=None,
                            classes="5-9", per_class=8, image_size=32, frozen_epochs=2,
                            finetune_epochs=0, batch_size=8, augment="none", dropout=0.0,
                            feature_cache=feature_cache, seed=3, runs_dir=str(tmp_path),
                            name=name, verbose=0)


def test_feature_cache_trains_the_same_head_as_the_full_model(tmp_path, caplog, monkeypatch):
    import logging

    import numpy as np

    monkeypatch.setattr(logging.getLogger("kerastl"), "propagate", True)
    caplog.set_level(logging.INFO, logger="kerastl")
    cached = _frozen_only(tmp_path, "cached", True)
    assert "head on cached features" in caplog.text
    full = _frozen_only(tmp_path, "full", False)
    for a, b in zip(cached.model.get_layer("predictions").weights,
                    full.model.get_layer("predictions").weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-4)
    assert cached.metrics["test"]["accuracy"] == pytest.approx(full.metrics["test"]["accuracy"],
                                                               abs=0.01)


def test_balanced_class_weights_equalise_classes():
    import numpy as np

    from kerastl.transfer.finetune import balanced_class_weights

    weights = balanced_class_weights(np.array([0, 0, 0, 1]), 2)
    assert weights == {0: pytest.approx(4 / 6), 1: pytest.approx(2.0)}
    assert 3 * weights[0] == pytest.approx(1 * weights[1])


def test_weight_decay_uses_adamw():
    import keras

    from kerastl.transfer.rates import make_optimizer

    assert isinstance(make_optimizer(1e-3, 0.01), keras.optimizers.AdamW)
    assert type(make_optimizer(1e-3)) is keras.optimizers.Adam


def test_label_smoothing_class_weight_and_decay_train(session_folder, tmp_path):
    import json

    result = kerastl.finetune("sample", weights=str(SAMPLE_BACKBONE_DIR), backbone=None,
                              classes="5-9", per_class=6, label_smoothing=0.1,
                              class_weight="balanced", weight_decay=1e-4, augment="none",
                              runs_dir=str(tmp_path), name="extras", **TINY)
    settings = json.loads((result.run_dir / "config.json").read_text())["settings"]
    assert (settings["label_smoothing"], settings["class_weight"]) == (0.1, "balanced")
    assert all(row["loss"] > 0 for row in result.history)


def test_multitask_refuses_label_mixing(tmp_path):
    from kerastl.errors import KerastlError

    with pytest.raises(KerastlError, match="multi-task runs take plain class labels"):
        kerastl.multitask("sample", heads=["g=x.json"], label_smoothing=0.1)


def test_without_a_validation_split_the_last_epoch_is_kept(tmp_path):
    """--val-fraction 0 trains on every label: no early stopping, no pick by any split."""
    result = kerastl.finetune("sample", weights=str(SAMPLE_BACKBONE_DIR), backbone=None,
                              classes="5-9", per_class=8, image_size=32, frozen_epochs=2,
                              finetune_epochs=1, batch_size=8, augment="none", val_fraction=0.0,
                              lr=1e-6, patience=1, runs_dir=str(tmp_path), name="noval",
                              verbose=0)
    assert len(result.data.train) == 40 and len(result.data.val) == 0
    assert "val" not in result.metrics and "test" in result.metrics
    assert result.metrics["best_epoch"] == len(result.history) == 3
    assert (result.run_dir / "plots" / "confusion_matrix.png").exists()


def test_a_tie_in_validation_accuracy_keeps_the_later_epoch(tmp_path):
    """Ten validation images score in steps of 0.1: the later of two equal epochs has
    trained longer, and the earlier one may be a half-trained frozen-phase model."""
    import keras

    from kerastl.runs import MODEL_FILE, RunDir
    from kerastl.engine.callbacks import BestModelSaver

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    (tmp_path / "run").mkdir()
    saver = BestModelSaver(RunDir(tmp_path / "run"), model)
    for epoch, accuracy in enumerate([0.5, 0.8, 0.7, 0.8, 0.6]):
        model.layers[0].bias.assign([float(epoch)])
        saver.on_epoch_end(epoch, {"val_accuracy": accuracy})
    assert saver.best_epoch == 3 and saver.best == pytest.approx(0.8)
    kept = keras.models.load_model(tmp_path / "run" / MODEL_FILE)
    assert float(kept.layers[0].bias.numpy()[0]) == 3.0


def test_a_tie_with_the_model_before_training_keeps_it(tmp_path):
    """An imprinted head scored in float64 (0.6) ties Keras' float32 0.6 of a trained epoch
    (0.60000002), and the tie keeps the imprinted head; trained epochs still break ties to
    the later."""
    import keras

    from kerastl.engine.callbacks import BEFORE_TRAINING, BestModelSaver
    from kerastl.runs import RunDir

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    (tmp_path / "run").mkdir()
    saver = BestModelSaver(RunDir(tmp_path / "run"), model)
    saver.consider(BEFORE_TRAINING, {"val_accuracy": 6 / 10})
    saver.on_epoch_end(0, {"val_accuracy": float(np.float32(0.6))})
    assert saver.best_epoch == BEFORE_TRAINING
    saver.on_epoch_end(1, {"val_accuracy": 1.0})
    saver.on_epoch_end(2, {"val_accuracy": float(np.float32(1.0))})
    assert saver.best_epoch == 2


def test_the_kept_epoch_is_put_back_into_the_trained_model(tmp_path):
    """The final evaluation uses the trained model itself with the kept epoch's weights:
    from memory, or from model.keras when that epoch ran before a resume."""
    import keras

    from kerastl.runs import RunDir
    from kerastl.engine.callbacks import BestModelSaver

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    (tmp_path / "run").mkdir()
    saver = BestModelSaver(RunDir(tmp_path / "run"), model)
    for epoch, accuracy in enumerate([0.5, 0.9, 0.7]):
        model.layers[0].bias.assign([float(epoch)])
        saver.on_epoch_end(epoch, {"val_accuracy": accuracy})
    saver.restore_best()
    assert float(model.layers[0].bias.numpy()[0]) == 1.0
    model.layers[0].bias.assign([7.0])
    resumed = BestModelSaver(RunDir(tmp_path / "run"), model)  # nothing kept in memory
    resumed.restore_best()
    assert float(model.layers[0].bias.numpy()[0]) == 1.0


def test_the_final_figures_are_those_of_the_kept_model_file(tmp_path):
    """metrics.json comes from the in-memory model with the best weights put back; the
    model.keras a user takes away must score the same."""
    from kerastl.inference import evaluate_heads
    from kerastl.runs import MODEL_FILE, load_keras_model

    result = kerastl.finetune("sample", weights=str(SAMPLE_BACKBONE_DIR), backbone=None,
                              classes="5-9", per_class=6, image_size=32, frozen_epochs=2,
                              finetune_epochs=2, batch_size=8, lr=0.05, select="loss",
                              runs_dir=str(tmp_path), name="kept", verbose=0)
    kept = load_keras_model(result.run_dir / MODEL_FILE)
    for split in ("val", "test"):
        data = getattr(result.data, split)
        assert evaluate_heads(kept, data, [], split) == result.metrics[split]


def test_select_loss_keeps_the_epoch_of_lowest_validation_loss(tmp_path):
    """With a few validation images accuracy moves in coarse steps; --select loss picks on
    the validation loss instead, through every phase, and early stopping follows it."""
    from kerastl.errors import KerastlError

    result = kerastl.finetune("sample", weights=str(SAMPLE_BACKBONE_DIR), backbone=None,
                              classes="5-9", per_class=6, image_size=32, frozen_epochs=2,
                              finetune_epochs=2, batch_size=8, lr=0.05, select="loss",
                              patience=10, runs_dir=str(tmp_path), name="byloss", verbose=0)
    losses = [row["val_loss"] for row in result.history]
    lowest = max(i for i, loss in enumerate(losses) if loss == min(losses))
    assert result.metrics["best_epoch"] == lowest + 1
    with pytest.raises(KerastlError, match="--select takes accuracy, loss"):
        kerastl.finetune("sample", select="val_auc")


def test_the_final_evaluation_traces_the_network_once_for_every_split():
    """Validation and test share one traced forward pass of the kept model."""
    import gc
    import weakref

    import keras
    import numpy as np
    import tensorflow as tf

    from kerastl.inference import _FORWARD_PASSES, predictions

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    splits = [tf.data.Dataset.from_tensor_slices((np.random.rand(8, 4).astype("float32"),
                                                  np.zeros(8))).batch(4) for _ in range(2)]
    outputs = [predictions(model, split) for split in splits]
    assert [o.shape for o in outputs] == [(8, 3), (8, 3)]
    assert _FORWARD_PASSES[model].experimental_get_tracing_count() == 1
    alive = weakref.ref(model)
    del model, outputs
    gc.collect()
    assert alive() is None  # the cache does not keep a model alive
