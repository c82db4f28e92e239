"""A ``tf.distribute`` strategy from a name: the same jobs on one device, several GPUs,
several machines or a TPU.

=============  ==============================================================
``auto``       ``MirroredStrategy`` over the GPUs when there are two or more,
               else the default (one-device) strategy
``default``    one device
``mirrored``   ``MirroredStrategy`` over ``devices`` (default: every GPU)
``multiworker``  ``MultiWorkerMirroredStrategy``; the cluster comes from
               ``TF_CONFIG``; collectives time out after ``timeout`` seconds
               so that a dead worker ends the run instead of hanging it
``tpu``        ``TPUStrategy`` on the TPU the cluster resolver finds
=============  ==============================================================

The batch size a user gives is global: each replica gets ``batch / replicas``.
"""

from __future__ import annotations

import logging

from kerastl._tf import tensorflow
from kerastl.errors import KerastlError

log = logging.getLogger("kerastl")

STRATEGIES = ("auto", "default", "mirrored", "multiworker", "tpu")
COLLECTIVE_TIMEOUT = 300


def parse_devices(devices: str | None) -> list[str] | None:
    """``"cpu:0,cpu:1"`` or ``"gpu:0,gpu:1"`` -> TensorFlow device names."""
    if not devices:
        return None
    names = []
    for part in devices.split(","):
        part = part.strip().lower().lstrip("/")
        if not part.startswith(("cpu:", "gpu:", "device:")):
            raise KerastlError(f"--devices takes names like cpu:0,cpu:1 or gpu:0,gpu:1. "
                               f"Received: {devices!r}")
        names.append(f"/{part}")
    return names


def make_strategy(name: str = "auto", devices: str | None = None,
                  timeout: int = COLLECTIVE_TIMEOUT):
    """The strategy ``name`` names (see the module docstring)."""
    tf = tensorflow()
    if name not in STRATEGIES:
        raise KerastlError(f"--strategy takes {', '.join(STRATEGIES)}. Received: {name!r}")
    device_names = parse_devices(devices)
    if name == "auto":
        gpus = tf.config.list_logical_devices("GPU")
        name = "mirrored" if len(gpus) > 1 or (device_names and len(device_names) > 1) \
            else "default"
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy(devices=device_names)
    if name == "multiworker":
        options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=timeout)
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    return _tpu_strategy()


def _tpu_strategy():
    tf = tensorflow()
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError) as exc:
        raise KerastlError(f"no TPU found ({str(exc).splitlines()[0]}): run on a TPU VM, or "
                           "pick another --strategy") from None
    return tf.distribute.TPUStrategy(resolver)


def per_replica_batch(strategy, global_batch: int) -> int:
    """The batch each replica sees; the global batch must split evenly."""
    replicas = strategy.num_replicas_in_sync
    if global_batch % replicas:
        raise KerastlError(f"--batch-size {global_batch} does not split over {replicas} "
                           f"replicas: use a multiple of {replicas}")
    return global_batch // replicas


def describe(strategy, global_batch: int) -> str:
    replicas = strategy.num_replicas_in_sync
    return (f"{type(strategy).__name__} with {replicas} replica(s): global batch "
            f"{global_batch}, {per_replica_batch(strategy, global_batch)} per replica")


def replica_safe_batch(count: int, batch_size: int, replicas: int) -> int:
    """A batch size near ``batch_size`` whose last batch of ``count`` still gives every replica
    an example (an empty per-replica batch fails inside BatchNorm under Keras 3.15)."""
    size = batch_size
    while replicas > 1 and 0 < count % size < replicas:
        size += 1
    return size
