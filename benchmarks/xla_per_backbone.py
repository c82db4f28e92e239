"""XLA against no XLA, per backbone and image size: what ``--jit-compile auto`` should do.

For each backbone and size: kerastl's classifier (random weights; speed does not depend
on them), the whole network training (the unfrozen phase, where the time goes), Adam,
``train_on_batch`` on random pixels, one model compiled with ``jit_compile=True`` and a copy
without, in this process. The first call of each is timed apart (tracing, and for XLA the
compilation); then rounds taken in turn (XLA, plain, XLA, ...) of about ``--round-seconds``
each, so that both sides share the machine's quieter and busier minutes. Reported: best and
median images/s of the rounds, their ratio, and the first call's seconds.

    python benchmarks/xla_per_backbone.py [--backbones resnet50,inceptionv3,vgg16,\\
        efficientnetlite0,mobilenetv3small] [--sizes 32,96,224] [--batch-size 8]

A size below a backbone's minimum is raised to it (InceptionV3: 75 px).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from kerastl._tf import tensorflow  # noqa: E402
from kerastl.backbones import get_spec  # noqa: E402
from kerastl.transfer.model import build_classifier, resolve_backbone  # noqa: E402

tf = tensorflow()
import keras  # noqa: E402

DEFAULT_BACKBONES = "resnet50,inceptionv3,vgg16,efficientnetlite0,mobilenetv3small"


def trainer(backbone: str, size: int, jit: bool, weights=None):
    keras.utils.set_random_seed(0)
    model = build_classifier(resolve_backbone(backbone, "none", size), 10)
    if weights is not None:
        model.set_weights(weights)
    model.compile(keras.optimizers.Adam(1e-4), "sparse_categorical_crossentropy",
                  jit_compile=jit)
    return model


def first_call_seconds(model, x, y) -> float:
    start = time.perf_counter()
    model.train_on_batch(x, y)
    return time.perf_counter() - start


def images_per_second(model, x, y, steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    return steps * len(x) / (time.perf_counter() - start)


def measure(backbone: str, size: int, args) -> dict:
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (args.batch_size, size, size, 3)).astype(np.float32)
    y = rng.integers(0, 10, args.batch_size)
    plain = trainer(backbone, size, jit=False)
    xla = trainer(backbone, size, jit=True, weights=plain.get_weights())
    first = {"plain": first_call_seconds(plain, x, y), "xla": first_call_seconds(xla, x, y)}
    step = len(x) / images_per_second(plain, x, y, 1)
    steps = max(1, round(args.round_seconds / step))
    rates = {"plain": [], "xla": []}
    for _ in range(args.rounds):
        for name, model in (("xla", xla), ("plain", plain)):
            rates[name].append(images_per_second(model, x, y, steps))
    keras.backend.clear_session()
    return {"backbone": backbone, "size": size, "steps": steps, "first": first,
            "best": {k: max(v) for k, v in rates.items()},
            "median": {k: statistics.median(v) for k, v in rates.items()}}


def print_row(row: dict) -> None:
    best, median = row["best"], row["median"]
    print(f"{row['backbone']:18} {row['size']:5d} {best['plain']:9.2f} {best['xla']:9.2f} "
          f"{best['xla'] / best['plain']:8.2f}x {median['xla'] / median['plain']:8.2f}x "
          f"{row['first']['plain']:8.1f} {row['first']['xla']:8.1f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", default=DEFAULT_BACKBONES)
    parser.add_argument("--sizes", default="32,96,224")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--round-seconds", type=float, default=8.0)
    args = parser.parse_args()
    print(f"{platform.machine()}, {os.cpu_count()} cores, TF {tf.__version__}, batch "
          f"{args.batch_size}, {args.rounds} rounds of ~{args.round_seconds:.0f} s per side")
    print(f"{'backbone':18} {'size':>5} {'plain/s':>9} {'XLA/s':>9} {'best':>9} {'median':>9} "
          f"{'1st s':>8} {'1st XLA':>8}")
    for backbone in args.backbones.split(","):
        minimum = get_spec(backbone).min_size
        for size in sorted({max(int(s), minimum) for s in args.sizes.split(",")}):
            print_row(measure(backbone, size, args))


if __name__ == "__main__":
    main()
