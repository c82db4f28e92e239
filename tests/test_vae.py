"""The VAE: its loss, bounds, training on the engine, latent editing, CLI and bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from kerastl_cli.main import cli
from tests.conftest import write_class_folder


def tiny_vae(size=28, channels=1, latent=3, likelihood="bernoulli", sigma=None, seed=0):
    import keras

    from kerastl.vae import VAE, build_decoder, build_encoder

    keras.utils.set_random_seed(seed)
    vae = VAE(build_encoder(size, channels, latent, 8), build_decoder(size, channels, latent, 8),
              likelihood=likelihood, sigma=sigma, seed=seed)
    vae.compile(keras.optimizers.Adam(3e-3))
    return vae


def blobs(count=16, size=28, channels=1, seed=0) -> np.ndarray:
    """Images in [0, 1]: a bright square at a random place on a dark field."""
    rng = np.random.default_rng(seed)
    images = np.zeros((count, size, size, channels), np.float32)
    for image in images:
        y, x = rng.integers(0, size - 8, 2)
        image[y:y + 8, x:x + 8] = 1.0
    return images


@pytest.fixture(scope="module")
def colour_folder(tmp_path_factory) -> Path:
    return write_class_folder(tmp_path_factory.mktemp("vae_data") / "images", per_class=12)


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory, colour_folder) -> Path:
    from kerastl.vae import train_vae

    result = train_vae(str(colour_folder), image_size=32, latent_dim=4, width=8, epochs=3,
                       batch_size=8, kl_warmup=2, runs_dir=str(tmp_path_factory.mktemp("r")),
                       name="vae", verbose=0)
    return Path(result.run_dir)


@pytest.mark.parametrize("likelihood,sigma", [("bernoulli", None), ("gaussian", None),
                                              ("gaussian", 0.2)])
def test_the_loss_falls_over_a_few_steps_on_a_fixed_batch(likelihood, sigma):
    vae = tiny_vae(likelihood=likelihood, sigma=sigma)
    batch = blobs()
    losses = [float(vae.train_on_batch(batch, return_dict=True)["loss"]) for _ in range(15)]
    assert all(math.isfinite(v) for v in losses)
    assert np.mean(losses[-3:]) < np.mean(losses[:3])


def test_the_loss_is_the_negative_elbo_computed_by_hand():
    """Bernoulli NLL summed over pixels plus the closed-form Gaussian KL, averaged."""
    import tensorflow as tf

    vae = tiny_vae()
    images = blobs(4)
    logits = np.random.default_rng(1).normal(size=images.shape).astype(np.float32)
    z_mean = np.array([[0.5, -1.0, 0.0]] * 4, np.float32)
    z_log_var = np.array([[0.0, np.log(4.0), -1.0]] * 4, np.float32)
    loss = float(vae.compute_loss(x=images, y_pred={"logits": logits, "z_mean": z_mean,
                                                     "z_log_var": z_log_var}))
    p = 1 / (1 + np.exp(-logits.astype(np.float64)))
    nll = -np.sum(images * np.log(p) + (1 - images) * np.log(1 - p), axis=(1, 2, 3))
    variance = np.exp(z_log_var.astype(np.float64))
    kl = 0.5 * np.sum(variance + z_mean ** 2 - 1 - np.log(variance), axis=1)
    assert kl[0] == pytest.approx(0.5 * (1 + 0.25 - 1) + 0.5 * (4 + 1 - 1 - np.log(4)) +
                                  0.5 * (np.exp(-1) - 1 + 1), rel=1e-6)
    assert loss == pytest.approx(float(np.mean(nll + kl)), rel=1e-4)
    # a fixed-scale Gaussian: 0.5 ((x - mu) / sigma)^2 + log sigma + log(2 pi) / 2 per pixel
    gaussian = tiny_vae(likelihood="gaussian", sigma=0.5)
    mu = p
    expected = np.sum(0.5 * ((images - mu) / 0.5) ** 2 + np.log(0.5) + 0.5 * np.log(2 * np.pi),
                      axis=(1, 2, 3))
    got = np.asarray(gaussian.negative_log_likelihood(tf.constant(images), logits))
    np.testing.assert_allclose(got, expected, rtol=1e-4)


def test_the_iwae_bound_is_tighter_than_the_elbo():
    from kerastl.vae.evaluate import iwae_bound, negative_elbo

    vae = tiny_vae()
    for _ in range(20):
        vae.train_on_batch(blobs(), return_dict=True)
    images = (blobs(8, seed=3) * 255).astype(np.uint8)
    rng = np.random.default_rng(0)
    elbo = np.mean([np.sum(negative_elbo(vae, images, rng), axis=0) for _ in range(32)], axis=0)
    iwae = iwae_bound(vae, images, 64, rng)
    assert np.all(np.isfinite(iwae))
    assert np.mean(iwae) < np.mean(elbo)
    assert np.mean(iwae_bound(vae, images, 1, rng)) == pytest.approx(np.mean(elbo), rel=0.05)


def test_save_and_load_give_the_same_outputs_and_optimizer_state(tmp_path):
    import keras

    vae = tiny_vae(likelihood="gaussian")
    for _ in range(3):
        vae.train_on_batch(blobs(), return_dict=True)
    vae.save(tmp_path / "vae.keras")
    loaded = keras.models.load_model(tmp_path / "vae.keras")
    images = (blobs(4, seed=5) * 255).astype(np.uint8)
    np.testing.assert_array_equal(loaded.reconstruct(images), vae.reconstruct(images))
    np.testing.assert_array_equal(loaded.sample(4, seed=1), vae.sample(4, seed=1))
    assert float(loaded.log_sigma) == pytest.approx(float(vae.log_sigma))
    assert int(loaded.optimizer.iterations) == 3
    for saved, kept in zip(loaded.optimizer.variables, vae.optimizer.variables):
        np.testing.assert_allclose(saved.numpy(), kept.numpy())


def test_kl_warmup_ramps_the_weight_from_the_epoch():
    from kerastl.vae.model import KLWarmup

    warmup = KLWarmup(beta=2.0, epochs=4)
    assert [warmup.weight(e) for e in range(6)] == [0.5, 1.0, 1.5, 2.0, 2.0, 2.0]
    assert KLWarmup(beta=1.0, epochs=0).weight(0) == 1.0


def test_a_vae_run_has_every_runs_files_and_picks_its_epoch_by_validation_elbo(vae_run):
    assert (vae_run / "run.log").exists()
    for name in ("config.json", "model.keras", "history.csv", "metrics.json",
                 "checkpoints/state.json", "plots/samples_final.png",
                 "plots/samples_epoch_003.png", "plots/reconstructions_epoch_003.png"):
        assert (vae_run / name).stat().st_size > 0, name
    metrics = json.loads((vae_run / "metrics.json").read_text())
    assert metrics["val"]["neg_elbo"] == pytest.approx(
        metrics["val"]["nll"] + metrics["val"]["kl"], abs=1e-3)
    import csv

    with (vae_run / "history.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    best = min(range(len(rows)), key=lambda i: (float(rows[i]["val_neg_elbo"]), -i))
    assert metrics["best_epoch"] == best + 1
    assert {"kl", "nll", "active_dims", "val_neg_elbo", "diversity"} <= set(rows[0])


def test_editing_by_amount_zero_is_the_reconstruction(vae_run, colour_folder, tmp_path):
    from kerastl.vae.latent import edit, read_images, reconstruct
    from kerastl.vae.train import load_vae

    files = sorted((colour_folder / "red").glob("*.png"))[:2]
    edit(vae_run, files, tmp_path / "edited", data=str(colour_folder), source_class="red",
         target_class="blue", amount=0.0)
    reconstruct(vae_run, files, tmp_path / "reconstructed")
    for f in files:
        edited = np.asarray(__import__("PIL.Image").Image.open(tmp_path / "edited" /
                                                                f"{f.stem}.png"))
        again = np.asarray(__import__("PIL.Image").Image.open(tmp_path / "reconstructed" /
                                                               f"{f.stem}.png"))
        np.testing.assert_array_equal(edited, again)
    vae = load_vae(vae_run)
    moved = edit(vae_run, files, tmp_path / "moved", data=str(colour_folder),
                 source_class="red", target_class="blue", amount=1.0)
    assert (tmp_path / "moved" / "before_after.png").exists() and len(moved) == 2
    assert read_images(vae, files).shape == (2, 32, 32, 3)


def test_the_cli_trains_samples_interpolates_and_evaluates(colour_folder, tmp_path):
    runner = CliRunner()
    train = runner.invoke(cli, ["-q", "vae", "train", str(colour_folder), "--image-size", "32",
                                "--latent-dim", "2", "--width", "8", "--epochs", "1",
                                "--batch-size", "8", "--runs-dir", str(tmp_path / "runs"),
                                "--name", "v"])
    assert train.exit_code == 0, train.output
    run = tmp_path / "runs" / "v"
    assert (run / "plots" / "latent_map.png").exists()  # a 2-D latent is mapped
    sample = runner.invoke(cli, ["vae", "sample", str(run), "--n", "9", "--out",
                                 str(tmp_path / "s.png")])
    assert sample.exit_code == 0, sample.output
    files = sorted((colour_folder / "green").glob("*.png"))[:2]
    walk = runner.invoke(cli, ["vae", "interpolate", str(run), *map(str, files), "--steps",
                               "5", "--out", str(tmp_path / "walk.png")])
    assert walk.exit_code == 0, walk.output
    from PIL import Image

    assert Image.open(tmp_path / "walk.png").size == (5 * 64, 64)
    score = runner.invoke(cli, ["vae", "evaluate", str(run), "--data", str(colour_folder),
                                "--iw-samples", "8"])
    assert score.exit_code == 0, score.output
    report = json.loads(score.output)
    assert report["iwae_8"] < report["neg_elbo"] + 1.0 and report["images"] == 36


def test_bad_input_is_one_line_and_writes_nothing(vae_run, gan_run, trained_run,
                                                  colour_folder, tmp_path):
    runner = CliRunner()
    out = tmp_path / "out"
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    good = str(next((colour_folder / "red").glob("*.png")))
    cases = {
        "a GAN run": (["vae", "reconstruct", str(gan_run), good, "--out", str(out)],
                      "which this VAE command does not take"),
        "a classifier run": (["vae", "sample", str(trained_run), "--out", str(out / "s.png")],
                             "which this VAE command does not take"),
        "an unknown class": (["vae", "edit", str(vae_run), good, "--data", str(colour_folder),
                              "--from", "red", "--to", "purple", "--out", str(out)],
                             "purple"),
        "an unreadable image": (["vae", "reconstruct", str(vae_run), str(broken), "--out",
                                 str(out)], "cannot be read as an image"),
        "no image": (["vae", "reconstruct", str(vae_run), "--out", str(out)], "Missing"),
    }
    for name, (args, words) in cases.items():
        result = runner.invoke(cli, args)
        assert result.exit_code != 0, name
        assert words in result.output, (name, result.output)
        assert "Traceback" not in result.output, name
        assert not out.exists(), name


def test_the_encoder_is_seeded_from_a_classifier_run_and_a_width_mismatch_names_the_width(
        trained_run, colour_folder, tmp_path):
    import keras

    from kerastl.errors import KerastlError
    from kerastl.vae import train_vae
    from kerastl.vae.model import load_vae

    settings = dict(image_size=32, latent_dim=4, epochs=1, batch_size=8, verbose=0,
                    encoder_from=str(trained_run), runs_dir=str(tmp_path))
    with pytest.raises(KerastlError, match=r"does not fit the encoder .*--width 16\)"):
        train_vae(str(colour_folder), width=8, name="mismatch", **settings)
    assert not (tmp_path / "mismatch").exists()
    result = train_vae(str(colour_folder), width=16, lr=1e-9, name="seeded", **settings)
    encoder = load_vae(result.run_dir).encoder
    backbone = keras.models.load_model(trained_run / "model.keras").get_layer("backbone")
    for name in ("block1_conv1", "block2_conv2"):  # a 1e-9 rate leaves them where they began
        np.testing.assert_allclose(encoder.get_layer(name).get_weights()[0],
                                   backbone.get_layer(name).get_weights()[0], atol=1e-6)


@pytest.mark.parametrize("format", ["savedmodel", "tflite"])
@pytest.mark.parametrize("model", ["vae", "gan"])
def test_export_of_a_generative_run_takes_latents_and_matches_keras(model, format, vae_run,
                                                                     gan_run, tmp_path):
    from kerastl.export.exporter import export_model

    run = vae_run if model == "vae" else gan_run
    result = export_model(run, format=format, out=tmp_path / "exports", name="gen")
    assert result.version == 1
    report = result.report
    assert report["max_abs_diff_0_255"] <= 1 and report["identical_pixels"] > 0.99, report
    assert report["size_bytes"] > 0 and report["latency_ms_per_image"]["export"] > 0
    if format == "savedmodel":
        import tensorflow as tf

        serve = tf.saved_model.load(str(result.path)).signatures["serving_default"]
        latents = np.zeros((2, serve.structured_input_signature[1]["latents"].shape[-1]),
                           np.float32)
        images = serve(latents=tf.constant(latents))["images"]
        assert images.dtype == tf.uint8 and images.shape[0] == 2


@pytest.fixture(scope="module")
def conditional_run(tmp_path_factory, colour_folder) -> Path:
    from kerastl.vae import train_vae

    result = train_vae(str(colour_folder), image_size=32, latent_dim=4, width=8, epochs=2,
                       batch_size=8, conditional=True,
                       runs_dir=str(tmp_path_factory.mktemp("c")), name="cvae", verbose=0)
    return Path(result.run_dir)


def test_a_conditional_sample_of_class_c_feeds_label_c(conditional_run, tmp_path):
    from kerastl.vae.latent import sample, sample_folders
    from kerastl.vae.model import load_vae

    config = json.loads((conditional_run / "config.json").read_text())
    assert config["class_names"] == ["blue", "green", "red"]
    vae = load_vae(conditional_run)
    assert vae.num_classes == 3
    fed, decoder = [], vae.decoder
    vae.decoder = lambda inputs, training=False: fed.append(np.asarray(inputs[1])) or \
        decoder(inputs, training=training)
    vae.sample(4, seed=0, labels=[2, 2, 2, 2])
    np.testing.assert_array_equal(fed[-1], np.tile([0.0, 0.0, 1.0], (4, 1)))
    vae.decoder = decoder
    one = vae.sample(2, seed=0, labels=[0, 0])
    assert not np.array_equal(one, vae.sample(2, seed=0, labels=[1, 1]))  # the label counts
    sample(conditional_run, 4, tmp_path / "green.png", class_name="green")
    counts = sample_folders(conditional_run, 3, tmp_path / "samples")
    assert counts == {"blue": 3, "green": 3, "red": 3}
    import kerastl

    data = kerastl.load_data(str(tmp_path / "samples"), 32, val_fraction=0.0)
    assert data.class_names == ["blue", "green", "red"] and len(data.train) + len(
        data.test or []) == 9


def test_a_conditional_edit_swaps_the_label_and_amount_zero_reconstructs(conditional_run,
                                                                       colour_folder, tmp_path):
    from PIL import Image

    from kerastl.errors import KerastlError
    from kerastl.vae.latent import edit, reconstruct

    files = sorted((colour_folder / "red").glob("*.png"))[:2]
    edit(conditional_run, files, tmp_path / "same", data=None, source_class="red",
         target_class="blue", amount=0.0)
    reconstruct(conditional_run, files, tmp_path / "recon", class_name="red")
    for f in files:
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "same" / f"{f.stem}.png")),
                                      np.asarray(Image.open(tmp_path / "recon" /
                                                            f"{f.stem}.png")))
    with pytest.raises(KerastlError, match="--class"):
        reconstruct(conditional_run, files, tmp_path / "none")
    assert not (tmp_path / "none").exists()


def test_a_conditional_run_evaluates_and_exports_with_labels(conditional_run, colour_folder,
                                                            trained_run, tmp_path):
    from kerastl.export.exporter import export_model
    from kerastl.vae.evaluate import evaluate_vae

    report = evaluate_vae(conditional_run, str(colour_folder), iw_samples=4,
                          classifier=str(trained_run))
    assert report["iwae_4"] <= report["neg_elbo"] + 1.0
    accuracy = report["class_accuracy"]
    assert set(accuracy["per_class"]) == {"blue", "green", "red"}
    assert accuracy["mean"] == pytest.approx(np.mean(list(accuracy["per_class"].values())),
                                             abs=1e-3)
    exported = export_model(conditional_run, out=tmp_path / "exports", name="cvae")
    assert exported.report["max_abs_diff_0_255"] <= 1
