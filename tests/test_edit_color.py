"""Colour editing: the adjustments, the colour metrics, training, full-resolution use, export."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from kerastl.edit import color_ops
from kerastl.edit.baseline import gray_world
from kerastl.errors import KerastlError
from kerastl.metrics.image_quality import ciede2000, psnr


def natural_image(seed: int, height: int = 48, width: int = 64) -> np.ndarray:
    """A smooth, mostly neutral scene: mean near mid-gray, a little colour, like a photo."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width] / max(height, width)
    light = 0.5 + 0.25 * np.sin(xx * rng.uniform(3, 9) + yy * rng.uniform(3, 9)
                                + rng.uniform(0, 6))
    tint = rng.normal(0, 0.08, 3) * np.cos(xx * 5 + yy * 3)[..., None]
    return (np.clip(light[..., None] + tint, 0, 1) * 255).astype(np.uint8)


def write_photos(folder: Path, count: int, start: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.fromarray(natural_image(start + i)).save(folder / f"photo_{i:02d}.png")
    return folder


@pytest.fixture(scope="module")
def color_run(tmp_path_factory) -> Path:
    """A colour model of the small backbone, trained from scratch on 40 generated photos."""
    from kerastl.edit.color_train import train_color

    root = tmp_path_factory.mktemp("color")
    result = train_color(str(write_photos(root / "photos", 40)), backbone="kerastl_small",
                         weights="none", image_size=32, frozen_epochs=0, finetune_epochs=5,
                         copies=32, lr=3e-3, runs_dir=str(root / "runs"), name="color",
                         verbose=0)
    return Path(result.run_dir)


# --- the adjustments --------------------------------------------------------------------

@pytest.mark.parametrize("index", range(len(color_ops.ADJUSTMENTS)))
@pytest.mark.parametrize("sign", [-1.0, 1.0])
def test_each_adjustment_is_undone_by_its_inverse_at_the_range_limits(index, sign):
    image = natural_image(3)[None].astype(np.float32) / 255.0
    params = np.zeros((1, len(color_ops.ADJUSTMENTS)), np.float32)
    params[0, index] = sign * color_ops.LIMITS[index]
    changed = np.asarray(color_ops.adjust(image, params))
    assert np.abs(changed - image).max() > 0.01  # the adjustment does something
    restored = np.asarray(color_ops.invert(changed, params))
    np.testing.assert_allclose(restored, image, atol=2e-4)


def test_all_adjustments_together_are_undone_for_random_parameters():
    images = np.stack([natural_image(s) for s in range(8)]).astype(np.float32) / 255.0
    params = color_ops.random_params(8, seed=1)
    restored = color_ops.invert(color_ops.adjust(images, params), params)
    np.testing.assert_allclose(np.asarray(restored), images, atol=5e-4)


def test_adjustments_move_the_image_the_documented_way():
    image = natural_image(5)[None].astype(np.float32) / 255.0

    def with_param(name, value):
        params = np.zeros((1, len(color_ops.ADJUSTMENTS)), np.float32)
        params[0, color_ops.NAMES.index(name)] = value
        return np.asarray(color_ops.adjust(image, params))[0]

    mean = image[0].reshape(-1, 3).mean(0)
    warm = with_param("temperature", 0.2).reshape(-1, 3).mean(0)
    assert warm[0] > mean[0] and warm[2] < mean[2]
    assert with_param("tint", 0.2)[..., 1].mean() > image[0][..., 1].mean()
    np.testing.assert_allclose(with_param("exposure", 1.0), image[0] * 2, rtol=1e-5)
    assert with_param("contrast", 0.4).std() > image.std()
    gray = with_param("saturation", -50.0)  # saturation e^-50: every pixel its luminance
    assert np.abs(gray - gray.mean(-1, keepdims=True)).max() < 1e-3
    assert with_param("gamma", 0.3).mean() < image.mean()


def test_degrade_clips_and_rounds_like_an_8bit_file():
    clean = natural_image(2)[None]
    params = np.zeros((1, 6), np.float32)
    params[0, color_ops.NAMES.index("exposure")] = 1.0
    degraded = np.asarray(color_ops.degrade(clean, params))
    assert degraded.max() == 255.0 and np.all(degraded == np.round(degraded))


# --- colour metrics ---------------------------------------------------------------------

# Sharma, Wu and Dalal (2005), "The CIEDE2000 color-difference formula", table 1.
SHARMA_PAIRS = [
    ((50.0, 2.6772, -79.7751), (50.0, 0.0, -82.7485), 2.0425),
    ((50.0, 0.0, 0.0), (50.0, -1.0, 2.0), 2.3669),
    ((50.0, 2.5, 0.0), (73.0, 25.0, -18.0), 27.1492),
    ((60.2574, -34.0099, 36.2677), (60.4626, -34.1751, 39.4387), 1.2644),
    ((22.7233, 20.0904, -46.6940), (23.0331, 14.9730, -42.5619), 2.0373),
]


def test_ciede2000_matches_sharmas_published_pairs():
    first = np.array([p[0] for p in SHARMA_PAIRS])
    second = np.array([p[1] for p in SHARMA_PAIRS])
    expected = np.array([p[2] for p in SHARMA_PAIRS])
    np.testing.assert_allclose(ciede2000(first, second), expected, atol=1e-4)
    np.testing.assert_allclose(ciede2000(second, first), expected, atol=1e-4)


def test_rgb_to_lab_of_white_and_red():
    from kerastl.colorspace import rgb_to_lab

    lab = np.asarray(rgb_to_lab(np.array([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]], np.float32)))
    np.testing.assert_allclose(lab[0], [100.0, 0.0, 0.0], atol=0.02)
    np.testing.assert_allclose(lab[1], [53.24, 80.09, 67.20], atol=0.05)


def test_psnr():
    image = np.full((4, 4, 3), 0.5)
    assert psnr(image, image) == float("inf")
    assert psnr(image, image + 0.1) == pytest.approx(20.0)


def test_gray_world_equalises_channel_means():
    cast = np.clip(natural_image(1) * np.array([1.2, 1.0, 0.7]), 0, 255).astype(np.uint8)
    means = gray_world(cast).reshape(-1, 3).mean(0)
    assert means.max() - means.min() < 1.5


# --- training and use -------------------------------------------------------------------

def test_a_model_trained_on_a_few_images_corrects_unseen_degraded_images(color_run):
    from kerastl.edit.color_apply import load_color_model
    from kerastl.edit.color_eval import evaluate_color

    model = load_color_model(color_run)
    unseen = [natural_image(seed) for seed in range(500, 516)]
    report = evaluate_color(model, unseen, seed=7)
    summary = report.summary
    assert summary["corrected"]["ciede2000"] < 0.8 * summary["degraded"]["ciede2000"]
    assert report.ciede2000_with(report.found) == pytest.approx(summary["corrected"]["ciede2000"])
    floor = report.ciede2000_with(report.applied)  # the parameters that degraded them
    assert floor < 0.5 * summary["corrected"]["ciede2000"]
    assert set(report.parameter_correlation()) == set(color_ops.NAMES)
    assert summary["corrected"]["psnr"] > summary["degraded"]["psnr"]
    metrics = json.loads((color_run / "metrics.json").read_text())
    assert metrics["val"]["corrected"]["ciede2000_reduction"] > 0
    assert (color_run / "plots" / "before_after.png").stat().st_size > 0
    assert json.loads((color_run / "config.json").read_text())["job"] == "edit-color"


def test_the_colour_run_records_the_rate_schedule_it_trained_with(color_run):
    import csv

    config = json.loads((color_run / "config.json").read_text())
    assert {phase["schedule"] for phase in config["phases"]} == {"constant"}
    with (color_run / "history.csv").open() as handle:
        rates = {float(row["learning_rate"]) for row in csv.DictReader(handle)}
    assert len(rates) == 1 and rates.pop() == pytest.approx(config["phases"][0]["learning_rate"])


def test_full_resolution_correction_keeps_size_format_and_exif(color_run, tmp_path):
    from kerastl.edit.color_apply import correct_files

    photo = Image.fromarray(natural_image(9, 300, 420))
    exif = Image.Exif()
    exif[0x010F] = "kerastl-test-camera"  # Make
    photo.save(tmp_path / "big.jpg", quality=92, exif=exif)
    done = correct_files(color_run, [tmp_path / "big.jpg"], tmp_path / "out")
    with Image.open(done[0].output) as result:
        assert result.size == (420, 300) and result.format == "JPEG"
        assert result.getexif()[0x010F] == "kerastl-test-camera"
    assert set(done[0].params) == set(color_ops.NAMES)
    with pytest.raises(KerastlError, match="exists"):
        correct_files(color_run, [tmp_path / "big.jpg"], tmp_path / "out")
    with pytest.raises(KerastlError, match="one of the inputs"):
        correct_files(color_run, [tmp_path / "big.jpg"], tmp_path, overwrite=True)


def test_strength_zero_leaves_the_pixels_and_alpha_as_they_were(color_run, tmp_path):
    from kerastl.edit.color_apply import correct_files

    rgba = np.dstack([natural_image(4), np.full((48, 64), 128, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    done = correct_files(color_run, [tmp_path / "a.png"], tmp_path / "out", strength=0.0)
    result = np.asarray(Image.open(done[0].output))
    assert result.shape == (48, 64, 4)
    assert np.abs(result.astype(int) - rgba.astype(int)).max() <= 1


def test_a_classifier_run_is_refused_as_a_colour_model(trained_run):
    from kerastl.edit.color_apply import load_color_model

    with pytest.raises(KerastlError, match="finetune run, which kerastl edit color does not"):
        load_color_model(trained_run)


def test_export_savedmodel_corrects_encoded_bytes_at_full_size(color_run, tmp_path):
    import tensorflow as tf

    from kerastl.export import export_model

    result = export_model(str(color_run), out=tmp_path / "saved")
    assert result.report["params_max_abs_diff"] < 1e-4
    assert result.report["end_to_end"]["same_shape"]
    assert result.report["end_to_end"]["mean_abs_diff_0_255"] < 1.0
    buffer = io.BytesIO()
    Image.fromarray(natural_image(11, 70, 90)).save(buffer, format="JPEG")
    serve = tf.saved_model.load(str(result.path)).signatures["serving_default"]
    out = serve(images=tf.constant([buffer.getvalue()]))
    assert out["params"].shape == (1, 6)
    assert tf.io.decode_png(out["corrected_png"][0]).shape == (70, 90, 3)


def test_export_tflite_agrees_with_keras(color_run, tmp_path):
    from kerastl.export import export_model

    result = export_model(str(color_run), format="tflite", out=tmp_path / "saved")
    assert result.path.suffix == ".tflite"
    assert result.report["params_max_abs_diff"] < 1e-3


def test_cli_train_color_then_color(tmp_path):
    from kerastl_cli.main import cli

    photos = write_photos(tmp_path / "photos", 12)
    runner = CliRunner()
    trained = runner.invoke(cli, [
        "edit", "train-color", str(photos), "--backbone", "kerastl_small", "--weights", "none",
        "--image-size", "32", "--frozen-epochs", "0", "--finetune-epochs", "1", "--copies", "2",
        "--runs-dir", str(tmp_path / "runs"), "--name", "c"], catch_exceptions=False)
    assert trained.exit_code == 0, trained.output
    assert "corrected" in trained.output and "baseline" in trained.output
    applied = runner.invoke(cli, ["edit", "color", str(tmp_path / "runs" / "c"),
                                  str(photos / "photo_00.png"), "--out", str(tmp_path / "out")])
    assert applied.exit_code == 0, applied.output
    assert (tmp_path / "out" / "photo_00.png").exists()
    again = runner.invoke(cli, ["edit", "color", str(tmp_path / "runs" / "c"),
                                str(photos / "photo_00.png"), "--out", str(tmp_path / "out")])
    assert again.exit_code == 1 and "exists" in again.output


def test_editing_data_needs_no_classes_and_skips_bad_files(tmp_path):
    from kerastl.data.bundle import load_images

    photos = write_photos(tmp_path / "flat", 6)
    (photos / "broken.jpg").write_bytes(b"not a jpeg")
    bundle = load_images(str(photos), 32, val_fraction=0.34, seed=0)
    assert len(bundle.train) + len(bundle.val) == 6
    assert bundle.skipped.total == 1
    assert bundle.train.images.shape[1:] == (32, 32, 3)
