"""TFLite (LiteRT) conversion with builtin ops only, and quantization.

Keras' own ``model.export(format="litert")`` turns on Flex ops (SELECT_TF_OPS),
which the new Android runtime lacks; kerastl asks for builtin ops only and says
so clearly when a model needs more.

For int8, hard-swish is written as ``(x / 6) * relu6(x + 3)``: LiteRT's XNNPACK
delegate has no int8 HARD_SWISH, so each one cut the graph (MobileNetV3Small: 21
XNNPACK partitions with the slow builtin int8 kernel between them), while this
form converts to ADD (fused ReLU6) and two MULs, which XNNPACK runs in int8. The
usual ``x * relu6(x + 3) / 6`` would not do: the converter folds it back into
HARD_SWISH.
"""

from __future__ import annotations

import contextlib
import tempfile
from typing import Callable, Iterable

import numpy as np

from kerastl._tf import silenced_stderr, tensorflow
from kerastl.errors import KerastlError
from kerastl.transfer.model import primary_output

QUANTIZATIONS = ("none", "dynamic", "float16", "int8")


def convert(model, quantize: str = "none",
            representative: Callable[[], Iterable[np.ndarray]] | None = None,
            int8_io: bool = False, outputs: Callable | None = None,
            exact_hard_swish: bool = False) -> bytes:
    """The model's forward pass (float32 pixels 0-255 in, probabilities out) as TFLite bytes.

    Args:
        quantize: ``none`` (float32), ``dynamic`` (int8 weights), ``float16``
            (float16 weights) or ``int8`` (weights and activations; needs
            ``representative``, a callable yielding float32 image batches).
        int8_io: with ``int8``, take uint8 pixels and give uint8 probabilities.
        outputs: what the TFLite model computes from the pixels [default: the
            primary head's probabilities].
        exact_hard_swish: with ``int8``, keep TFLite's HARD_SWISH op instead of the
            XNNPACK-friendly rewrite: closer to Keras, much slower on CPU (measured on
            MobileNetV3Small: top-1 agreement 0.981 vs 0.962; 0.25x vs 1.28x float speed).
    """
    tf = tensorflow()
    import keras

    if quantize not in QUANTIZATIONS:
        raise KerastlError(f"--quantize takes {', '.join(QUANTIZATIONS)}. Received: {quantize}")
    if quantize == "int8" and representative is None:
        raise KerastlError("int8 quantization needs calibration images: export a run whose data "
                           "is at hand, or pass --data")
    height, width = (int(d) for d in model.input_shape[1:3])
    rewrite = _int8_friendly_activations(model) if quantize == "int8" and not exact_hard_swish \
        else contextlib.nullcontext()
    with tempfile.TemporaryDirectory() as folder, rewrite:
        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint("serve", outputs or (
                             lambda pixels: primary_output(model(pixels, training=False))),
                             input_signature=[tf.TensorSpec([None, height, width, 3],
                                                            tf.float32, name="pixels")])
        archive.write_out(folder, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(folder)
        _configure(converter, quantize, representative, int8_io)
        try:
            return converter.convert()
        except Exception as exc:  # noqa: BLE001 - the converter raises ConverterError and more
            raise KerastlError(
                "this model does not convert to TFLite with builtin ops only "
                f"({_first_line(exc)}); Flex ops would need the TensorFlow Lite Flex "
                "delegate, which the new Android runtime lacks") from None


HARD_SWISH_NAMES = ("hard_swish", "hard_silu")


def int8_friendly_hard_swish(x):
    """hard-swish as ops XNNPACK runs in int8 (and the converter does not re-fuse)."""
    from keras import ops

    return (x * (1.0 / 6.0)) * ops.relu6(x + 3.0)


@contextlib.contextmanager
def _int8_friendly_activations(model):
    """Swap every hard-swish activation of ``model`` (nested models included) for
    :func:`int8_friendly_hard_swish` while the model is traced; restored afterwards."""
    swapped = [layer for layer in model._flatten_layers(include_self=False)
               if getattr(getattr(layer, "activation", None), "__name__", "") in HARD_SWISH_NAMES]
    originals = [layer.activation for layer in swapped]
    for layer in swapped:
        layer.activation = int8_friendly_hard_swish
    try:
        yield len(swapped)
    finally:
        for layer, original in zip(swapped, originals):
            layer.activation = original


def _configure(converter, quantize: str, representative, int8_io: bool) -> None:
    tf = tensorflow()
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantize == "none":
        return
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "float16":
        converter.target_spec.supported_types = [tf.float16]
    elif quantize == "int8":
        converter.representative_dataset = lambda: ([batch] for batch in representative())
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if int8_io:
            converter.inference_input_type = tf.uint8
            converter.inference_output_type = tf.uint8


def _first_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return (lines[0] if lines else type(exc).__name__)[:240]


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
