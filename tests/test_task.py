"""One task shape: the classifier and the colour regressor are two heads on one trunk, and
their parts are found by type and place, not by layer names."""

import keras
import numpy as np
import pytest

from kerastl.edit.color_model import build_predictor
from kerastl.errors import KerastlError
from kerastl.task import split_at_features, task_parts
from kerastl.transfer.model import build_classifier, resolve_backbone


@pytest.fixture(scope="module")
def backbone():
    return resolve_backbone("kerastl_small", None, 32)


def test_the_classifier_and_the_colour_model_share_one_trunk_shape(backbone, tmp_path):
    classifier = build_classifier(backbone, 3)
    color = build_predictor(backbone)
    assert task_parts(classifier).backbone is backbone.model
    assert task_parts(color).backbone is backbone.model
    path = tmp_path / "classifier.keras"
    classifier.save(path)
    loaded = keras.models.load_model(path, compile=False)
    parts = task_parts(loaded)
    assert parts.backbone is not backbone.model and parts.backbone.name == backbone.model.name
    assert tuple(parts.pooled.shape) == tuple(task_parts(classifier).pooled.shape)


def test_split_at_features_shares_the_heads_weights_and_gives_the_same_outputs(backbone):
    classifier = build_classifier(backbone, 3, dropout=0.0)
    extractor, head = split_at_features(classifier)
    images = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(head(extractor(images)), classifier(images), atol=1e-6)
    assert {id(w) for w in head.weights} <= {id(w) for w in classifier.weights}


def test_a_model_that_is_not_a_kerastl_task_is_refused_in_one_line():
    plain = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(2, 3),
                              keras.layers.GlobalAveragePooling2D()])
    with pytest.raises(KerastlError, match="not a kerastl classifier"):
        task_parts(plain, "some.keras")
