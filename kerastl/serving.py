"""Reading a trained model back, for every consumer alike: ``kerastl predict`` and
``evaluate`` (:mod:`kerastl.inference`) and ``kerastl export`` (:mod:`kerastl.export`), so
neither imports the other, and neither imports a trainer.

A classifier is a run directory, a ``.keras`` file, a SavedModel folder or a ``.tflite``
file; each loads into a :class:`Classifier` (float32 pixels 0-255 in, probabilities out).
A multi-task model's outputs are a dict: its primary head is under :data:`PRIMARY`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

import numpy as np

from kerastl._tf import silenced_stderr, tensorflow
from kerastl.errors import DataError, ModelFileError, RunDirError
from kerastl.runs import CLASSIFIER_JOBS, LABELS_FILE, load_keras_model, read_labels, \
    require_job, resolve_model_file
from kerastl.task import PRIMARY



def primary_output(outputs):
    """The primary head's probabilities, whether a model has one output or a dict of heads."""
    return outputs[PRIMARY] if isinstance(outputs, dict) else outputs


@dataclasses.dataclass
class Classifier:
    """Any loaded classifier: float32 pixels (N, H, W, 3) in 0-255 -> probabilities."""

    predict_batch: Callable[[np.ndarray], np.ndarray]
    class_names: list[str]
    image_size: tuple[int, int]
    path: Path
    kind: str
    keras_model: object = None

    def probabilities(self, images: np.ndarray, batch_size: int = 64,
                      tta: bool = False) -> np.ndarray:
        """Probabilities for uint8 or float images, ``batch_size`` at a time.

        ``tta``: test-time augmentation, fastai's ``tta`` reduced to the mirror: the
        mean of the probabilities of each image and of its left-right mirror image.
        Meant for models trained with mirroring (``--augment shift|light|randaugment``).
        """
        if not len(images):
            return np.zeros((0, len(self.class_names)), np.float32)
        parts = []
        for start in range(0, len(images), batch_size):  # a streamed split decodes per batch
            batch = np.asarray(images[start:start + batch_size], dtype=np.float32)
            probabilities = np.asarray(self.predict_batch(batch))
            if tta:
                probabilities = (probabilities + np.asarray(
                    self.predict_batch(np.ascontiguousarray(batch[:, :, ::-1])))) / 2.0
            parts.append(probabilities)
        return np.concatenate(parts)


def load_classifier(path: str | Path) -> Classifier:
    """Load ``runs/NAME``, a ``.keras`` file, a SavedModel folder or a ``.tflite`` file.

    Keras models load with ``safe_mode`` on.
    """
    path = Path(path).expanduser()
    if path.is_dir() and (path / "saved_model.pb").exists():
        return _load_savedmodel(path)
    if path.suffix == ".tflite" and path.is_file():
        return _load_tflite(path)
    return _load_keras(path)


def load_imagenet_classifier(backbone: str, image_size: int | None = None) -> Classifier:
    """A registered backbone's ImageNet classifier with ImageNet's 1,000 labels, to see a
    pretrained network work before finetuning it (``kerastl predict --backbone NAME
    --weights imagenet``)."""
    from kerastl.backbones import IMAGENET_LABELS_FILE, imagenet_classifier

    model = imagenet_classifier(backbone, image_size)
    names = IMAGENET_LABELS_FILE.read_text().splitlines()
    size = (int(model.input_shape[1]), int(model.input_shape[2]))
    return Classifier(model.predict_on_batch, names, size, Path(backbone), "imagenet", model)


def _load_keras(path: Path) -> Classifier:
    require_job(path, CLASSIFIER_JOBS, "this command")
    model_file = resolve_model_file(path)
    model = load_keras_model(model_file)
    if not hasattr(model, "input_shape") or len(model.input_shape) != 4:
        raise ModelFileError(f"{model_file} is not an image classifier (its input is "
                             f"{getattr(model, 'input_shape', 'unknown')})")
    names = _check_labels(read_labels(model_file), int(primary_output(model.output).shape[-1]),
                          model_file)
    size = (int(model.input_shape[1]), int(model.input_shape[2]))
    return Classifier(lambda x: primary_output(model.predict_on_batch(x)), names, size,
                      model_file, "keras", model)


def _load_savedmodel(path: Path) -> Classifier:
    tf = tensorflow()
    loaded = tf.saved_model.load(str(path))
    if "predict_pixels" not in loaded.signatures:
        raise RunDirError(f"{path} is a SavedModel without kerastl's predict_pixels signature")
    signature = loaded.signatures["predict_pixels"]
    spec = next(iter(signature.structured_input_signature[1].values()))
    size = (int(spec.shape[1]), int(spec.shape[2]))
    n_classes = int(signature.structured_outputs["probabilities"].shape[-1])
    names = _check_labels(_labels_beside(path), n_classes, path)

    def predict(pixels):
        return signature(pixels=tf.constant(pixels))["probabilities"].numpy()

    return Classifier(predict, names, size, path, "savedmodel", loaded)


def _load_tflite(path: Path) -> Classifier:
    runner = TFLiteRunner(str(path))
    n_classes = int(runner.output["shape"][-1])
    names = _check_labels(_labels_beside(path), n_classes, path)
    return Classifier(runner, names, runner.image_size, path, "tflite")


def _labels_beside(path: Path) -> list[str] | None:
    folder = path if path.is_dir() else path.parent
    for candidate in (folder / LABELS_FILE, folder.parent / LABELS_FILE):
        if candidate.exists():
            return [line for line in candidate.read_text().splitlines() if line]
    return None


def _check_labels(names: list[str] | None, n_classes: int, path: Path) -> list[str]:
    if names is None:
        return [f"class_{i}" for i in range(n_classes)]
    if len(names) != n_classes:
        raise DataError(f"{LABELS_FILE} beside {path} names {len(names)} classes but the "
                        f"model has {n_classes} outputs")
    return names


class TFLiteRunner:
    """Runs a ``.tflite`` model with ``ai_edge_litert``: float32 pixels in, probabilities out."""

    def __init__(self, model_path: str, num_threads: int | None = None):
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_path=str(model_path), num_threads=num_threads)
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self._batch = None

    @property
    def delegate_partitions(self) -> int:
        """How many pieces LiteRT's XNNPACK delegate runs (1: the whole graph; each
        extra piece is a hand-over to the slower builtin kernels). Known once a batch ran."""
        return sum(op["op_name"] == "DELEGATE" for op in self.interpreter._get_ops_details())

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.input["shape"][1]), int(self.input["shape"][2])

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        if self._batch != len(pixels):
            self.interpreter.resize_tensor_input(self.input["index"],
                                                 [len(pixels), *self.input["shape"][1:]])
            with silenced_stderr():  # LiteRT announces its XNNPACK delegate on stderr
                self.interpreter.allocate_tensors()
            self._batch = len(pixels)
        self.interpreter.set_tensor(self.input["index"], self._quantize_input(pixels))
        self.interpreter.invoke()
        return self._dequantize_output(self.interpreter.get_tensor(self.output["index"]))

    def _quantize_input(self, pixels: np.ndarray) -> np.ndarray:
        dtype = self.input["dtype"]
        if dtype == np.float32:
            return pixels.astype(np.float32)
        scale, zero = self.input["quantization"]
        quantized = np.round(pixels / scale + zero) if scale else pixels
        info = np.iinfo(dtype)
        return np.clip(quantized, info.min, info.max).astype(dtype)

    def _dequantize_output(self, values: np.ndarray) -> np.ndarray:
        if self.output["dtype"] == np.float32:
            return values
        scale, zero = self.output["quantization"]
        return (values.astype(np.float32) - zero) * scale
