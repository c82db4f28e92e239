"""One device against two, on this CPU: what tf.distribute costs, and whether it changes results.

Not a speed-up measurement (two logical devices share the same 2 cores): the same steps with
the same global batch on

  one device         the default strategy, Keras' fit (the baseline)
  mirrored, fit      MirroredStrategy over cpu:0,cpu:1 (two logical devices), Keras' fit
  mirrored, own loop the same, through kerastl's loop (what multi-worker runs use)
  2 workers          MultiWorkerMirroredStrategy, two processes on 127.0.0.1, kerastl's loop

for a classifier (the ``kerastl_small`` backbone + head at 32 px, all layers training, SGD,
frozen BatchNorm so the runs are comparable) and the DCGAN's ``train_step`` (synchronized
BatchNorm, latents fed as data). Reported: seconds per step (after a warm-up epoch that
traces), the ratio to one device, and the largest weight difference from the one-device run.

    python benchmarks/distributed_overhead.py [--images 512] [--batch 32] [--epochs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def logical_cpus(count: int):
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * count)
    tf.config.experimental.enable_op_determinism()


def data(args):
    import numpy as np

    rng = np.random.default_rng(0)
    return {"images": rng.uniform(0, 255, (args.images, 32, 32, 3)).astype(np.float32),
            "labels": rng.integers(0, 5, args.images),
            "real": rng.uniform(-1, 1, (args.images, 32, 32, 1)).astype(np.float32),
            "latents": rng.standard_normal((args.images, 64)).astype(np.float32)}


def classifier(strategy, arrays, batch):
    import keras
    import tensorflow as tf

    from kerastl.transfer.model import build_classifier, resolve_backbone

    with strategy.scope():
        keras.utils.set_random_seed(0)
        backbone = resolve_backbone("kerastl_small", None, 32)
        for layer in backbone.model.layers:
            layer.trainable = not isinstance(layer, keras.layers.BatchNormalization)
        model = build_classifier(backbone, 5, dropout=0.0)
        model.compile(keras.optimizers.SGD(0.01), "sparse_categorical_crossentropy")
    dataset = tf.data.Dataset.from_tensor_slices(
        (arrays["images"], arrays["labels"])).batch(batch, drop_remainder=True)
    return model, dataset, model.get_weights


def dcgan(strategy, arrays, batch):
    import keras
    import tensorflow as tf

    from kerastl.gan import DCGAN, build_discriminator, build_generator

    with strategy.scope():
        keras.utils.set_random_seed(0)
        gan = DCGAN(build_generator(32, 1, 64, 32, sync_bn=True),
                    build_discriminator(32, 1, 32, sync_bn=True), ema_decay=0)
        gan.discriminator.get_layer("dropout").rate = 0.0
        gan.compile(keras.optimizers.SGD(0.01), keras.optimizers.SGD(0.01))
    dataset = tf.data.Dataset.from_tensor_slices(
        (arrays["real"], arrays["latents"])).batch(batch, drop_remainder=True)
    return gan, dataset, lambda: gan.generator.get_weights() + gan.discriminator.get_weights()


MODELS = {"classifier": classifier, "dcgan": dcgan}


def timed(strategy, build, arrays, args, own_loop: bool):
    """Seconds per step over ``args.epochs`` epochs after one warm-up epoch, and the weights."""
    from kerastl.engine.loop import fit

    model, dataset, weights = build(strategy, arrays, args.batch)
    steps = args.images // args.batch
    with strategy.scope():
        fit(model, dataset, epochs=1, verbose=0, own_loop=own_loop)
        started = time.perf_counter()
        fit(model, dataset, initial_epoch=1, epochs=1 + args.epochs, verbose=0,
            own_loop=own_loop)
    return (time.perf_counter() - started) / (steps * args.epochs), weights()


def largest_difference(a, b) -> float:
    import numpy as np

    return max(float(np.max(np.abs(np.asarray(x) - np.asarray(y)))) for x, y in zip(a, b))


def in_process(args) -> dict:
    """One device, mirrored with fit, mirrored with kerastl's loop, per model."""
    logical_cpus(2)
    from kerastl.distribute import make_strategy

    arrays = data(args)
    single, mirrored = make_strategy("default"), make_strategy("mirrored", "cpu:0,cpu:1")
    results = {}
    for name, build in MODELS.items():
        base_time, base_weights = timed(single, build, arrays, args, own_loop=False)
        rows = {"one device": (base_time, 0.0)}
        for label, strategy, own in (("mirrored, fit", mirrored, False),
                                     ("mirrored, own loop", mirrored, True)):
            seconds, weights = timed(strategy, build, arrays, args, own_loop=own)
            rows[label] = (seconds, largest_difference(base_weights, weights))
        results[name] = {"rows": rows, "weights": base_weights}
        print(f"{name}: done", flush=True)
    return results


def worker(args) -> None:
    """One of two multi-worker processes (TF_CONFIG set by the parent)."""
    from kerastl.distribute import make_strategy

    strategy = make_strategy("multiworker")
    arrays = data(args)
    report = {}
    for name, build in MODELS.items():
        seconds, weights = timed(strategy, build, arrays, args, own_loop=True)
        report[name] = {"seconds": seconds, "weights": [w.tolist() for w in weights]}
    print("RESULT " + json.dumps(report), flush=True)


def two_workers(args) -> dict:
    ports = []
    for _ in range(2):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    processes = []
    for index in range(2):
        env = {**os.environ, "TF_CONFIG": json.dumps(
            {"cluster": cluster, "task": {"type": "worker", "index": index}})}
        processes.append(subprocess.Popen(
            [sys.executable, __file__, "--worker", "--images", str(args.images),
             "--batch", str(args.batch), "--epochs", str(args.epochs)],
            env=env, stdout=subprocess.PIPE, text=True))
    outputs = [process.communicate(timeout=3600)[0] for process in processes]
    reports = [json.loads(next(line for line in out.splitlines()
                               if line.startswith("RESULT ")).removeprefix("RESULT "))
               for out in outputs]
    return reports


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--batch", type=int, default=32, help="Global batch.")
    parser.add_argument("--epochs", type=int, default=3, help="Timed epochs (after a warm-up).")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    workers = two_workers(args)  # alone first, then this process's own runs
    results = in_process(args)
    import numpy as np

    print(f"\n{platform.node()}, {os.cpu_count()} cores; {args.images} images, global batch "
          f"{args.batch}, {args.epochs} timed epochs\n")
    print("| model | setting | s/step | x one device | max weight diff vs one device |")
    print("| --- | --- | --- | --- | --- |")
    for name, result in results.items():
        rows, base = dict(result["rows"]), result["weights"]
        seconds = max(report[name]["seconds"] for report in workers)
        diff = largest_difference(base, [np.asarray(w) for w in workers[0][name]["weights"]])
        same = workers[0][name]["weights"] == workers[1][name]["weights"]
        rows[f"2 workers (identical: {same})"] = (seconds, diff)
        for label, (step, diff) in rows.items():
            print(f"| {name} | {label} | {step:.4f} | {step / rows['one device'][0]:.2f} | "
                  f"{diff:.1e} |")


if __name__ == "__main__":
    main()
