"""Exports: SavedModel signatures and layout, TFLite parity and quantization, reading back."""

import io
import json
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from kerastl.backbones import get_spec
from kerastl.errors import KerastlError
from kerastl.export import export_model
from kerastl.export.tflite import TFLiteRunner, convert
from kerastl.inference import load_classifier
from kerastl.transfer.model import build_classifier, resolve_backbone
from kerastl_cli.main import cli


@pytest.fixture(scope="module")
def saved(trained_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("saved_models")
    return export_model(trained_run, "savedmodel", out=out, name="colours"), out


def test_savedmodel_layout_and_report(saved):
    result, out = saved
    assert result.path == out / "colours" / "1" and result.version == 1
    for name in ("saved_model.pb", "variables", "labels.txt", "model_card.json",
                 "export_report.json", "assets.extra/tf_serving_warmup_requests"):
        assert (result.path / name).exists(), name
    card = json.loads((result.path / "model_card.json").read_text())
    assert card["labels"] == ["blue", "green", "red"] and card["input"]["pixels"] == [32, 32, 3]
    assert card["metrics"]["val"]["split"] == "val"
    assert result.report["max_abs_diff"] < 1e-5 and result.report["top1_agreement"] == 1.0
    assert not [p for p in out.rglob(".*tmp*")]


def test_versions_increment_and_collisions_are_refused(saved, trained_run):
    _, out = saved
    second = export_model(trained_run, "savedmodel", out=out, name="colours", check_images=4)
    assert second.version == 2
    with pytest.raises(KerastlError, match="version 1 of colours already exists"):
        export_model(trained_run, "savedmodel", out=out, name="colours", version=1)


def test_concurrent_exports_never_take_the_same_version(tmp_path):
    """The version is reserved when it is chosen, before the (slow) export writes it."""
    import concurrent.futures

    from kerastl.export.layout import choose_version

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        versions = list(pool.map(lambda _: choose_version(tmp_path / "m", None), range(16)))
    assert sorted(versions) == list(range(1, 17))
    assert choose_version(tmp_path / "m", None) == 17
    with pytest.raises(KerastlError, match="version 3 of m already exists"):
        choose_version(tmp_path / "m", 3)
    from kerastl.export.layout import reserved_version

    with pytest.raises(RuntimeError), reserved_version(tmp_path / "failed", None) as version:
        assert (tmp_path / "failed" / f".version-{version}").exists()
        raise RuntimeError("the export failed")
    assert not (tmp_path / "failed").exists()  # a failed export leaves nothing behind


def test_export_checks_a_bare_model_file_on_data_given_with_data(trained_run, session_folder,
                                                                  tmp_path):
    import shutil

    bare = Path(shutil.copy(trained_run / "model.keras", tmp_path / "bare.keras"))
    shutil.copy(trained_run / "labels.txt", tmp_path / "labels.txt")  # no config: no run data
    with_data = export_model(bare, "tflite", out=tmp_path / "out", data=str(session_folder),
                             check_images=12)
    assert with_data.report["check_images_from"].startswith(str(session_folder))
    assert with_data.report["check_images"] == 12 and with_data.report["top1_agreement"] > 0.9
    without = export_model(bare, "tflite", out=tmp_path / "out")
    assert without.report["check_images_from"].startswith("random pixels")
    assert without.version == with_data.version + 1


def _jpeg_bytes(session_folder) -> bytes:
    buffer = io.BytesIO()
    Image.open(next((session_folder / "green").iterdir())).convert("RGB").save(
        buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def test_bytes_signature_matches_keras_on_the_same_decode(saved, trained_run, session_folder):
    import tensorflow as tf

    result, _ = saved
    data = _jpeg_bytes(session_folder)
    serving = tf.saved_model.load(str(result.path)).signatures["serving_default"]
    outputs = serving(images=tf.constant([data, data]))
    image = tf.io.decode_jpeg(data, channels=3, dct_method="INTEGER_ACCURATE")
    pixels = tf.image.resize(image, (32, 32), method="bilinear", antialias=True)[None]
    model = keras.models.load_model(trained_run / "model.keras")
    np.testing.assert_allclose(outputs["probabilities"].numpy()[0],
                               model.predict_on_batch(pixels.numpy())[0], atol=1e-5)
    top = int(outputs["classes"].numpy()[0, 0])
    assert outputs["labels"].numpy()[0, 0].decode() == ["blue", "green", "red"][top]


def test_fresh_process_with_only_tensorflow_serves_bytes(saved, session_folder, tmp_path):
    result, _ = saved
    image = tmp_path / "x.jpg"
    image.write_bytes(_jpeg_bytes(session_folder))
    code = f"""
import sys, tensorflow as tf
loaded = tf.saved_model.load({str(result.path)!r})
out = loaded.signatures["serving_default"](images=tf.constant([open({str(image)!r}, "rb").read()]))
print(out["labels"].numpy()[0, 0].decode(), "kerastl" in sys.modules)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    label, kerastl_loaded = done.stdout.split()
    assert label in {"blue", "green", "red"} and kerastl_loaded == "False"


def test_pixel_cap_is_enforced_in_the_graph(saved):
    import tensorflow as tf

    from kerastl.export.savedmodel import decode_and_resize

    buffer = io.BytesIO()
    Image.new("RGB", (100, 80)).save(buffer, format="PNG")
    with pytest.raises(tf.errors.InvalidArgumentError, match="more than 5000 pixels"):
        decode_and_resize(tf.constant(buffer.getvalue()), (8, 8), max_pixels=5000)
    assert decode_and_resize(tf.constant(buffer.getvalue()), (8, 8)).shape == (8, 8, 3)


@pytest.mark.parametrize("quantize,min_agreement", [("dynamic", 0.9), ("int8", 0.9)])
def test_quantized_tflite_agrees_with_keras(trained_run, tmp_path, quantize, min_agreement):
    result = export_model(trained_run, "tflite", quantize=quantize, out=tmp_path)
    assert result.path.name == f"{trained_run.name}-v1-{quantize}.tflite"
    assert result.report["top1_agreement"] >= min_agreement
    assert (tmp_path / trained_run.name / "labels.txt").exists()
    report = result.path.with_name(result.path.stem + ".export_report.json")
    assert json.loads(report.read_text())["model_card"]["quantization"] == quantize


def test_int8_io_takes_uint8(trained_run, tmp_path):
    result = export_model(trained_run, "tflite", quantize="int8", int8_io=True, out=tmp_path,
                          check_images=8)
    runner = TFLiteRunner(str(result.path))
    assert runner.input["dtype"] == np.uint8 and runner.output["dtype"] == np.uint8


def _float_ops(path) -> int:
    """Ops computing in float inside a TFLite model (not counting the casts around them)."""
    import tensorflow as tf

    resolver = tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    interpreter = tf.lite.Interpreter(model_path=str(path),
                                      experimental_op_resolver_type=resolver)
    dtypes = {t["index"]: t["dtype"] for t in interpreter.get_tensor_details()}
    return sum(all(dtypes[i] == np.float32 for i in op["outputs"])
               for op in interpreter._get_ops_details()
               if op["op_name"] not in ("QUANTIZE", "DEQUANTIZE"))


def test_int8_keeps_the_ops_it_hurts_most_in_float_when_asked(trained_run, tmp_path):
    full = export_model(trained_run, "tflite", quantize="int8", out=tmp_path, check_images=8)
    mixed = export_model(trained_run, "tflite", quantize="int8", float_ops=2, out=tmp_path,
                         check_images=8)
    assert _float_ops(mixed.path) == _float_ops(full.path) + 2
    assert mixed.report["float_ops"] == 2 and "float_ops" not in full.report
    assert mixed.report["top1_agreement"] >= 0.9


def test_int8_hard_swish_runs_inside_xnnpack(tmp_path):
    """LiteRT's XNNPACK has no int8 HARD_SWISH: left as is, each one splits the graph."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="hard_swish")(inputs)
    x = keras.layers.Activation("hard_swish")(keras.layers.Conv2D(8, 3, padding="same")(x))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(8, 3, padding="same")(x))
    model = keras.Model(inputs, keras.layers.Dense(4)(x))  # int8 SOFTMAX would be a 2nd piece
    pixels = np.random.default_rng(0).uniform(0, 1, (32, 16, 16, 3)).astype(np.float32)
    path = tmp_path / "int8.tflite"
    path.write_bytes(convert(model, "int8", lambda: (p[None] for p in pixels)))
    runner = TFLiteRunner(str(path))
    probabilities = runner(pixels)
    ops = {op["op_name"] for op in runner.interpreter._get_ops_details()}
    assert "HARD_SWISH" not in ops and "ADD" in ops
    assert runner.delegate_partitions == 1
    assert np.abs(probabilities - model.predict_on_batch(pixels)).max() < 0.05 * np.abs(
        probabilities).max()
    swapped = [layer for layer in model.layers if "hard" in getattr(layer, "activation",
                                                                     len).__name__]
    assert len(swapped) == 2  # the originals are back after the conversion
    path.write_bytes(convert(model, "int8", lambda: (p[None] for p in pixels),
                             exact_hard_swish=True))
    exact = TFLiteRunner(str(path))
    assert "HARD_SWISH" in {op["op_name"] for op in exact.interpreter._get_ops_details()}


@pytest.mark.parametrize("backbone", ["resnet50", "vgg16", "inceptionv3"])
def test_float_tflite_matches_keras_for_large_backbones(backbone, tmp_path):
    keras.utils.set_random_seed(0)
    resolved = resolve_backbone(backbone, "none", get_spec(backbone).min_size)
    model = build_classifier(resolved, 4)
    path = tmp_path / "model.tflite"
    path.write_bytes(convert(model))
    size = model.input_shape[1]
    pixels = np.random.default_rng(0).uniform(0, 255, (4, size, size, 3)).astype(np.float32)
    difference = np.abs(TFLiteRunner(str(path))(pixels) - model.predict_on_batch(pixels))
    assert difference.max() < 1e-4
    keras.backend.clear_session()


def test_exports_read_back_for_predict_and_evaluate(saved, trained_run, session_folder, tmp_path):
    result, _ = saved
    tflite = export_model(trained_run, "tflite", out=tmp_path, check_images=4).path
    runner = CliRunner()
    keras_report = json.loads(runner.invoke(cli, ["evaluate", str(trained_run),
                                                  str(session_folder), "--json"]).output)
    for exported in (result.path, tflite):
        assert load_classifier(exported).class_names == ["blue", "green", "red"]
        out = runner.invoke(cli, ["evaluate", str(exported), str(session_folder), "--json"])
        assert out.exit_code == 0, out.output
        assert json.loads(out.output)["accuracy"] == pytest.approx(keras_report["accuracy"],
                                                                    abs=0.03)
        predicted = runner.invoke(cli, ["predict", str(exported), str(session_folder / "red"),
                                        "--json"])
        assert predicted.exit_code == 0 and len(json.loads(predicted.output)) == 16


@pytest.mark.parametrize("args,message", [
    (["--format", "savedmodel", "--quantize", "int8"], "applies to tflite only"),
    (["--format", "tflite", "--quantize", "int8"], "needs calibration images"),
    (["--format", "tflite", "--quantize", "dynamic", "--float-ops", "2"], "int8 only"),
])
def test_export_errors_are_clear(trained_run, tmp_path, args, message):
    bare = tmp_path / "bare.keras"
    bare.write_bytes((trained_run / "model.keras").read_bytes())
    result = CliRunner().invoke(cli, ["export", str(bare), "--out", str(tmp_path / "o"), *args])
    assert result.exit_code == 1 and message in result.output
    assert not (tmp_path / "o" / "bare").exists() or not any((tmp_path / "o" / "bare").iterdir())


def test_export_of_a_folder_without_a_model(tmp_path):
    result = CliRunner().invoke(cli, ["export", str(tmp_path)])
    assert result.exit_code == 1 and "not a finished kerastl run" in result.output


def test_onnx_export_matches_keras(trained_run, tmp_path):
    result = export_model(trained_run, "onnx", out=tmp_path, check_images=16)
    assert result.path.suffix == ".onnx" and result.path.exists()
    assert result.report["max_abs_diff"] < 1e-4 and result.report["top1_agreement"] == 1.0


def _jpeg_with_orientation(pixels: np.ndarray, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", exif=exif.tobytes(), quality=95)
    return buffer.getvalue()


def _rgba_png(seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (30, 40, 4), dtype=np.uint8)
    pixels[:15, :, 3] = 0  # a transparent half over dark pixels: white in training
    pixels[:15, :, :3] = 10
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGBA").save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("orientation", range(1, 9))
def test_serving_decode_applies_exif_orientation_exactly_as_training(orientation):
    import tensorflow as tf

    from kerastl.data.images import to_rgb_array
    from kerastl.export.savedmodel import decode_image

    pixels = np.random.default_rng(orientation).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    data = _jpeg_with_orientation(pixels, orientation)
    served = decode_image(tf.constant(data)).numpy()
    np.testing.assert_array_equal(served, to_rgb_array(Image.open(io.BytesIO(data))))


def test_serving_decode_composites_transparency_on_white_as_training():
    import tensorflow as tf

    from kerastl.data.images import to_rgb_array
    from kerastl.export.savedmodel import decode_image

    data = _rgba_png()
    served = decode_image(tf.constant(data)).numpy().astype(int)
    trained = to_rgb_array(Image.open(io.BytesIO(data))).astype(int)
    assert served[:15].min() == 255 and np.abs(served - trained).max() <= 1


def test_served_probabilities_match_predict_for_rotated_and_transparent_images(tmp_path):
    """A phone photo (EXIF-rotated JPEG) and an RGBA PNG give the same probabilities through
    the SavedModel's bytes signature as through ``kerastl predict``; a position-sensitive
    model makes a rotation or a black background change its answer."""
    import tensorflow as tf

    from kerastl.inference import predict

    keras.utils.set_random_seed(0)
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Flatten()(keras.layers.Rescaling(1 / 255.0)(inputs))
    outputs = keras.layers.Dense(4, activation="softmax",
                                 kernel_initializer=keras.initializers.RandomNormal(0, 0.02))(x)
    keras.Model(inputs, outputs).save(tmp_path / "position.keras")
    exported = export_model(tmp_path / "position.keras", "savedmodel", out=tmp_path / "out")
    serve = tf.saved_model.load(str(exported.path)).signatures["serving_default"]
    stored = np.random.default_rng(1).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    files = {"rotated.jpg": _jpeg_with_orientation(stored, 6),
             "upright.jpg": _jpeg_with_orientation(stored, 1), "rgba.png": _rgba_png()}
    served = {}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        served[name] = serve(images=tf.constant([data]))["probabilities"].numpy()[0]
        top = predict(tmp_path / "position.keras", [tmp_path / name], top_k=4)[0]["top"]
        predicted = [next(t["probability"] for t in top if t["label"] == f"class_{i}")
                     for i in range(4)]
        np.testing.assert_allclose(served[name], predicted, atol=0.01, err_msg=name)
    assert np.abs(served["rotated.jpg"] - served["upright.jpg"]).max() > 0.05  # it can fail
