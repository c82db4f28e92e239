"""Latency and size of each export format against Keras called directly; int8 agreement.

Part 1, agreement: MobileNetV3Small trained here from scratch on the bundled
sample at 64 px (``--agreement-data``, ``--agreement-backbone``, ``--agreement-size``
choose others), exported with each quantization, top-1 agreement with Keras on
the data's test images (the sample's 1,000; int8 calibrated on 200 training images),
int8 both with kerastl's XNNPACK-friendly hard-swish and with ``--exact-hard-swish``.

Part 2, speed and size at 224 px: Keras ``predict_on_batch`` (not ``predict``,
whose per-call overhead dominates small inputs), float TFLite, and TFLite with
dynamic-range, float16 and int8 quantization, per image (batch 1) and per image in
batches of 16, all run through ``ai_edge_litert`` with the same thread count, and
how many pieces XNNPACK runs each in. The agreement backbone carries the weights
trained in part 1 (its layers do not depend on the input size) and is calibrated on
its training images resized to 224: int8 needs activation ranges of a trained model
(with random weights some activations are so small that XNNPACK refuses the
int8 ADDs after them, which would time a model nobody ships). ResNet50 has random
weights (training it does not fit this CPU).

    python benchmarks/export_latency.py [--backbones mobilenetv3small,resnet50]
    python benchmarks/export_latency.py --backbones "" --agreement-data fashion_mnist \\
        --agreement-size 32 --agreement-epochs 3
    python benchmarks/export_latency.py --backbones efficientnetlite0 \\
        --agreement-backbone efficientnetlite0 --agreement-weights imagenet \\
        --agreement-size 128 --agreement-frozen-epochs 2 --agreement-epochs 2
    python benchmarks/export_latency.py --backbones "" ... --calibration-images 200 1000 3000
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import kerastl  # noqa: E402
from kerastl._tf import tensorflow  # noqa: E402
from kerastl.export.tflite import QUANTIZATIONS, TFLiteRunner, convert  # noqa: E402
from kerastl.transfer.model import build_classifier, resolve_backbone  # noqa: E402

tf = tensorflow()
import keras  # noqa: E402

THREADS = os.cpu_count() or 2


def per_image_ms(predict, pixels: np.ndarray, repeats: int) -> float:
    predict(pixels)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        predict(pixels)
        times.append((time.perf_counter() - start) * 1000 / len(pixels))
    return statistics.median(times)


def speed_rows(backbone: str, size: int, repeats: int, folder: Path,
               trained=None, images: np.ndarray | None = None) -> list[dict]:
    """Rows per format; ``trained`` (a classifier of the same backbone at another size)
    gives its weights, and ``images`` (uint8) the calibration set, both optional."""
    keras.utils.set_random_seed(0)
    model = build_classifier(resolve_backbone(backbone, "none", size), 10)
    if trained is not None:
        model.set_weights(trained.get_weights())
    rng = np.random.default_rng(0)
    one = rng.uniform(0, 255, (1, size, size, 3)).astype(np.float32)
    batch = rng.uniform(0, 255, (16, size, size, 3)).astype(np.float32)
    calibration = rng.uniform(0, 255, (50, size, size, 3)).astype(np.float32) \
        if images is None else tf.image.resize(images[:50], (size, size)).numpy()
    rows = [{"model": backbone, "format": "keras", "size_mb": None, "pieces": None,
             "ms_1": per_image_ms(model.predict_on_batch, one, repeats),
             "ms_16": per_image_ms(model.predict_on_batch, batch, max(3, repeats // 4))}]
    for quantize in QUANTIZATIONS:
        path = folder / f"{backbone}-{quantize}.tflite"
        path.write_bytes(convert(model, quantize, lambda: (c[None] for c in calibration)))
        runner = TFLiteRunner(str(path), num_threads=THREADS)
        rows.append({"model": backbone, "format": f"tflite {quantize}",
                     "size_mb": path.stat().st_size / 1e6,
                     "ms_1": per_image_ms(runner, one, repeats),
                     "ms_16": per_image_ms(runner, batch, max(3, repeats // 4)),
                     "pieces": runner.delegate_partitions})
    keras.backend.clear_session()
    return rows


def agreement_rows(data: str, backbone: str, size: int, epochs: int, folder: Path,
                   weights: str = "none", frozen_epochs: int = 0, calibration=(200,)):
    """Agreement rows, and the trained model and its training images for part 2; int8 once
    per count of ``calibration`` images (the first training images)."""
    result = kerastl.finetune(data, backbone=backbone, weights=weights,
                              image_size=size, frozen_epochs=frozen_epochs,
                              finetune_epochs=epochs, runs_dir=str(folder), name="agreement",
                              verbose=0)
    model, test = result.model, result.data.test
    keras_top1 = model.predict(test.images.astype(np.float32), verbose=0).argmax(1)
    train = result.data.train.images
    rows = [{"quantization": "keras", "test_accuracy": float(np.mean(keras_top1 == test.labels)),
             "agreement": 1.0}]
    hard_swish = backbone.startswith("mobilenetv3")  # the others have no hard-swish to rewrite
    cases = [(q, False, calibration[0]) for q in QUANTIZATIONS] + \
        [("int8", False, count) for count in calibration[1:]] + \
        [("int8", True, calibration[0])] * hard_swish
    for quantize, exact, count in cases:
        path = folder / f"agreement-{quantize}{'-exact' if exact else ''}-{count}.tflite"
        path.write_bytes(convert(model, quantize,
                                 lambda: (train[i:i + 1].astype(np.float32)
                                          for i in range(min(count, len(train)))),
                                 exact_hard_swish=exact))
        runner = TFLiteRunner(str(path), num_threads=THREADS)
        top1 = np.concatenate([runner(test.images[i:i + 100].astype(np.float32)).argmax(1)
                               for i in range(0, len(test), 100)])
        named = quantize + (" exact-hs" if exact else "") + \
            (f" ({count} cal)" if quantize == "int8" and len(calibration) > 1 else "")
        rows.append({"quantization": named,
                     "test_accuracy": float(np.mean(top1 == test.labels)),
                     "agreement": float(np.mean(top1 == keras_top1))})
    return rows, model, train


def print_speed(backbone: str, size: int, rows: list[dict]) -> None:
    float_row = next(r for r in rows if r["format"] == "tflite none")
    print(f"\n{backbone} at {size} px")
    print(f"{'format':16} {'MB':>7} {'ms/img b1':>10} {'ms/img b16':>11} "
          f"{'x float speed':>14} {'x float size':>13} {'XNNPACK pieces':>15}")
    for row in rows:
        mb = f"{row['size_mb']:.2f}" if row["size_mb"] else "-"
        rel_size = f"{row['size_mb'] / float_row['size_mb']:.2f}" if row["size_mb"] else "-"
        print(f"{row['format']:16} {mb:>7} {row['ms_1']:>10.2f} {row['ms_16']:>11.2f} "
              f"{float_row['ms_1'] / row['ms_1']:>13.2f}x {rel_size:>13} "
              f"{row['pieces'] if row['pieces'] is not None else '-':>15}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", default="mobilenetv3small,resnet50")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--agreement-size", type=int, default=64)
    parser.add_argument("--agreement-epochs", type=int, default=8)
    parser.add_argument("--agreement-data", default="sample",
                        help="data the agreement model trains and is tested on")
    parser.add_argument("--agreement-backbone", default="mobilenetv3small")
    parser.add_argument("--agreement-weights", default="none",
                        help="none (from scratch) or imagenet (then finetuned)")
    parser.add_argument("--agreement-frozen-epochs", type=int, default=0)
    parser.add_argument("--calibration-images", type=int, nargs="+", default=[200],
                        help="int8 calibration images (several: one int8 row per count)")
    args = parser.parse_args()
    print(f"{platform.machine()}, {os.cpu_count()} cores, TF {tf.__version__}, "
          f"LiteRT threads {THREADS}")
    with tempfile.TemporaryDirectory() as tmp:
        rows, trained, images = agreement_rows(args.agreement_data, args.agreement_backbone,
                                               args.agreement_size, args.agreement_epochs,
                                               Path(tmp), args.agreement_weights,
                                               args.agreement_frozen_epochs,
                                               args.calibration_images)
        print(f"\n{args.agreement_backbone} (weights {args.agreement_weights}) trained here at "
              f"{args.agreement_size} px ({args.agreement_frozen_epochs} frozen + "
              f"{args.agreement_epochs} epochs on {args.agreement_data}), its test images")
        print(f"{'quantization':22} {'test acc':>9} {'top-1 agreement':>16}")
        for row in rows:
            print(f"{row['quantization']:22} {row['test_accuracy']:>9.3f} "
                  f"{row['agreement']:>16.3f}")
        for backbone in filter(None, args.backbones.split(",")):
            mine = backbone == args.agreement_backbone
            print_speed(backbone, args.size, speed_rows(
                backbone, args.size, args.repeats, Path(tmp), trained if mine else None,
                images if mine else None))

if __name__ == "__main__":
    main()
