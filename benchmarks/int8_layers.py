"""Where int8 loses agreement with Keras, layer by layer, and what keeping the worst in float buys.

TFLite's ``QuantizationDebugger`` runs the int8 model beside the float one and reports, per
quantized op, the error of its output in units of its quantization step (``rmse / scale``).
The ``K`` worst ops are then left in float (selective quantization, the debugger's
``denylisted_nodes``) and each model is scored as ``benchmarks/export_latency.py`` scores int8:
top-1 agreement with Keras on the test images, size against float TFLite, milliseconds per
image (batch 1, LiteRT with XNNPACK) and XNNPACK pieces.

Then kerastl's own ``convert`` (what ``kerastl export --quantize int8`` runs): pixels reach
the stem on an exact int8 grid, and the int8 weights are chosen on the calibration images
(adaptive rounding of the stem and depthwise layers, bias correction: see
``kerastl/export/int8_weights.py``), against the same with nearest rounding and with
``--float-ops`` (which turns the weight calibration off).

The model: a finetuned run (``--run``), or by default EfficientNet-Lite0 from ImageNet finetuned
on the bundled sample at 128 px (2 frozen + 2 unfrozen epochs: export_latency's recipe). Run:

    python benchmarks/int8_layers.py [--run RUN] [--keep-float 0 1 3 5 10]
        [--kerastl-float-ops 5] [--work DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import kerastl  # noqa: E402
from kerastl._tf import tensorflow  # noqa: E402
from kerastl.export.tflite import (convert, int8_debugger, int8_op_errors,  # noqa: E402
                                   keep_float)
from kerastl.serving import TFLiteRunner, primary_output  # noqa: E402
from kerastl.transfer.finetune import config_data, config_from_file  # noqa: E402

tf = tensorflow()
import keras  # noqa: E402

THREADS = os.cpu_count() or 2


def trained_model(run: str | None, work: Path):
    """(model, data) of ``run``, or of export_latency's Lite0 recipe trained into ``work``."""
    if run is None:
        result = kerastl.finetune("sample", backbone="efficientnetlite0", weights="imagenet",
                                  image_size=128, frozen_epochs=2, finetune_epochs=2,
                                  runs_dir=str(work), name="lite0", verbose=0)
        return result.model, result.data
    from kerastl import layers  # noqa: F401 - registers Preprocess for loading

    config = config_from_file(Path(run) / "config.json")
    model = keras.models.load_model(Path(run) / "model.keras", compile=False)
    return model, config_data(config, int(model.input_shape[1]))


def saved_model(model, folder: Path) -> str:
    size = int(model.input_shape[1])
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serve", lambda pixels: primary_output(model(pixels, training=False)),
                         input_signature=[tf.TensorSpec([None, size, size, 3], tf.float32)])
    archive.write_out(str(folder), verbose=False)
    return str(folder)


def int8_converter(folder: str, calibration: np.ndarray):
    converter = tf.lite.TFLiteConverter.from_saved_model(folder)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([image[None]] for image in calibration)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    return converter


def score(blob: bytes, path: Path, test, keras_top1: np.ndarray, repeats: int) -> dict:
    path.write_bytes(blob)
    runner = TFLiteRunner(str(path), num_threads=THREADS)
    images = test.images.astype(np.float32)
    top1 = np.concatenate([runner(images[i:i + 100]).argmax(1)
                           for i in range(0, len(images), 100)])
    one = images[:1]
    runner(one)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        runner(one)
        times.append((time.perf_counter() - start) * 1000)
    return {"agreement": float(np.mean(top1 == keras_top1)),
            "accuracy": float(np.mean(top1 == test.labels)), "mb": len(blob) / 1e6,
            "ms": statistics.median(times), "pieces": runner.delegate_partitions}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", help="a finetuned classifier run [default: train Lite0]")
    parser.add_argument("--keep-float", type=int, nargs="+", default=[0, 1, 3, 5, 10])
    parser.add_argument("--kerastl-float-ops", type=int, nargs="*", default=[5],
                        help="rows of kerastl's convert with this many ops in float")
    parser.add_argument("--calibration-images", type=int, default=200)
    parser.add_argument("--debug-images", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--work", help="keep the trained run and the models here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work or tmp)
        work.mkdir(parents=True, exist_ok=True)
        model, data = trained_model(args.run, work)
        test, train = data.test, data.train.images.astype(np.float32)
        keras_top1 = model.predict(test.images.astype(np.float32), verbose=0).argmax(1)
        folder = saved_model(model, work / "saved")
        calibration = train[:args.calibration_images]
        debug = train[::max(1, len(train) // args.debug_images)][:args.debug_images]

        def debug_images():
            return (image[None] for image in debug)

        debugger = int8_debugger(int8_converter(folder, calibration), debug_images)
        errors = int8_op_errors(debugger)
        print(f"Keras test accuracy {np.mean(keras_top1 == test.labels):.3f}; {len(errors)} "
              f"quantized ops, median error {statistics.median(r['steps'] for r in errors):.2f} "
              "steps; the worst:")
        for row in errors[:8]:
            print(f"  {row['steps']:6.2f} steps  {row['op_name']:18} {row['tensor_name'][:80]}")
        float_blob = tf.lite.TFLiteConverter.from_saved_model(folder).convert()
        reference = score(float_blob, work / "float.tflite", test, keras_top1, args.repeats)
        print(f"\n{'model':26} {'agreement':>9} {'accuracy':>8} {'MB':>6} {'size':>6} "
              f"{'ms/img':>7} {'speed':>6} {'pieces':>6}")
        rows = [("float32", reference)] + [
            (f"int8, {k} worst in float" if k else "int8 (full)",
             score(keep_float(debugger, [r["tensor_name"] for r in errors[:k]]) if k else
                   int8_converter(folder, calibration).convert(),
                   work / f"int8-float{k}.tflite", test, keras_top1, args.repeats))
            for k in args.keep_float]
        def representative():
            return (image[None] for image in calibration)
        kerastl_rows = [("kerastl int8", {}),
                        ("kerastl int8, nearest", {"calibrate_weights": False})]
        kerastl_rows += [(f"kerastl int8, {k} in float", {"float_ops": k})
                         for k in args.kerastl_float_ops]
        rows += [(name, score(convert(model, "int8", representative, **options),
                              work / f"kerastl-{index}.tflite", test, keras_top1, args.repeats))
                 for index, (name, options) in enumerate(kerastl_rows)]
        for name, row in rows:
            print(f"{name:26} {row['agreement']:>9.3f} {row['accuracy']:>8.3f} "
                  f"{row['mb']:>6.2f} {row['mb'] / reference['mb']:>5.3f}x "
                  f"{row['ms']:>7.2f} {reference['ms'] / row['ms']:>5.2f}x {row['pieces']:>6}")


if __name__ == "__main__":
    main()
