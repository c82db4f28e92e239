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

For int8, ``Rescaling`` is traced as ``(x + offset / scale) * scale`` so that 0-255 pixels
reach the first convolution as whole grey levels, and the convolutions' int8 weights are
chosen on the calibration images (:mod:`kerastl.export.int8_weights`): on a finetuned
EfficientNet-Lite0, top-1 agreement with Keras 0.971 -> 0.989.

``float_ops=N`` (int8 only) keeps in float the N ops whose int8 output strays most from the
float op's, measured by TFLite's ``QuantizationDebugger`` on calibration images, in units of
each op's quantization step (the weights are then TFLite's nearest rounding): on the same
Lite0, 5 float ops agree on 0.991 at the same size (``docs/benchmarks.md``).
"""

from __future__ import annotations

import contextlib
import csv
import io
import itertools
import tempfile
from typing import Callable, Iterable

import numpy as np

from kerastl._tf import tensorflow
from kerastl.errors import KerastlError
from kerastl.export.int8_weights import int8_weight_calibration
from kerastl.export.swap import swapped
from kerastl.serving import TFLiteRunner, primary_output  # noqa: F401 - TFLiteRunner: API

QUANTIZATIONS = ("none", "dynamic", "float16", "int8")
#: Calibration images the int8 error of each op is measured on (``float_ops``).
DEBUG_IMAGES = 50


def convert(model, quantize: str = "none",
            representative: Callable[[], Iterable[np.ndarray]] | None = None,
            int8_io: bool = False, outputs: Callable | None = None,
            exact_hard_swish: bool = False, inputs=None, float_ops: int = 0,
            calibrate_weights: bool = True) -> bytes:
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
        inputs: the ``tf.TensorSpec`` ``outputs`` takes, or a list of them [default: float32
            pixels at the model's input size] (a generator takes latents, and labels if it is
            conditional).
        float_ops: with ``int8``, keep this many ops in float: those whose int8 output errs
            most (see the module's notes).
        calibrate_weights: with ``int8`` and no ``float_ops`` (and the model's own input),
            round each convolution's weights up or down as suits the calibration images and
            let its bias absorb the mean error left (:mod:`kerastl.export.int8_weights`).
    """
    tf = tensorflow()
    import keras

    if quantize not in QUANTIZATIONS:
        raise KerastlError(f"--quantize takes {', '.join(QUANTIZATIONS)}. Received: {quantize}")
    if quantize == "int8" and representative is None:
        raise KerastlError("int8 quantization needs calibration images: export a run whose data "
                           "is at hand, or pass --data")
    check_float_ops(float_ops, quantize)
    if inputs is None:
        height, width = (int(d) for d in model.input_shape[1:3])
        inputs = tf.TensorSpec([None, height, width, 3], tf.float32, name="pixels")
    rewrite = _int8_friendly_activations(model) if quantize == "int8" and not exact_hard_swish \
        else contextlib.nullcontext()
    rescale = _int8_exact_rescaling(model) if quantize == "int8" else contextlib.nullcontext()
    correct = int8_weight_calibration(model, _batched(representative())) \
        if calibrate_weights and outputs is None and weights_calibrated(quantize, float_ops) \
        else contextlib.nullcontext()
    with tempfile.TemporaryDirectory() as folder, correct, rewrite, rescale:
        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint("serve", outputs or (
                             lambda pixels: primary_output(model(pixels, training=False))),
                             input_signature=inputs if isinstance(inputs, list) else [inputs])
        archive.write_out(folder, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(folder)
        _configure(converter, quantize, representative, int8_io)
        try:
            if float_ops:
                return _worst_in_float(converter, representative, float_ops)
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


def _int8_friendly_activations(model):
    """Swap every hard-swish activation of ``model`` (nested models included) for
    :func:`int8_friendly_hard_swish` while the model is traced; restored afterwards."""
    return swapped((layer, "activation", int8_friendly_hard_swish)
                   for layer in model._flatten_layers(include_self=False)
                   if getattr(getattr(layer, "activation", None), "__name__", "")
                   in HARD_SWISH_NAMES)


def int8_exact_rescaling(inputs, scale: float, offset: float):
    """Keras ``Rescaling``'s ``x * scale + offset`` as ``(x + offset / scale) * scale``. On
    0-255 pixels the sum is whole (or half-whole) numbers, which int8 holds exactly and the
    converter folds ``scale`` into the next convolution; the product first left ``x * scale``
    on an int8 grid of 1.5 grey levels (EfficientNet-Lite's ``(x - 127) / 128``)."""
    from keras import ops

    return ops.multiply(ops.add(inputs, offset / scale), scale)


def _int8_exact_rescaling(model):
    """Swap every scalar ``Rescaling`` of ``model`` (nested models and layers included) for
    :func:`int8_exact_rescaling` while the model is traced; restored afterwards."""
    import functools

    import keras

    return swapped((layer, "call", functools.partial(
        int8_exact_rescaling, scale=float(layer.scale), offset=float(layer.offset)))
        for layer in model._flatten_layers(include_self=False)
        if isinstance(layer, keras.layers.Rescaling)
        and all(isinstance(v, (int, float)) for v in (layer.scale, layer.offset))
        and layer.scale != 0)


def int8_debugger(converter, debug_images: Callable[[], Iterable[np.ndarray]]):
    """TFLite's QuantizationDebugger on an int8 ``converter`` (set up as :func:`convert` sets
    it), calibrated once; float ops allowed where :func:`keep_float` asks for them."""
    tf = tensorflow()
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8,
                                           tf.lite.OpsSet.TFLITE_BUILTINS]
    return tf.lite.experimental.QuantizationDebugger(
        converter=converter, debug_dataset=lambda: ([image] for image in debug_images()))


def int8_op_errors(debugger) -> list[dict]:
    """Each quantized op with its output's error against the float op in quantization steps
    (``steps``: RMSE / scale), worst first. ``tensor_name`` names the op for
    :func:`keep_float`."""
    debugger.run()
    table = io.StringIO()
    debugger.layer_statistics_dump(table)
    table.seek(0)
    rows = list(csv.DictReader(table))
    for row in rows:
        row["steps"] = float(np.sqrt(float(row["mean_squared_error"])) / float(row["scale"]))
    return sorted(rows, key=lambda row: -row["steps"])


def keep_float(debugger, names: list[str]) -> bytes:
    """The debugger's int8 model with the ops ``names`` (``tensor_name``) in float (from its
    calibrated model: no second calibration)."""
    tf = tensorflow()
    debugger.options = tf.lite.experimental.QuantizationDebugOptions(
        denylisted_nodes=list(names))
    return debugger.get_nondebug_quantized_model()


def weights_calibrated(quantize: str, float_ops: int) -> bool:
    """Whether :func:`convert` chooses the int8 weights on calibration images: for int8 with
    every op quantized (an op kept in float would compute with rounded weights and a
    corrected bias meant for int8: measured on Lite0, 5 float ops agree on 0.991 of the test
    images without calibrated weights, 0.985 with them)."""
    return quantize == "int8" and not float_ops


def check_float_ops(float_ops: int, quantize: str) -> None:
    if float_ops and quantize != "int8":
        raise KerastlError(f"--float-ops applies to int8 only (received --quantize {quantize})")


def _worst_in_float(converter, representative, count: int) -> bytes:
    debugger = int8_debugger(converter,
                             lambda: itertools.islice(representative(), DEBUG_IMAGES))
    worst = [row["tensor_name"] for row in int8_op_errors(debugger)[:count]]
    return keep_float(debugger, worst)


def _batched(images: Iterable[np.ndarray], size: int = 32) -> Iterable[np.ndarray]:
    """Image batches of ``size`` from batches of any size."""
    pending = []
    for batch in images:
        pending.append(batch)
        if sum(len(b) for b in pending) >= size:
            yield np.concatenate(pending)
            pending = []
    if pending:
        yield np.concatenate(pending)


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
