"""The class-conditional DCGAN: label wiring, projection discriminator, sampling by class, a
data folder of samples per class, class accuracy under a classifier, and clear refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from kerastl.errors import KerastlError
from tests.conftest import write_class_folder


@pytest.fixture(scope="module")
def conditional_gan_run(tmp_path_factory) -> Path:
    from kerastl.gan.train import train_gan

    folder = write_class_folder(tmp_path_factory.mktemp("cgan_data") / "images", per_class=12)
    result = train_gan(str(folder), image_size=32, width=8, latent_dim=16, epochs=1,
                       batch_size=8, conditional=True, min_epoch_images=0,
                       runs_dir=str(tmp_path_factory.mktemp("cgan")), name="cgan", verbose=0)
    return Path(result.run_dir)


def test_the_projection_discriminator_scores_one_image_differently_per_label():
    from kerastl.gan import build_discriminator

    discriminator = build_discriminator(32, 3, width=8, num_classes=3)
    image = np.random.default_rng(0).uniform(-1, 1, (1, 32, 32, 3)).astype(np.float32)
    logits = [float(discriminator([image, np.eye(3, dtype=np.float32)[[c]]],
                                  training=False)[0, 0]) for c in range(3)]
    assert len(set(np.round(logits, 5))) == 3
    embedding = discriminator.get_layer("class_embedding")
    embedding.set_weights([np.zeros_like(w) for w in embedding.get_weights()])
    flat = [float(discriminator([image, np.eye(3, dtype=np.float32)[[c]]],
                                training=False)[0, 0]) for c in range(3)]
    assert max(flat) - min(flat) < 1e-6  # with no embedding, the label has no say


def test_a_conditional_train_step_feeds_the_real_labels_to_both_networks():
    import keras
    import tensorflow as tf

    from kerastl.gan import DCGAN, build_discriminator, build_generator

    gan = DCGAN(build_generator(32, 1, latent_dim=8, width=8, num_classes=4),
                build_discriminator(32, 1, width=8, num_classes=4), diffaugment="")
    gan.compile(keras.optimizers.Adam(2e-4, beta_1=0.5), keras.optimizers.Adam(2e-4, beta_1=0.5))
    assert gan.num_classes == 4 and gan.latent_dim == 8
    seen = []
    gan._joined = lambda tensor, labels: seen.append(labels) or DCGAN._joined(tensor, labels)
    labels = np.eye(4, dtype=np.float32)[[3, 1, 0, 2, 3, 3, 1, 0]]
    images = np.random.default_rng(0).uniform(-1, 1, (8, 32, 32, 1)).astype(np.float32)
    logs = gan.train_step(((tf.constant(images), tf.constant(labels)),))
    # D on real, D on fake, G in D's step; G and D on its fake in G's step
    assert len(seen) == 5
    for fed in seen:
        np.testing.assert_array_equal(np.asarray(fed), labels)
    assert np.isfinite(float(logs["d_loss"])) and np.isfinite(float(logs["g_loss"]))


def test_conditional_batchnorm_scales_and_shifts_each_class_by_its_own_row():
    from kerastl.layers import ConditionalBatchNorm

    rng = np.random.default_rng(0)
    features = rng.normal(size=(6, 4, 4, 5)).astype(np.float32)
    classes = [0, 1, 2, 0, 1, 2]
    labels = np.eye(3, dtype=np.float32)[classes]
    layer = ConditionalBatchNorm(momentum=0.9)
    plain = np.asarray(layer([features, labels], training=False))  # gamma 1, beta 0
    np.testing.assert_allclose(plain, features / np.sqrt(1 + 1e-3), rtol=1e-5)
    gamma = rng.uniform(0.5, 2.0, (3, 5)).astype(np.float32)
    beta = rng.normal(size=(3, 5)).astype(np.float32)
    layer.gamma.assign(gamma)
    layer.beta.assign(beta)
    steered = np.asarray(layer([features, labels], training=False))
    expected = plain * gamma[classes][:, None, None, :] + beta[classes][:, None, None, :]
    np.testing.assert_allclose(steered, expected, rtol=1e-5, atol=1e-5)


def test_a_generator_step_trains_the_scale_and_offset_of_the_classes_in_its_batch_only():
    import keras
    import tensorflow as tf

    from kerastl.gan import DCGAN, build_discriminator, build_generator
    from kerastl.layers import ConditionalBatchNorm

    generator = build_generator(32, 1, latent_dim=8, width=8, num_classes=3)
    norms = [layer for layer in generator.layers if layer.name.endswith("_bn")]
    assert len(norms) == 4 and all(isinstance(n, ConditionalBatchNorm) for n in norms)
    gan = DCGAN(generator, build_discriminator(32, 1, width=8, num_classes=3), diffaugment="")
    gan.compile(keras.optimizers.Adam(1e-2, beta_1=0.5), keras.optimizers.Adam(1e-2, beta_1=0.5))
    before = [np.asarray(n.gamma).copy() for n in norms]
    labels = np.eye(3, dtype=np.float32)[[0, 1, 0, 1]]  # no class 2 in this batch
    images = np.random.default_rng(0).uniform(-1, 1, (4, 32, 32, 1)).astype(np.float32)
    gan.train_step(((tf.constant(images), tf.constant(labels)),))
    for norm, old in zip(norms, before):
        new = np.asarray(norm.gamma)
        assert not np.allclose(new[:2], old[:2])  # classes 0 and 1 moved
        np.testing.assert_array_equal(new[2], old[2])  # class 2 untouched


def test_a_conditional_sample_of_class_c_feeds_label_c(conditional_gan_run, tmp_path):
    from kerastl.gan.dcgan import load_gan
    from kerastl_cli.main import cli

    config = json.loads((conditional_gan_run / "config.json").read_text())
    assert config["class_names"] == ["blue", "green", "red"]
    gan = load_gan(conditional_gan_run)
    fed, sampler = [], gan.ema_generator
    gan.ema_generator = lambda inputs, training=False: fed.append(np.asarray(inputs[1])) or \
        sampler(inputs, training=training)
    gan.sample(4, seed=0, labels=[2, 2, 2, 2])
    np.testing.assert_array_equal(fed[-1], np.tile([0.0, 0.0, 1.0], (4, 1)))
    gan.ema_generator = sampler

    runner = CliRunner()
    result = runner.invoke(cli, ["gan", "sample", str(conditional_gan_run), "--class", "red",
                                 "--n", "4", "--separate", "--out", str(tmp_path / "red")])
    assert result.exit_code == 0, result.output
    from PIL import Image

    written = np.stack([np.asarray(Image.open(p)) for p in sorted((tmp_path / "red").glob(
        "*.png"))])
    np.testing.assert_array_equal(written, gan.sample(4, seed=0, labels=[2] * 4))
    folders = runner.invoke(cli, ["gan", "sample", str(conditional_gan_run), "--per-class",
                                  "3", "--out", str(tmp_path / "samples")])
    assert folders.exit_code == 0, folders.output
    import kerastl

    data = kerastl.load_data(str(tmp_path / "samples"), 32, val_fraction=0.0)
    assert data.class_names == ["blue", "green", "red"]
    assert len(data.train) + len(data.test or []) == 9


def test_a_conditional_gan_reports_class_accuracy_under_a_classifier(conditional_gan_run,
                                                                      trained_run):
    from kerastl.gan.sampling import evaluate

    accuracy = evaluate(conditional_gan_run, None, classifier=str(trained_run))["class_accuracy"]
    assert set(accuracy["per_class"]) == {"blue", "green", "red"}
    assert accuracy["mean"] == pytest.approx(np.mean(list(accuracy["per_class"].values())),
                                             abs=1e-3)


def test_conditional_refusals_are_one_clear_line(conditional_gan_run, gan_run, tmp_path):
    from kerastl.gan.sampling import evaluate, sample, sample_folders
    from kerastl.gan.train import finetune_gan

    with pytest.raises(KerastlError, match="no class 'purple'"):
        sample(conditional_gan_run, 4, tmp_path / "x.png", class_name="purple")
    with pytest.raises(KerastlError, match="not conditional"):
        sample(gan_run, 4, tmp_path / "y.png", class_name="red")
    with pytest.raises(KerastlError, match="not conditional"):
        sample_folders(gan_run, 2, tmp_path / "folders")
    with pytest.raises(KerastlError, match="nothing to evaluate"):
        evaluate(conditional_gan_run, None)
    two_classes = write_class_folder(tmp_path / "two", per_class=8, classes=("red", "blue"))
    with pytest.raises(KerastlError, match="3 classes"):
        finetune_gan(conditional_gan_run, str(two_classes), epochs=1, batch_size=8,
                     runs_dir=str(tmp_path / "runs"), verbose=0)
    assert not any(tmp_path.glob("*.png")) and not (tmp_path / "folders").exists()
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("format", ["savedmodel", "tflite"])
def test_a_conditional_gan_exports_with_labels_in(conditional_gan_run, format, tmp_path):
    from kerastl.export.exporter import export_model

    exported = export_model(conditional_gan_run, format, out=tmp_path / "exports", name="cgan")
    assert exported.report["max_abs_diff_0_255"] <= 1
    if format == "savedmodel":
        import tensorflow as tf

        from kerastl.gan.dcgan import load_gan

        serve = tf.saved_model.load(str(exported.path)).signatures["serving_default"]
        gan = load_gan(conditional_gan_run)
        latents = gan.latents(2, seed=3)
        for label in (0, 2):  # the label given is the class made
            images = serve(latents=tf.constant(latents),
                           labels=tf.constant([label] * 2, tf.int32))["images"].numpy()
            expected = gan.generate(latents, [label] * 2).astype(int)
            assert np.abs(images.astype(int) - expected).max() <= 1
