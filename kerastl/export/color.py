"""Export a colour-correction run: SavedModel (encoded image in, corrected image out), TFLite.

SavedModel signatures:
  ``serving_default``  images: tf.string [N] -> params [N, 6], corrected_png: tf.string [N]
                       (each image corrected at its own full resolution)
  ``predict_pixels``   pixels: float32 [N, S, S, 3] in 0-255 -> params [N, 6]

The TFLite model takes float32 pixels [N, S, S, 3] (0-255) and gives ``params``
[N, 6] and the corrected ``S x S`` image in [0, 1]; an app applies the same
parameters to the full-resolution photo (the adjustments are documented in
:mod:`kerastl.edit.color_ops`).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

from kerastl._tf import tensorflow
from kerastl.data.images import MAX_PIXELS
from kerastl.edit import color_ops
from kerastl.edit.color_apply import load_color_model
from kerastl.edit.color_eval import correct, predict_params
from kerastl.export.layout import check_plain_export, export_version, staged_folder
from kerastl.export.parity import artifact_size, median_latency_ms
from kerastl.export.savedmodel import decode_image
from kerastl.runs import atomic_write, atomic_write_text

REPORT_FILE = "export_report.json"


def export_color(run_or_model: str | Path, format: str, name: str, out: str | Path,
                 version: int | None = None, quantize: str = "none") -> tuple[Path, int, dict]:
    """Export a colour model as ``savedmodel`` or ``tflite``; returns (path, version, report)."""
    check_plain_export(format, quantize, "colour model",
                       "int8 would coarsen the correction itself")
    model = load_color_model(run_or_model)
    return export_version(model, format, Path(out) / name, version, quantize, _savedmodel,
                          _tflite)


def build_color_archive(model, max_pixels: int = MAX_PIXELS):
    tf = tensorflow()
    import keras

    size = tuple(int(d) for d in model.input_shape[1:3])

    def correct_one(data):
        full = decode_image(data, max_pixels)
        small = tf.image.resize(full, size, method="bilinear", antialias=True)
        params = model(small[None], training=False)[0]
        fixed = tf.clip_by_value(color_ops.invert(tf.cast(full, tf.float32) / 255.0, params),
                                 0.0, 1.0)
        encoded = tf.io.encode_png(tf.cast(tf.round(fixed * 255.0), tf.uint8))
        return params, encoded

    def serve_images(images):
        params, encoded = tf.map_fn(correct_one, images, fn_output_signature=(
            tf.TensorSpec([len(color_ops.ADJUSTMENTS)], tf.float32),
            tf.TensorSpec([], tf.string)))
        return {"params": params, "corrected_png": encoded}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serving_default", serve_images,
                         input_signature=[tf.TensorSpec([None], tf.string, name="images")])
    archive.add_endpoint("predict_pixels", lambda pixels: {"params": model(pixels)},
                         input_signature=[tf.TensorSpec([None, *size, 3], tf.float32,
                                                        name="pixels")])
    return archive


def _savedmodel(model, final: Path) -> tuple[Path, dict]:
    tf = tensorflow()
    with staged_folder(final) as folder:
        build_color_archive(model).write_out(str(folder), verbose=False)
        loaded = tf.saved_model.load(str(folder))
        report = _parity(model, lambda x: loaded.signatures["predict_pixels"](
            pixels=tf.constant(x))["params"].numpy(), folder)
        report["end_to_end"] = _bytes_parity(model, loaded.signatures["serving_default"])
        report["artifact"] = str(final)
        atomic_write_text(folder / REPORT_FILE, json.dumps(report, indent=2) + "\n")
    return final, report


def _tflite(model, model_dir: Path, name: str, version: int, quantize: str
            ) -> tuple[Path, dict]:
    from kerastl.edit.color_model import build_trainer
    from kerastl.export.tflite import TFLiteRunner, convert

    both = build_trainer(model)
    flatbuffer = convert(model, quantize, outputs=lambda pixels: both(pixels, training=False))
    suffix = "" if quantize == "none" else f"-{quantize}"
    path = atomic_write(model_dir / f"{name}-v{version}{suffix}.tflite", flatbuffer)
    runner = TFLiteRunner(str(path))
    params_index = next(d["index"] for d in runner.interpreter.get_output_details()
                        if tuple(d["shape"][-1:]) == (len(color_ops.ADJUSTMENTS),))
    runner.output = next(d for d in runner.interpreter.get_output_details()
                         if d["index"] == params_index)
    report = _parity(model, runner, path)
    atomic_write_text(path.with_name(path.stem + ".export_report.json"),
                      json.dumps(report, indent=2) + "\n")
    return path, report


def _check_pixels(model, count: int = 16) -> np.ndarray:
    size = tuple(int(d) for d in model.input_shape[1:3])
    rng = np.random.default_rng(0)
    return rng.uniform(0, 255, (count, *size, 3)).astype(np.float32)


def _parity(model, exported, artifact: Path) -> dict:
    pixels = _check_pixels(model)
    reference = np.asarray(model.predict(pixels, verbose=0))
    found = np.asarray(exported(pixels))
    return {"artifact": str(artifact), "size_bytes": artifact_size(artifact),
            "check_images": len(pixels), "check_images_from": "random pixels",
            "params_max_abs_diff": float(np.max(np.abs(reference - found))),
            "latency_ms_per_image": {
                "keras": median_latency_ms(lambda x: model.predict(x, verbose=0), pixels[:8]),
                "export": median_latency_ms(exported, pixels[:8])}}


def _bytes_parity(model, serve) -> dict:
    """One PNG through the serving signature against kerastl's own Pillow path."""
    tf = tensorflow()
    size = int(model.input_shape[1])
    rng = np.random.default_rng(1)
    image = rng.uniform(40, 215, (2 * size + 3, 3 * size + 1, 3)).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    served = serve(images=tf.constant([buffer.getvalue()]))
    served_image = tf.io.decode_png(served["corrected_png"][0]).numpy()
    expected = correct(image, predict_params(model, [image])[0])
    difference = np.abs(served_image.astype(np.int16) - expected.astype(np.int16))
    return {"image_shape": list(image.shape), "same_shape": served_image.shape == image.shape,
            "mean_abs_diff_0_255": float(difference.mean()),
            "max_abs_diff_0_255": int(difference.max())}
