"""ResNet50, VGG16 and InceptionV3 at their minimum sizes through both phases.

One optimizer step per phase with only the top block unfrozen: the head alone
moves in phase 1, the head and the top block in phase 2, nothing below it.
"""

import dataclasses

import keras
import numpy as np
import pytest

from kerastl.backbones import layer_groups
from kerastl.transfer.model import build_classifier, resolve_backbone
from kerastl.transfer.recipes import Budget, plan_phases
from kerastl.transfer.schedule import apply_phase


@pytest.fixture(scope="module", params=["resnet50", "vgg16", "inceptionv3"])
def classifier(request):
    keras.utils.set_random_seed(0)
    backbone = resolve_backbone(request.param, "none", _min_size(request.param))
    backbone = dataclasses.replace(backbone, transferred=True)  # as if pretrained
    model = build_classifier(backbone, 3)
    yield backbone, model
    keras.backend.clear_session()


def _min_size(name):
    from kerastl.backbones import get_spec

    return get_spec(name).min_size


def _snapshot(layers):
    return {layer.name: [w.numpy().copy() for w in layer.weights] for layer in layers}


def _changed(before, layers):
    return {layer.name for layer in layers
            if any(not np.allclose(a, w.numpy()) for a, w in zip(before[layer.name],
                                                                 layer.weights))}


def _fit_one_step(model, lr):
    size = model.input_shape[1]
    images = np.random.default_rng(1).uniform(0, 255, (4, size, size, 3)).astype("float32")
    model.compile(keras.optimizers.SGD(lr), "sparse_categorical_crossentropy")
    model.fit(images, np.array([0, 1, 2, 0]), batch_size=4, epochs=1, verbose=0)


def test_phases_train_only_what_they_unfreeze(classifier):
    backbone, model = classifier
    groups = layer_groups(backbone.model, backbone.spec)
    frozen, finetune = plan_phases(Budget(1, 1, 0.1, unfreeze="1blocks"))
    weighted = [layer for layer in backbone.model.layers if layer.weights]
    head = model.get_layer("predictions")

    apply_phase(backbone.model, groups, frozen)
    before = _snapshot(weighted + [head])
    _fit_one_step(model, frozen.learning_rate)
    assert _changed(before, weighted + [head]) == {"predictions"}

    opened = apply_phase(backbone.model, groups, finetune)
    before = _snapshot(weighted)
    _fit_one_step(model, finetune.learning_rate)
    changed = _changed(before, weighted)
    top_convs = {layer.name for layer in weighted
                 if layer.name in groups[-1] and "Conv" in type(layer).__name__}
    assert changed and changed <= opened
    assert top_convs <= changed
    assert not any(isinstance(backbone.model.get_layer(n), keras.layers.BatchNormalization)
                   for n in changed)
