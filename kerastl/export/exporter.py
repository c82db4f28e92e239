"""``kerastl export``: one function over the formats, the layout and the parity check."""

from __future__ import annotations

import dataclasses
import functools
import io
import json
import logging
from pathlib import Path

import numpy as np
from PIL import Image

from kerastl import __version__
from kerastl._tf import tensorflow
from kerastl.data import ImageSet, load_data
from kerastl.data.sources import load_splits
from kerastl.export.color import export_color
from kerastl.export.generator import export_generator
from kerastl.errors import KerastlError
from kerastl.export.layout import reserved_version, staged_folder, write_labels
from kerastl.export.parity import parity_report
from kerastl.export.tflite import QUANTIZATIONS, check_float_ops, convert, weights_calibrated
from kerastl.serving import Classifier, load_classifier
from kerastl.runs import CLASSIFIER_JOBS, COLOR_JOB, GAN_JOBS, METRICS_FILE, VAE_JOBS, \
    atomic_write, atomic_write_text, check_name, require_job, staged_file

log = logging.getLogger("kerastl")

FORMATS = ("savedmodel", "tflite", "onnx")
REPORT_FILE = "export_report.json"
CALIBRATION_IMAGES = 200


@dataclasses.dataclass
class ExportResult:
    """Where an export landed and how close it is to the Keras model."""

    path: Path
    version: int
    report: dict


def export_model(model: str | Path, format: str = "savedmodel", quantize: str = "none",
                 name: str | None = None, version: int | None = None, data: str | None = None,
                 out: str | Path = "saved_models", check_images: int = 64,
                 int8_io: bool = False, exact_hard_swish: bool = False,
                 float_ops: int = 0) -> ExportResult:
    """Export ``model`` (a run directory or ``.keras`` file) and check it against Keras.

    Args:
        format: ``savedmodel`` (TF Serving layout), ``tflite`` or ``onnx``.
        quantize: tflite only: ``none``, ``dynamic``, ``float16`` or ``int8``.
        version: integer version; default the next free one under ``out/name``.
        data: a data spec for calibration and checks when the run's data is not at hand.
        int8_io: with int8, uint8 input and output tensors.
        exact_hard_swish: with int8, keep TFLite's HARD_SWISH op (see
            :func:`kerastl.export.tflite.convert`).
        float_ops: with int8, keep this many ops in float, those int8 hurts most (see
            :func:`kerastl.export.tflite.convert`).
    """
    if format not in FORMATS:
        raise KerastlError(f"--format takes {', '.join(FORMATS)}. Received: {format}")
    if quantize not in QUANTIZATIONS:
        raise KerastlError(f"--quantize takes {', '.join(QUANTIZATIONS)}. Received: {quantize}")
    if quantize != "none" and format != "tflite":
        raise KerastlError(f"--quantize applies to tflite only (received --format {format})")
    check_float_ops(float_ops, quantize)  # before any work
    name = check_name(name or _default_name(Path(model)))
    record = require_job(model, (*CLASSIFIER_JOBS, COLOR_JOB, *GAN_JOBS, *VAE_JOBS),
                         "kerastl export")
    if record is not None and record["job"] == COLOR_JOB:
        path, version, report = export_color(model, format, name, out, version, quantize)
        return ExportResult(path, version, report)
    if record is not None and record["job"] in (*GAN_JOBS, *VAE_JOBS):
        path, version, report = export_generator(model, record["job"], format, name, out,
                                                 version, quantize)
        return ExportResult(path, version, report)
    classifier = load_classifier(model)
    if classifier.kind != "keras":
        raise KerastlError(f"{model} is already an export ({classifier.kind}); export a run "
                           "directory or a .keras file")
    source = ModelSource(Path(model), classifier, data, record)
    model_dir = Path(out).expanduser() / name
    pixels, checked_on = source.check_pixels(check_images)
    _require_finite(classifier, pixels, model)
    exporters = {"savedmodel": _export_savedmodel, "tflite": _export_tflite,
                 "onnx": _export_onnx}
    with reserved_version(model_dir, version) as version:
        path, report = exporters[format](source, model_dir, name, version, pixels, checked_on,
                                         quantize=quantize, int8_io=int8_io,
                                         exact_hard_swish=exact_hard_swish, float_ops=float_ops)
    return ExportResult(path, version, report)


class ModelSource:
    """The model being exported and what its run directory knows: data, metrics, backbone."""

    def __init__(self, path: Path, classifier: Classifier, data: str | None,
                 config: dict | None):
        self.path, self.classifier, self.data, self.config = path, classifier, data, config
        metrics_file = classifier.path.parent / METRICS_FILE
        try:
            self.metrics = json.loads(metrics_file.read_text()) if metrics_file.exists() else {}
        except (OSError, ValueError):
            self.metrics = {}  # only the model card quotes them

    def default_name(self) -> str:
        return _default_name(self.path)

    @functools.cached_property
    def _splits(self) -> dict[str, ImageSet] | None:
        """The run's (or --data's) images, loaded once for both the check and calibration."""
        size = self.classifier.image_size
        if self.data:
            from kerastl.data import SkippedFiles

            splits = load_splits(self.data, size, SkippedFiles())
            return {k: v.relabel_to(self.classifier.class_names) for k, v in splits.items()}
        settings = (self.config or {}).get("settings")
        if isinstance(settings, dict) and "data" in settings:
            try:
                bundle = load_data(settings["data"], size,
                                   val_fraction=settings.get("val_fraction", 0.2),
                                   seed=settings.get("seed", 0), classes=settings.get("classes"),
                                   per_class=settings.get("per_class"),
                                   limit=settings.get("limit"))
            except (KerastlError, TypeError, ValueError):
                return None
            return {"train": bundle.train, "val": bundle.val}
        return None

    def check_pixels(self, n: int) -> tuple[np.ndarray, str]:
        """Validation images for the parity check (random pixels if no data is at hand)."""
        splits = self._splits
        if splits:
            split = "val" if "val" in splits else next(iter(splits))
            images = splits[split].images[:n].astype(np.float32)
            return images, f"{self.data or self.config['settings']['data']} ({split})"
        log.warning("the run's data is not at hand: the export is checked on random pixels, "
                    "which say little about agreement on real images (pass --data)")
        rng = np.random.default_rng(0)
        height, width = self.classifier.image_size
        return rng.uniform(0, 255, (min(n, 16), height, width, 3)).astype(np.float32), \
            "random pixels (no data at hand: pass --data)"

    def calibration(self):
        """A callable yielding single-image float32 batches from the training split."""
        splits = self._splits
        if not splits:
            return None
        images = splits["train"].images
        chosen = np.random.default_rng(0).permutation(len(images))[:CALIBRATION_IMAGES]
        return lambda: (images[i:i + 1].astype(np.float32) for i in chosen)

    def model_card(self, version: int, format: str, quantize: str) -> dict:
        tf = tensorflow()
        config = self.config or {}
        return {
            "name": self.default_name(), "version": version, "format": format,
            "quantization": quantize, "source_model": str(self.classifier.path),
            "backbone": config.get("backbone"), "input": {
                "pixels": [*self.classifier.image_size, 3], "range": "0-255 RGB float32",
                "preprocessing": "inside the model"},
            "labels": self.classifier.class_names,
            "training_data": config.get("data"),
            "metrics": {k: {m: v[m] for m in ("split", "n", "accuracy", "macro_f1")
                            if m in v} for k, v in self.metrics.items() if isinstance(v, dict)},
            "versions": {"kerastl": __version__, "tensorflow": tf.__version__},
        }

    def warmup_image(self) -> bytes:
        height, width = self.classifier.image_size
        buffer = io.BytesIO()
        Image.new("RGB", (width, height), (128, 128, 128)).save(buffer, format="JPEG")
        return buffer.getvalue()


def _default_name(path: Path) -> str:
    path = path.expanduser().resolve()
    return (path.name if path.is_dir() else path.stem).replace(" ", "_")


def _require_finite(classifier: Classifier, pixels: np.ndarray, model) -> None:
    """Refuse to export a model whose outputs are NaN or infinite (a diverged run)."""
    outputs = np.asarray(classifier.predict_batch(pixels[:16]))
    if not np.isfinite(outputs).all():
        raise KerastlError(f"{model} gives non-finite outputs (NaN or inf) on the check images: "
                           "it diverged in training; retrain it (lower the learning rate) "
                           "rather than export it")


def _export_savedmodel(source: ModelSource, model_dir: Path, name: str, version: int,
                       pixels: np.ndarray, checked_on: str, **_) -> tuple[Path, dict]:
    from kerastl.export.savedmodel import write_savedmodel

    tf = tensorflow()
    final = model_dir / str(version)
    with staged_folder(final) as folder:
        write_savedmodel(source.classifier.keras_model, source.classifier.class_names, folder,
                         name, source.warmup_image())
        signature = tf.saved_model.load(str(folder)).signatures["predict_pixels"]
        report = parity_report(source.classifier.predict_batch,
                               lambda x: signature(pixels=tf.constant(x))["probabilities"],
                               pixels, folder, checked_on)
        report["artifact"] = str(final)
        _write_sidecars(folder, source, version, "savedmodel", "none", report)
    return final, report


def _export_tflite(source: ModelSource, model_dir: Path, name: str, version: int,
                   pixels: np.ndarray, checked_on: str, quantize: str, int8_io: bool,
                   exact_hard_swish: bool, float_ops: int = 0) -> tuple[Path, dict]:
    from kerastl.export.tflite import TFLiteRunner

    representative = source.calibration() if quantize == "int8" else None
    if quantize == "int8" and representative is None:
        raise KerastlError("int8 quantization needs calibration images: the run's data is not "
                           "at hand, so pass --data")
    if quantize == "int8":
        log.info("int8: calibrating on up to %d training images%s, then converting (a minute or "
                 "more for a large model on a CPU)", CALIBRATION_IMAGES,
                 " (choosing the weights too)" if weights_calibrated(quantize, float_ops)
                 else f" (ranking ops for {float_ops} in float)")
    flatbuffer = convert(source.classifier.keras_model, quantize, representative, int8_io,
                         exact_hard_swish=exact_hard_swish, float_ops=float_ops)
    suffix = "" if quantize == "none" else f"-{quantize}"
    path = atomic_write(model_dir / f"{name}-v{version}{suffix}.tflite", flatbuffer)
    runner = TFLiteRunner(str(path))
    report = parity_report(source.classifier.predict_batch, runner, pixels, path, checked_on)
    report["xnnpack_partitions"] = runner.delegate_partitions
    if float_ops:
        report["float_ops"] = float_ops
    if weights_calibrated(quantize, float_ops):
        report["int8_weights"] = "adaptive rounding and bias correction on calibration images"
    write_labels(model_dir, source.classifier.class_names)
    _write_report(_report_path(path), source, version, "tflite", quantize, report)
    return path, report


def _export_onnx(source: ModelSource, model_dir: Path, name: str, version: int,
                 pixels: np.ndarray, checked_on: str, **_) -> tuple[Path, dict]:
    try:
        import onnxruntime
    except ImportError:
        raise KerastlError("ONNX export needs the onnx extra: pip install 'kerastl[onnx]'") \
            from None
    path = model_dir / f"{name}-v{version}.onnx"
    model = source.classifier.keras_model
    model(pixels[:1])  # Keras' ONNX export refuses a loaded model that was never called
    try:
        with staged_file(path) as tmp:
            model.export(str(tmp), format="onnx", verbose=False)
    except Exception as exc:  # noqa: BLE001 - the converter fails in many ways
        raise KerastlError(f"ONNX export failed for this model: {str(exc).splitlines()[0]}") \
            from None
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    report = parity_report(source.classifier.predict_batch,
                           lambda x: session.run(None, {input_name: x})[0], pixels, path,
                           checked_on)
    write_labels(model_dir, source.classifier.class_names)
    _write_report(_report_path(path), source, version, "onnx", "none", report)
    return path, report


def _write_sidecars(folder: Path, source: ModelSource, version: int, format: str,
                    quantize: str, report: dict) -> None:
    write_labels(folder, source.classifier.class_names)
    atomic_write_text(folder / "model_card.json",
                      json.dumps(source.model_card(version, format, quantize), indent=2) + "\n")
    atomic_write_text(folder / REPORT_FILE, json.dumps(report, indent=2) + "\n")


def _report_path(artifact: Path) -> Path:
    """``NAME-v3-int8.tflite`` -> ``NAME-v3-int8.export_report.json`` beside it."""
    return artifact.with_name(artifact.stem + ".export_report.json")


def _write_report(path: Path, source: ModelSource, version: int, format: str, quantize: str,
                  report: dict) -> None:
    card = source.model_card(version, format, quantize)
    atomic_write_text(path, json.dumps({**report, "model_card": card}, indent=2) + "\n")
