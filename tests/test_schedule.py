"""The freeze-then-unfreeze schedule: phases, what trains, BatchNorm behaviour."""

import keras
import numpy as np
import pytest

from kerastl.backbones import get_spec, layer_groups
from kerastl.errors import KerastlError
from kerastl.transfer.model import ResolvedBackbone, build_classifier, resolve_backbone
from kerastl.transfer.recipes import Budget, FineTune, FreezeThenUnfreeze, make_recipe, \
    plan_phases
from kerastl.transfer.schedule import (FINETUNE, FROZEN, SCRATCH, Phase, apply_phase,
                                       layers_to_unfreeze, parse_unfreeze)


def test_plan_with_transfer_has_two_phases_and_a_lower_rate():
    phases = plan_phases(Budget(2, 3, 1e-3, unfreeze="all"))
    assert [p.name for p in phases] == [FROZEN, FINETUNE]
    assert phases[0].unfreeze == "none" and phases[1].unfreeze == "all"
    assert phases[1].learning_rate == pytest.approx(1e-4)


def test_plan_from_scratch_is_one_phase_of_both_budgets():
    (phase,) = plan_phases(Budget(2, 3, 1e-3, unfreeze="2blocks"), transfer=False)
    assert (phase.name, phase.epochs, phase.unfreeze, phase.train_bn) == (SCRATCH, 5, "all", True)


@pytest.mark.parametrize("text,parsed", [("all", ("all", 0)), ("none", ("none", 0)),
                                         ("12", ("layers", 12)), ("0.25", ("fraction", 0.25)),
                                         ("2blocks", ("blocks", 2)), ("1block", ("blocks", 1))])
def test_parse_unfreeze(text, parsed):
    assert parse_unfreeze(text) == parsed


@pytest.mark.parametrize("bad", ["some", "0", "1.5", "0blocks", "-3"])
def test_parse_unfreeze_rejects(bad):
    with pytest.raises(KerastlError, match="--unfreeze"):
        parse_unfreeze(bad)


@pytest.fixture
def small():
    backbone = resolve_backbone("kerastl_small", None, 32)
    return backbone, layer_groups(backbone.model, backbone.spec)


def test_unfreeze_counts_from_the_top(small):
    backbone, groups = small
    assert [g[0] for g in groups] == ["block1_conv1", "block2_conv1", "block3_conv1",
                                      "block4_conv1"]
    top_block = layers_to_unfreeze(backbone.model, groups, "1blocks")
    assert top_block == set(groups[-1])
    assert layers_to_unfreeze(backbone.model, groups, "2") == {"block4_conv2", "block4_conv2_bn"}
    weighted = [layer for layer in backbone.model.layers if layer.weights]
    assert len(layers_to_unfreeze(backbone.model, groups, "0.5")) == len(weighted) // 2


def _trainable_names(model):
    return {layer.name for layer in model.layers if layer.trainable and layer.weights}


def test_frozen_phase_trains_nothing_in_the_backbone(small):
    backbone, groups = small
    apply_phase(backbone.model, groups, Phase(FROZEN, 1, 1e-3, "none"))
    assert backbone.model.trainable_weights == []


def test_bn_stays_frozen_when_unfreezing_unless_train_bn(small):
    backbone, groups = small
    apply_phase(backbone.model, groups, Phase(FINETUNE, 1, 1e-4, "1blocks"))
    assert _trainable_names(backbone.model) == {"block4_conv1", "block4_conv2"}
    apply_phase(backbone.model, groups, Phase(FINETUNE, 1, 1e-4, "1blocks", train_bn=True))
    assert _trainable_names(backbone.model) == set(groups[-1]) - {"block4_conv1_act",
                                                                  "block4_conv2_act"}


def _moving_means(model):
    return [layer.moving_mean.numpy().copy() for layer in model.layers
            if isinstance(layer, keras.layers.BatchNormalization)]


def _one_step(model, phase_lr=1e-2):
    model.compile(keras.optimizers.SGD(phase_lr), "sparse_categorical_crossentropy")
    images = np.random.default_rng(0).uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    model.fit(images, np.arange(8) % 2, epochs=1, batch_size=8, verbose=0)


@pytest.mark.parametrize("train_bn", [False, True])
def test_bn_moving_statistics_move_only_with_train_bn(train_bn):
    backbone = resolve_backbone("kerastl_small", None, 32)
    resolved = ResolvedBackbone(backbone.model, backbone.meta, transferred=True)
    groups = layer_groups(resolved.model, get_spec("kerastl_small"))
    model = build_classifier(resolved, 2, train_bn=train_bn)
    apply_phase(resolved.model, groups, Phase(FINETUNE, 1, 1e-2, "all", train_bn=train_bn))
    before = _moving_means(resolved.model)
    _one_step(model)
    moved = [not np.allclose(a, b) for a, b in zip(before, _moving_means(resolved.model))]
    assert all(moved) if train_bn else not any(moved)


def test_gradual_unfreezing_opens_exactly_one_more_group_each_epoch(small):
    backbone, groups = small
    phases = plan_phases(Budget(1, 6, 1e-3, group_count=len(groups)),
                         recipe=FreezeThenUnfreeze(gradual=True))
    assert [p.name for p in phases] == [FROZEN, "unfreeze1", "unfreeze2", "unfreeze3",
                                        "unfreeze4", FINETUNE]
    assert [p.epochs for p in phases] == [1, 1, 1, 1, 1, 2]
    opened_before = set()
    for k, phase in enumerate(phases[1:5], start=1):
        opened = apply_phase(backbone.model, groups, phase)
        assert opened - opened_before == set(groups[-k])  # the next group down, alone
        assert opened_before < opened
        assert not any(layer.trainable for layer in backbone.model.layers
                       if isinstance(layer, keras.layers.BatchNormalization))
        opened_before = opened
    assert opened_before == {name for group in groups for name in group}


def test_fine_tune_recipe_is_one_cycle_with_rates_down_to_a_hundredth():
    frozen, finetune = plan_phases(Budget(1, 4, 2e-3, unfreeze="2blocks", group_count=4),
                                   recipe=make_recipe("fine_tune"))
    assert (frozen.epochs, frozen.schedule, frozen.unfreeze) == (1, "onecycle", "none")
    assert (finetune.unfreeze, finetune.schedule) == ("all", "onecycle")
    assert finetune.learning_rate == pytest.approx(1e-3)
    assert finetune.group_factor ** 4 == pytest.approx(100.0)
    assert isinstance(make_recipe("fine_tune"), FineTune)
    with pytest.raises(KerastlError, match="--recipe"):
        make_recipe("fit")
    with pytest.raises(KerastlError, match="--gradual"):  # they shape the default recipe only
        make_recipe("fine_tune", gradual=True)
