"""Grad-CAM (`kerastl explain`): the map falls on the object of the class explained, on the
nested models kerastl and Keras Applications build."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from kerastl.errors import KerastlError

SIZE = 64
OBJECTS = {"red": (230, 30, 30), "blue": (30, 50, 230)}


def scene(objects: dict[str, tuple[int, int]], seed: int) -> np.ndarray:
    """Gray noise with a 16-px square of each named colour at (x, y)."""
    rng = np.random.default_rng(seed)
    pixels = np.clip(rng.normal(128, 20, (SIZE, SIZE, 3)), 0, 255).astype(np.uint8)
    for name, (x, y) in objects.items():
        pixels[y:y + 16, x:x + 16] = OBJECTS[name]
    return pixels


@pytest.fixture(scope="module")
def object_run(tmp_path_factory) -> Path:
    """A small classifier that learned 'red square' from 'blue square', anywhere."""
    import kerastl

    root = tmp_path_factory.mktemp("objects")
    rng = np.random.default_rng(0)
    for name in OBJECTS:
        (root / "data" / name).mkdir(parents=True)
        for i in range(24):
            x, y = rng.integers(0, SIZE - 16, 2)
            Image.fromarray(scene({name: (x, y)}, seed=i)).save(
                root / "data" / name / f"{i}.png")
    result = kerastl.finetune(str(root / "data"), backbone="kerastl_small", weights="none",
                              image_size=SIZE, frozen_epochs=0, finetune_epochs=6, batch_size=8,
                              lr=3e-3, finetune_lr=3e-3, augment="none", val_fraction=0.25,
                              runs_dir=str(root / "runs"), name="objects", verbose=0)
    return Path(result.run_dir)


def left_share(heat: np.ndarray) -> float:
    return float(heat[:, :SIZE // 2].sum() / max(heat.sum(), 1e-9))


def test_the_map_lies_on_the_object_of_the_class_explained(object_run, tmp_path):
    from kerastl.explain import GradCam, explain
    from kerastl.serving import load_classifier

    both = tmp_path / "both.png"
    Image.fromarray(scene({"red": (6, 24), "blue": (42, 24)}, seed=99)).save(both)
    classifier = load_classifier(object_run)
    cam = GradCam(classifier.keras_model)
    shares = {}
    for name in OBJECTS:
        heat, classes, _ = cam(np.asarray(Image.open(both), np.float32)[None],
                               classifier.class_names.index(name))
        assert classifier.class_names[classes[0]] == name
        shares[name] = left_share(heat[0])
    assert shares["red"] > 0.6, shares  # red stands on the left,
    assert shares["blue"] < 0.4, shares  # blue on the right
    results, skipped = explain(object_run, [both], tmp_path / "cam", class_name="blue")
    assert not skipped and results[0].label == "blue"
    assert (tmp_path / "cam" / "both_gradcam.png").exists()
    assert (tmp_path / "cam" / "gradcam.png").exists()


def test_cli_writes_overlays_skips_bad_files_and_never_overwrites(object_run, tmp_path):
    from kerastl_cli.main import cli

    images = tmp_path / "images"
    images.mkdir()
    for i in range(3):
        Image.fromarray(scene({"red": (8 * i, 8)}, seed=i)).save(images / f"red{i}.png")
    (images / "broken.png").write_bytes(b"not an image")
    out = tmp_path / "cam"
    result = CliRunner().invoke(cli, ["explain", str(object_run), str(images), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == [
        "gradcam.png", "red0_gradcam.png", "red1_gradcam.png", "red2_gradcam.png"]
    assert "broken.png" in result.output
    overlay = np.asarray(Image.open(out / "red0_gradcam.png"))
    assert overlay.shape == (SIZE, SIZE, 3)
    before = (out / "gradcam.png").read_bytes()
    again = CliRunner().invoke(cli, ["explain", str(object_run), str(images), "--out", str(out)])
    assert again.exit_code != 0 and "--overwrite" in again.output
    assert (out / "gradcam.png").read_bytes() == before
    unknown = CliRunner().invoke(cli, ["explain", str(object_run), str(images), "--out",
                                       str(tmp_path / "x"), "--class", "green"])
    assert unknown.exit_code != 0 and "'green' is not one of" in unknown.output
    assert not (tmp_path / "x").exists()


def test_a_keras_application_nested_in_a_wrapper(tmp_path):
    """The network nested whole (pooling and the softmax inside it), as ImageNet classifiers
    are wrapped with their preprocessing: the map comes out where hand-written Grad-CAM
    raises 'graph disconnected'."""
    import keras

    from kerastl.explain import GradCam

    network = keras.applications.MobileNetV2(weights=None, input_shape=(64, 64, 3), classes=3)
    inputs = keras.Input((64, 64, 3))
    wrapper = keras.Model(inputs, network(keras.layers.Rescaling(1 / 127.5, -1)(inputs)))
    pixels = np.stack([scene({"red": (4, 4)}, 0), scene({"blue": (30, 30)}, 1)]).astype("f4")
    heat, classes, probabilities = GradCam(wrapper)(pixels)
    assert heat.shape == (2, 64, 64) and heat.max() <= 1.0 and heat.min() >= 0.0
    expected = np.asarray(wrapper.predict_on_batch(pixels))
    np.testing.assert_array_equal(classes, expected.argmax(-1))
    np.testing.assert_allclose(probabilities, expected.max(-1), rtol=1e-4)


def test_an_export_is_refused_with_one_line(trained_run, tmp_path):
    from kerastl.explain import explain
    from kerastl.export import export_model

    exported = export_model(str(trained_run), format="tflite", out=tmp_path / "saved",
                            check_images=4)
    tflite = exported.path if exported.path.is_file() else next(exported.path.rglob("*.tflite"))
    assert tflite.suffix == ".tflite"
    with pytest.raises(KerastlError, match="Grad-CAM needs the Keras model"):
        explain(tflite, [tmp_path], tmp_path / "cam")
