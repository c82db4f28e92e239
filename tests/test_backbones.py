"""The backbone registry: each entry builds, its groups cover it, preprocessing matches Keras."""

import keras
import numpy as np
import pytest

from kerastl import backbones
from kerastl.backbones import REGISTRY, build_backbone, get_spec, layer_groups
from kerastl.errors import KerastlError, WeightsError
from kerastl.layers import Preprocess


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_registry_entry_builds_with_groups_covering_every_layer(name):
    spec = REGISTRY[name]
    model = build_backbone(name, spec.min_size, weights=None)
    groups = layer_groups(model, spec)
    flat = [layer for group in groups for layer in group]
    expected = [layer.name for layer in model.layers if layer.__class__.__name__ != "InputLayer"]
    assert flat == expected
    assert len(groups) >= 4 and all(groups)
    assert model.count_params() == spec.params
    keras.backend.clear_session()


def test_lookup_is_forgiving_about_case_and_dashes():
    assert get_spec("ResNet-50").name == "resnet50"
    with pytest.raises(KerastlError, match="unknown backbone 'resnet51'"):
        get_spec("resnet51")


def test_too_small_input_is_refused():
    with pytest.raises(KerastlError, match="at least 75 px"):
        build_backbone("inceptionv3", 32)


def test_bn_momentum_is_set_everywhere():
    model = build_backbone("kerastl_small", 32, bn_momentum=0.8)
    momenta = {layer.momentum for layer in model.layers
               if isinstance(layer, keras.layers.BatchNormalization)}
    assert momenta == {0.8}


@pytest.mark.parametrize("mode,reference", [
    ("caffe", keras.applications.resnet50.preprocess_input),
    ("tf", keras.applications.inception_v3.preprocess_input),
    ("torch", keras.applications.densenet.preprocess_input),
])
def test_preprocess_layer_matches_keras_applications(mode, reference, tmp_path):
    """Called eagerly, and inside a model saved and loaded again (Keras' Normalization with
    fixed statistics, built inside a symbolic call, fails there)."""
    pixels = np.random.default_rng(0).uniform(0, 255, (2, 4, 4, 3)).astype(np.float32)
    expected = reference(pixels.copy())
    ours = keras.ops.convert_to_numpy(Preprocess(mode)(pixels))
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-4)
    inputs = keras.Input((4, 4, 3))
    keras.Model(inputs, Preprocess(mode)(inputs)).save(tmp_path / "preprocess.keras")
    loaded = keras.models.load_model(tmp_path / "preprocess.keras")
    assert not loaded.weights  # a saved model keeps the mode, no statistics
    np.testing.assert_allclose(loaded.predict(pixels, verbose=0), expected, rtol=1e-5, atol=1e-4)


def test_imagenet_download_failure_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    try:
        build_backbone("mobilenetv3small", 32, weights="imagenet")
    except WeightsError as error:
        message = str(error)
        assert "\n" not in message and "--weights none" in message
    else:
        pytest.skip("this machine can download ImageNet weights")


def test_small_backbone_has_no_imagenet_weights():
    with pytest.raises(WeightsError, match="no ImageNet weights"):
        build_backbone(backbones.SMALL, 32, weights="imagenet")


def test_weights_file_round_trip(tmp_path):
    model = build_backbone("kerastl_small", 32)
    path = tmp_path / "small.weights.h5"
    model.save_weights(path)
    loaded = build_backbone("kerastl_small", 32, weights=str(path))
    for a, b in zip(model.weights, loaded.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    with pytest.raises(WeightsError, match="no weights file"):
        build_backbone("kerastl_small", 32, weights=str(tmp_path / "missing.weights.h5"))
