"""The DCGAN: train_step, FreezeD, DiffAugment, save/load, sampling commands, seeding D."""

from __future__ import annotations


import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from kerastl.errors import KerastlError
from tests.helpers.history import learning_curve


def tiny_gan(channels: int = 1, **options):
    import keras

    from kerastl.gan import DCGAN, build_discriminator, build_generator

    gan = DCGAN(build_generator(32, channels, latent_dim=16, width=8),
                build_discriminator(32, channels, width=8), **options)
    gan.compile(keras.optimizers.Adam(2e-4, beta_1=0.5), keras.optimizers.Adam(2e-4, beta_1=0.5))
    return gan


def real_batch(count: int = 16, channels: int = 1, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, (count, 32, 32, channels)).astype(np.float32)


def copy_weights(model) -> list[np.ndarray]:
    return [w.numpy().copy() for w in model.weights]


def changed(before, model) -> bool:
    return any(not np.allclose(a, b.numpy()) for a, b in zip(before, model.weights))


@pytest.mark.parametrize("loss", ["nonsaturating", "hinge"])
def test_one_train_step_changes_both_networks_with_finite_losses(loss):
    gan = tiny_gan(loss=loss, diffaugment="color,translation,cutout")
    generator, discriminator = copy_weights(gan.generator), copy_weights(gan.discriminator)
    logs = gan.train_on_batch(real_batch(), return_dict=True)
    assert changed(generator, gan.generator) and changed(discriminator, gan.discriminator)
    assert set(logs) == {"d_loss", "g_loss", "d_real", "d_fake"}
    assert all(np.isfinite(value) for value in logs.values())


def test_latents_can_be_fed_as_data_for_repeatable_steps():
    import keras

    latents = np.random.default_rng(1).standard_normal((16, 16)).astype(np.float32)
    results = []
    for _ in range(2):
        keras.utils.set_random_seed(0)
        gan = tiny_gan(ema_decay=0)
        gan.train_on_batch(real_batch(), latents, return_dict=True)
        results.append(gan.generator.get_weights()[0])
    np.testing.assert_allclose(results[0], results[1])


def test_frozen_discriminator_blocks_do_not_change_while_the_rest_trains():
    from kerastl.gan.networks import freeze_blocks

    gan = tiny_gan()
    frozen = freeze_blocks(gan.discriminator, 2)
    assert frozen == ["block1", "block2"]
    gan.compile("adam", "adam")  # rebuild the optimizers on what still trains
    layers = {layer.name: layer for layer in gan.discriminator.layers}
    before = {name: [w.numpy().copy() for w in layer.weights] for name, layer in layers.items()
              if name.split("_")[0] in frozen and layer.weights}
    top = [w.numpy().copy() for w in layers["block3_conv2"].weights]
    for seed in range(3):
        gan.train_on_batch(real_batch(seed=seed))
    for name, weights in before.items():
        for old, new in zip(weights, layers[name].weights):
            np.testing.assert_array_equal(old, new.numpy())
    assert not np.allclose(top[0], layers["block3_conv2"].weights[0].numpy())
    with pytest.raises(KerastlError, match="3 blocks"):
        freeze_blocks(gan.discriminator, 4)


def test_save_and_load_reproduce_samples_and_optimizer_state(tmp_path):
    import keras

    gan = tiny_gan()
    for seed in range(2):
        gan.train_on_batch(real_batch(seed=seed))
    expected = gan.sample(8, seed=3)
    gan.save(tmp_path / "gan.keras")
    loaded = keras.models.load_model(tmp_path / "gan.keras")
    np.testing.assert_array_equal(loaded.sample(8, seed=3), expected)
    assert int(loaded.d_optimizer.iterations.numpy()) == 2
    assert int(loaded.g_optimizer.iterations.numpy()) == 2
    for saved, restored in zip(gan.d_optimizer.variables, loaded.d_optimizer.variables):
        np.testing.assert_allclose(saved.numpy(), restored.numpy())
    loaded.train_on_batch(real_batch(seed=5))  # and training goes on from there
    assert int(loaded.d_optimizer.iterations.numpy()) == 3


def test_ema_generator_is_what_samples_and_lags_the_generator():
    gan = tiny_gan(ema_decay=0.999)
    for seed in range(3):
        gan.train_on_batch(real_batch(seed=seed))
    latents = gan.latents(4, seed=0)
    ema = gan.ema_generator.predict(latents, verbose=0)
    raw = gan.generator.predict(latents, verbose=0)
    assert not np.allclose(ema, raw)
    np.testing.assert_array_equal(gan.generate(latents), np.clip(
        (ema + 1) * 127.5, 0, 255).round().astype(np.uint8))


def test_mixed_float16_wraps_both_optimizers_and_trains():
    import keras

    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        gan = tiny_gan()
        assert isinstance(gan.d_optimizer, keras.optimizers.LossScaleOptimizer)
        logs = gan.train_on_batch(real_batch(), return_dict=True)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert all(np.isfinite(value) for value in logs.values())


def test_diffaugment_keeps_shape_passes_gradients_and_cuts_out():
    import tensorflow as tf

    from kerastl.gan.diffaugment import diff_augment, parse_policy

    images = tf.Variable(tf.ones((4, 32, 32, 3)))
    with tf.GradientTape() as tape:
        out = diff_augment(images, parse_policy("color,translation,cutout"))
        total = tf.reduce_sum(out)
    assert out.shape == images.shape
    assert tape.gradient(total, images) is not None
    cut = diff_augment(tf.ones((4, 32, 32, 1)), ("cutout",)).numpy()
    zero_share = (cut == 0).mean(axis=(1, 2, 3))
    assert np.all((zero_share > 0.05) & (zero_share <= 0.25 + 1e-6))
    with pytest.raises(KerastlError, match="policies"):
        parse_policy("colour")


def test_diffaugment_probability_0_passes_images_and_1_augments_each():
    import tensorflow as tf

    from kerastl.gan.diffaugment import diff_augment

    images = tf.ones((8, 32, 32, 1))
    untouched = diff_augment(images, ("cutout",), seed=1, probability=tf.constant(0.0))
    np.testing.assert_array_equal(untouched.numpy(), images.numpy())
    cut = diff_augment(images, ("cutout",), seed=1, probability=tf.constant(1.0)).numpy()
    assert np.all((cut == 0).mean(axis=(1, 2, 3)) > 0.05)


@pytest.mark.parametrize("bias, expected_accuracy", [(50.0, 1.0), (-50.0, 0.0)])
def test_ada_raises_the_augment_probability_only_while_d_wins_on_real_images(
        bias, expected_accuracy):
    from kerastl.gan.dcgan import ADA_IMAGES

    gan = tiny_gan(diffaugment="color,translation,cutout", ada_target=0.6)
    logit = gan.discriminator.get_layer("logit")
    kernel, _ = logit.get_weights()
    logit.set_weights([np.zeros_like(kernel), np.array([bias], np.float32)])
    logs = gan.train_on_batch(real_batch(16), return_dict=True)
    step = (expected_accuracy - 0.6) * 16 / ADA_IMAGES
    assert float(gan.augment_p.numpy()) == pytest.approx(max(step, 0.0), abs=1e-6)
    assert "augment_p" in logs


def test_an_adaptive_gan_saves_its_augment_probability(tmp_path):
    import keras

    from kerastl.gan import DCGAN

    gan = tiny_gan(diffaugment="cutout", ada_target=0.8)
    gan.augment_p.assign(0.37)
    gan.save(tmp_path / "gan.keras")
    loaded = keras.models.load_model(tmp_path / "gan.keras", custom_objects={"DCGAN": DCGAN})
    assert loaded.ada_target == 0.8
    assert float(loaded.augment_p.numpy()) == pytest.approx(0.37)
    assert tiny_gan(diffaugment="cutout").augment_p is None  # plain DiffAugment: no variable


def test_discriminator_blocks_seeded_from_a_small_backbone_classifier(trained_run):
    import keras

    from kerastl.gan import build_discriminator
    from kerastl.blocks import seed_from_backbone

    backbone = keras.models.load_model(trained_run / "model.keras").get_layer("backbone")
    discriminator = build_discriminator(32, channels=1, width=16)
    copied = seed_from_backbone(discriminator, backbone)
    assert "block1_conv1" in copied and "block3_conv2_bn" in copied
    kernel = discriminator.get_layer("block1_conv1").get_weights()[0]
    source = backbone.get_layer("block1_conv1").get_weights()[0]
    np.testing.assert_allclose(kernel, source.sum(axis=2, keepdims=True), rtol=1e-6)
    np.testing.assert_array_equal(discriminator.get_layer("block2_conv2").get_weights()[0],
                                  backbone.get_layer("block2_conv2").get_weights()[0])


def test_a_small_folders_gan_epoch_still_shows_min_epoch_images():
    from kerastl.gan.config import GanConfig
    from kerastl.gan.train import _steps_per_epoch

    config = GanConfig(data="x", batch_size=64, min_epoch_images=10_000)
    assert _steps_per_epoch(config, 2_459) == 157  # 38 steps a pass: 10,000 images instead
    assert _steps_per_epoch(config, 20_000) is None  # a pass is long enough: one pass
    assert _steps_per_epoch(GanConfig(data="x", min_epoch_images=0), 100) is None
    assert _steps_per_epoch(GanConfig(data="x", steps_per_epoch=7), 100) == 7


def test_gan_run_directory(gan_run):
    import json

    config = json.loads((gan_run / "config.json").read_text())
    assert config["channels"] == 1 and config["image_size"] == 32
    assert (gan_run / "plots" / "samples_epoch_001.png").exists()
    assert (gan_run / "plots" / "samples_epoch_002.png").exists()
    assert (gan_run / "plots" / "samples_final.png").exists()
    import csv

    rows = list(csv.DictReader((gan_run / "history.csv").open()))
    assert len(rows) == 2
    # the defaults: adaptive augmentation, and the diversity that watches for collapse
    assert 0.0 <= float(rows[-1]["augment_p"]) <= 1.0
    assert float(rows[-1]["diversity"]) > 0.0


def test_gan_finetune_with_freeze_d_keeps_the_frozen_blocks(gan_run, tmp_path):
    from kerastl.gan.train import finetune_gan, load_gan

    source = load_gan(gan_run).discriminator.get_layer("block1_conv1").get_weights()[0]
    result = finetune_gan(gan_run, "sample", classes="9", limit=40, freeze_d=1, epochs=1,
                          batch_size=8, min_epoch_images=0, runs_dir=str(tmp_path),
                          name="adapted", verbose=0)
    adapted = result.gan.discriminator
    np.testing.assert_array_equal(adapted.get_layer("block1_conv1").get_weights()[0], source)
    assert result.gan.policy == ("color", "translation", "cutout")  # auto: every policy
    assert result.gan.augment_p is not None  # applied adaptively


def test_cli_sample_and_interpolate_write_pngs_of_the_expected_size(gan_run, tmp_path):
    from kerastl_cli.main import cli

    runner = CliRunner()
    grid = runner.invoke(cli, ["gan", "sample", str(gan_run), "--n", "9", "--out",
                               str(tmp_path / "grid.png")])
    assert grid.exit_code == 0, grid.output
    assert Image.open(tmp_path / "grid.png").size == (3 * 64, 3 * 64)
    files = runner.invoke(cli, ["gan", "sample", str(gan_run), "--n", "3", "--separate",
                                "--out", str(tmp_path / "each")])
    assert files.exit_code == 0, files.output
    assert sorted(p.name for p in (tmp_path / "each").iterdir()) == [
        "sample_0000.png", "sample_0001.png", "sample_0002.png"]
    assert Image.open(tmp_path / "each" / "sample_0000.png").size == (32, 32)
    walk = runner.invoke(cli, ["gan", "interpolate", str(gan_run), "--steps", "5", "--rows",
                               "2", "--out", str(tmp_path / "walk.png")])
    assert walk.exit_code == 0, walk.output
    assert Image.open(tmp_path / "walk.png").size == (5 * 64, 2 * 64)
    again = runner.invoke(cli, ["gan", "interpolate", str(gan_run), "--out",
                                str(tmp_path / "walk.png")])
    assert again.exit_code == 1 and "exists" in again.output


def test_gan_evaluate_with_a_domain_extractor(gan_run, trained_run):
    from kerastl.gan.sampling import evaluate

    scores = evaluate(gan_run, "sample", count=40, extractor=str(trained_run))
    assert scores["fid"] > 0 and np.isfinite(scores["kid"])
    assert scores["n_real"] == scores["n_fake"] == 40


def test_slerp_ends_at_both_points():
    from kerastl.latents import slerp

    a, b = np.array([1.0, 0.0]), np.array([0.0, 2.0])
    path = slerp(a, b, 5)
    np.testing.assert_allclose(path[0], a, atol=1e-6)
    np.testing.assert_allclose(path[-1], b, atol=1e-6)


def test_gan_resume_continues_from_the_saved_epoch_and_optimizer_state(tmp_path):
    import csv

    from click.testing import CliRunner

    from kerastl.gan.train import load_gan, train_gan
    from kerastl_cli.main import cli

    result = train_gan("sample", image_size=32, width=8, latent_dim=16, epochs=1,
                       steps_per_epoch=2, batch_size=16, runs_dir=str(tmp_path), name="g",
                       verbose=0)
    assert int(load_gan(result.run_dir).d_optimizer.iterations.numpy()) == 2
    resumed = CliRunner().invoke(cli, ["gan", "resume", str(result.run_dir), "--epochs", "2"])
    assert resumed.exit_code == 0, resumed.output
    assert int(load_gan(result.run_dir).d_optimizer.iterations.numpy()) == 4  # 2 + 2 steps
    with (result.run_dir / "history.csv").open() as handle:
        assert [int(float(row["epoch"])) for row in csv.DictReader(handle)] == [0, 1]
    assert (result.run_dir / "plots" / "samples_epoch_002.png").exists()
    again = CliRunner().invoke(cli, ["gan", "resume", str(result.run_dir)])
    assert again.exit_code == 1 and "finished already" in again.output


def test_the_seed_repeats_a_gan_run_with_diffaugment_and_another_seed_changes_it(tmp_path):
    from kerastl.gan.train import train_gan

    def run(seed, name):
        result = train_gan("sample", image_size=32, width=8, latent_dim=16, epochs=1,
                           steps_per_epoch=3, batch_size=16, limit=64, seed=seed,
                           runs_dir=str(tmp_path), name=name, verbose=0)
        assert result.gan.policy  # 64 images: DiffAugment is on
        return learning_curve(result.run_dir), result.gan.sample(8, seed=0)

    first, again, other = run(3, "a"), run(3, "b"), run(4, "c")
    assert first[0] == again[0]
    np.testing.assert_array_equal(first[1], again[1])
    assert first[0] != other[0]


def test_training_latents_and_diffaugment_draw_from_the_runs_seed():
    import keras

    from kerastl.gan.dcgan import DCGAN
    from kerastl.gan.diffaugment import diff_augment, parse_policy
    from kerastl.gan.networks import build_discriminator, build_generator

    generator, discriminator = build_generator(32, 1, 8, 8), build_discriminator(32, 1, 8)

    def draws(seed):
        gan = DCGAN(generator, discriminator, ema_decay=0, seed=seed)
        images = np.zeros((4, 32, 32, 1), np.float32)
        augmented = diff_augment(images, parse_policy("color,translation,cutout"),
                                 keras.random.SeedGenerator(seed))
        return np.asarray(gan._latents(4)), np.asarray(augmented)

    same, again, other = draws(3), draws(3), draws(4)
    for a, b, c in zip(same, again, other):
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, c)
