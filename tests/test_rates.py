"""Per-group learning rates under Adam/AdamW, schedules within a phase, precision and XLA."""

from __future__ import annotations

import numpy as np
import pytest

from kerastl.compute import normalise_jit, use_xla
from kerastl.errors import KerastlError
from kerastl.transfer.rates import GroupedAdam, GroupedAdamW, make_schedule
from kerastl.transfer.recipes import discriminative_factors, factor_for_ratio


def toy_model():
    import keras

    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="low"),
                             keras.layers.Dense(3, name="mid"), keras.layers.Dense(1, name="top")])


@pytest.mark.parametrize("optimizer_class", [GroupedAdam, GroupedAdamW])
def test_one_adam_step_moves_each_group_by_its_own_rate(optimizer_class):
    """Adam's first step moves every weight by about lr (m / sqrt(v) = sign(g)): a group's
    step is its own rate, which scaling gradients could not do."""
    model = toy_model()
    factors = {"low": 0.01, "mid": 0.1}
    options = {"weight_decay": 0.0} if optimizer_class is GroupedAdamW else {}
    model.compile(optimizer_class(0.05, rate_factors=factors, **options), "mse")
    before = {v.path: v.numpy().copy() for v in model.trainable_variables}
    rng = np.random.default_rng(0)
    model.train_on_batch(rng.normal(size=(8, 4)), rng.normal(size=(8, 1)) * 10)
    for variable in model.trainable_variables:
        step = np.abs(variable.numpy() - before[variable.path])
        layer = variable.path.split("/")[-2]
        expected = 0.05 * factors.get(layer, 1.0)
        moved = step[step > 0]
        np.testing.assert_allclose(moved, expected, rtol=1e-3)


def test_grouped_optimizer_round_trips_through_a_saved_model(tmp_path):
    import keras

    model = toy_model()
    model.compile(GroupedAdam(0.01, rate_factors={"low": 0.25}), "mse")
    model.train_on_batch(np.ones((2, 4)), np.ones((2, 1)))
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert isinstance(loaded.optimizer, GroupedAdam)
    assert loaded.optimizer.rate_factors == {"low": 0.25}
    loaded.train_on_batch(np.ones((2, 4)), np.ones((2, 1)))


def test_discriminative_factors_fall_by_the_group_factor_from_the_top():
    groups = [["a1", "a2"], ["b1"], ["c1"]]
    factors = discriminative_factors(groups, 2.0)
    assert factors == {"c1": 0.5, "b1": 0.25, "a1": 0.125, "a2": 0.125}
    only_top_two = discriminative_factors(groups, 2.0, opened={"b1", "c1"})
    assert only_top_two == {"c1": 0.5, "b1": 0.25}
    assert factor_for_ratio(100.0, 2) == pytest.approx(10.0)


def test_cosine_warms_up_then_decays_and_onecycle_peaks_at_the_rate():
    cosine = make_schedule("cosine", 0.1, 100)
    values = [float(cosine(step)) for step in range(100)]
    peak = int(np.argmax(values))
    assert values[0] == 0.0 and peak == 10 and values[peak] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(values[peak:], values[peak + 1:]))
    onecycle = make_schedule("onecycle", 0.1, 100)
    cycle = [float(onecycle(step)) for step in range(100)]
    assert cycle[0] == pytest.approx(0.1 / 25) and max(cycle) == pytest.approx(0.1, rel=1e-3)
    assert cycle[-1] < 0.1 / 1000
    assert make_schedule("constant", 0.1, 100) == 0.1
    with pytest.raises(KerastlError, match="--schedule"):
        make_schedule("linear", 0.1, 10)


def test_jit_auto_is_on_with_an_accelerator_and_off_on_this_cpu():
    assert use_xla("auto", accelerator=True) is True
    assert use_xla("auto", accelerator=False) is False
    assert use_xla("auto") is False  # this machine has no GPU or TPU
    assert use_xla("on", accelerator=False) is True and use_xla(False, accelerator=True) is False
    assert normalise_jit(True) == "on"
    with pytest.raises(KerastlError):
        normalise_jit("sometimes")


def test_mixed_bfloat16_trains_with_finite_loss_and_float32_accuracy(session_folder, tmp_path):
    import keras

    import kerastl

    results = {}
    for precision in ("float32", "mixed_bfloat16"):
        result = kerastl.finetune(str(session_folder), backbone="kerastl_small", weights="none",
                                  image_size=32, frozen_epochs=0, finetune_epochs=3,
                                  batch_size=8, lr=3e-3, augment="none", precision=precision,
                                  runs_dir=str(tmp_path), name=precision, verbose=0)
        results[precision] = result
    assert keras.mixed_precision.global_policy().name == "float32"  # restored after the run
    mixed = results["mixed_bfloat16"]
    assert all(np.isfinite(row["loss"]) for row in mixed.history)
    assert mixed.model.get_layer("predictions").dtype_policy.name == "float32"
    gap = abs(mixed.metrics["val"]["accuracy"] - results["float32"].metrics["val"]["accuracy"])
    assert gap <= 0.2


def test_lr_finder_suggests_a_rate_in_the_sweep_and_leaves_the_weights(session_folder):
    from kerastl.data import load_data
    from kerastl.data.pipeline import make_dataset
    from kerastl.transfer.lr_find import sweep
    from kerastl.transfer.model import build_classifier, resolve_backbone

    backbone = resolve_backbone("kerastl_small", "none", 32)
    bundle = load_data(str(session_folder), 32)
    model = build_classifier(backbone, bundle.num_classes)
    before = [w.numpy().copy() for w in model.weights]
    batches = iter(make_dataset(bundle.train, 8, training=True, augment="none").repeat())
    result = sweep(model, batches, steps=40, start=1e-6, end=10.0)
    assert 1e-6 <= result.suggestion <= 10.0
    assert result.rates == sorted(result.rates) and len(result.rates) == len(result.losses)
    assert result.rates[0] == pytest.approx(1e-6, rel=1e-6)
    assert result.rates[1] / result.rates[0] == pytest.approx(10 ** (7 / 39), rel=1e-6)
    for old, new in zip(before, model.weights):
        np.testing.assert_array_equal(old, new.numpy())


def test_lr_find_cli_writes_a_plot(session_folder, tmp_path):
    from click.testing import CliRunner

    from kerastl_cli.main import cli

    out = CliRunner().invoke(cli, ["lr-find", str(session_folder), "--backbone",
                                   "kerastl_small", "--weights", "none", "--image-size", "32",
                                   "--steps", "20", "--batch-size", "8", "--plot",
                                   str(tmp_path / "sweep.png")])
    assert out.exit_code == 0, out.output
    assert "Suggested --lr" in out.output and (tmp_path / "sweep.png").stat().st_size > 0


def test_backbone_rate_ramps_from_a_tenth_by_half_each_epoch_up_to_the_head_rate():
    """Lightning's BackboneFinetuning: the recipe's epoch hook sets each epoch's factor before
    it runs, the head keeps its rate, and the factor stops at 1."""
    import keras

    from kerastl.transfer.rates import RecipeEpochs
    from kerastl.transfer.recipes import Budget, make_recipe, plan_phases

    recipe = make_recipe("backbone_finetuning")
    frozen, finetune = plan_phases(Budget(2, 7, 1e-3, schedule="constant"), recipe=recipe)
    assert (frozen.epochs, frozen.unfreeze, finetune.unfreeze) == (2, "none", "all")
    assert finetune.learning_rate == 1e-3
    opened, groups = {"low", "mid"}, [["low"], ["mid"]]
    assert recipe.rate_factors(groups, frozen, set(), 0) is None  # nothing open, one rate
    model = toy_model()
    optimizer = GroupedAdam(1e-3, rate_factors=recipe.rate_factors(groups, finetune, opened, 0))
    model.compile(optimizer, "mse")
    seen = []
    record = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(
        optimizer._factor_values.numpy().copy()))
    rng = np.random.default_rng(0)
    model.fit(rng.normal(size=(8, 4)), rng.normal(size=(8, 1)), epochs=2 + 7, initial_epoch=2,
              verbose=0, callbacks=[RecipeEpochs(recipe, optimizer, groups, finetune, opened, 2),
                                    record])
    paths = [v.path for v in model.trainable_variables]
    low = next(i for i, p in enumerate(paths) if "low" in p)
    top = next(i for i, p in enumerate(paths) if "top" in p)
    expected = [min(1.0, 0.1 * 1.5 ** k) for k in range(7)]
    np.testing.assert_allclose([factors[low] for factors in seen], expected, rtol=1e-6)
    assert expected[-1] == 1.0 and all(factors[top] == 1.0 for factors in seen)
