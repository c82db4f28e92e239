"""Export a generative run (a DCGAN or a VAE): the network that makes images, latents in.

SavedModel signature:
  ``serving_default``  latents: float32 [N, D] (and labels: int32 [N], conditional models)
                       -> images: uint8 [N, S, S, C]
                       (the DCGAN's EMA generator, or the VAE's decoder and its sigmoid)

The TFLite model takes the same latents (and labels) and gives the images as float32 0-255
(whole numbers, so an app casts them to bytes). Latents are drawn from the standard normal
prior. The report compares the export with the Keras model on 16 fixed latent vectors
(``max_abs_diff_0_255``, ``identical_pixels``) and gives sizes and latency per image.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from kerastl._tf import tensorflow
from kerastl.errors import KerastlError
from kerastl.export.layout import check_plain_export, export_version, staged_folder
from kerastl.export.parity import artifact_size, median_latency_ms
from kerastl.runs import GAN_JOBS, atomic_write, atomic_write_text

REPORT_FILE = "export_report.json"
CHECK_LATENTS = 16


def export_generator(run_or_model: str | Path, job: str, format: str, name: str,
                     out: str | Path, version: int | None = None,
                     quantize: str = "none") -> tuple[Path, int, dict]:
    """Export the generator of a GAN run or the decoder of a VAE run (``job`` says which) as
    ``savedmodel`` or ``tflite``; returns (path, version, report)."""
    check_plain_export(format, quantize, "generative model",
                       "int8 would need calibration latents and coarsens the images")
    model = _load(run_or_model, job)
    return export_version(model, format, Path(out) / name, version, quantize, _savedmodel,
                          _tflite)


def _load(run_or_model, job: str):
    if job in GAN_JOBS:
        from kerastl.gan.dcgan import load_gan

        return load_gan(run_or_model)
    from kerastl.vae.model import load_vae

    return load_vae(run_or_model)


def image_function(model):
    """``(latents[, class indices]) -> float32 images in 0-255, whole numbers`` for a DCGAN
    or a (conditional) VAE."""
    tf = tensorflow()
    from kerastl.gan.dcgan import DCGAN

    if isinstance(model, DCGAN):
        network, to_unit = model.sampler, lambda x: (x + 1.0) / 2.0
    else:
        network, to_unit = model.decoder, tf.sigmoid
    classes = getattr(model, "num_classes", 0)

    def images(latents, labels=None):
        inputs = latents if not classes else [latents, tf.one_hot(labels, classes)]
        made = tf.cast(network(inputs, training=False), tf.float32)
        return tf.round(tf.clip_by_value(to_unit(made) * 255.0, 0.0, 255.0))
    return network, images


def _signature(model) -> list:
    tf = tensorflow()
    latents = tf.TensorSpec([None, model.latent_dim], tf.float32, name="latents")
    if getattr(model, "num_classes", 0):
        return [latents, tf.TensorSpec([None], tf.int32, name="labels")]
    return [latents]


def _savedmodel(model, final: Path) -> tuple[Path, dict]:
    tf = tensorflow()
    import keras

    network, images = image_function(model)
    with staged_folder(final) as folder:
        archive = keras.export.ExportArchive()
        archive.track(network)
        archive.add_endpoint("serving_default",
                             lambda *inputs: {"images": tf.cast(images(*inputs), tf.uint8)},
                             input_signature=_signature(model))
        archive.write_out(str(folder), verbose=False)
        serve = tf.saved_model.load(str(folder)).signatures["serving_default"]
        report = _parity(model, lambda z, labels=None: serve(**_feed(z, labels))[
            "images"].numpy(), folder)
        report["artifact"] = str(final)
        atomic_write_text(folder / REPORT_FILE, json.dumps(report, indent=2) + "\n")
    return final, report


def _tflite(model, model_dir: Path, name: str, version: int, quantize: str
            ) -> tuple[Path, dict]:
    from kerastl.export.tflite import convert
    from kerastl.serving import TFLiteRunner

    network, images = image_function(model)
    flatbuffer = convert(network, quantize, outputs=images, inputs=_signature(model))
    suffix = "" if quantize == "none" else f"-{quantize}"
    path = atomic_write(model_dir / f"{name}-v{version}{suffix}.tflite", flatbuffer)
    run = TFLiteRunner(str(path)) if not getattr(model, "num_classes", 0) else \
        _labelled_runner(path)
    report = _parity(model, run, path)
    atomic_write_text(path.with_name(path.stem + ".export_report.json"),
                      json.dumps(report, indent=2) + "\n")
    return path, report


def _labelled_runner(path: Path):
    """``(latents, labels) -> images`` through the TFLite model's signature (two inputs)."""
    from ai_edge_litert.interpreter import Interpreter

    from kerastl._tf import silenced_stderr

    interpreter = Interpreter(model_path=str(path))
    with silenced_stderr():
        signature = interpreter.get_signature_runner()

    def run(latents, labels):
        outputs = signature(latents=np.asarray(latents, np.float32),
                            labels=np.asarray(labels, np.int32))
        return next(iter(outputs.values()))
    return run


def _feed(latents, labels) -> dict:
    tf = tensorflow()
    feed = {"latents": tf.constant(latents)}
    if labels is not None:
        feed["labels"] = tf.constant(labels, tf.int32)
    return feed


def _parity(model, exported, artifact: Path) -> dict:
    latents = model.latents(CHECK_LATENTS, seed=0)
    classes = getattr(model, "num_classes", 0)

    def with_labels(make):  # a conditional model makes every class in turn
        return (lambda z: make(z, np.arange(len(z)) % classes)) if classes else make

    keras_images, export_images = with_labels(model.generate), with_labels(exported)
    reference = keras_images(latents).astype(np.int16)
    found = np.asarray(export_images(latents)).astype(np.int16)
    if found.shape != reference.shape:
        raise KerastlError(f"the export gives images of shape {found.shape}, the model "
                           f"{reference.shape}")
    difference = np.abs(found - reference)
    return {"artifact": str(artifact), "size_bytes": artifact_size(artifact),
            "check_latents": len(latents), "max_abs_diff_0_255": int(difference.max()),
            "identical_pixels": float(np.mean(difference == 0)),
            "latency_ms_per_image": {"keras": median_latency_ms(keras_images, latents[:8]),
                                     "export": median_latency_ms(export_images, latents[:8])}}
