"""A ``tf.distribute`` strategy from a name: the same jobs on one device, several GPUs,
several machines or a TPU.

=============  ==============================================================
``auto``       ``MirroredStrategy`` over the GPUs when there are two or more,
               else the default (one-device) strategy
``default``    one device
``mirrored``   ``MirroredStrategy`` over ``devices`` (default: every GPU)
``multiworker``  ``MultiWorkerMirroredStrategy``; the cluster comes from
               ``TF_CONFIG`` (see "Dead workers" below)
``tpu``        ``TPUStrategy`` on the TPU the cluster resolver finds
=============  ==============================================================

The batch size a user gives is global: each replica gets ``batch / replicas``.

Dead workers. The strategy's own peer health check (a ping every 30 s) aborts the collectives
when a worker dies, so the others end with an error instead of hanging (measured here: 22 s
after a SIGKILL). A per-collective timeout (``CommunicationOptions(timeout_seconds=...)``) is
off by default and set with ``KERASTL_COLLECTIVE_TIMEOUT=SECONDS``: it also bounds a worker
that hangs without dying, but TensorFlow keeps one sleeping thread per collective op for the
whole timeout (measured: 300 s timeout, 4 collectives a step, 1,200 extra threads after 300
steps; a DCGAN with synchronized BatchNorm reached 14,000 threads a process in two minutes
and crashed), so keep it long enough for the slowest step and expect that cost.

Under ``multiworker`` every worker runs the whole job, saves included (saving takes part in
collectives: chief-only saving deadlocks), but only the chief writes the run directory; the
others write to a temporary copy removed at the end (:func:`worker_run_dir`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import shutil
import tempfile
from pathlib import Path

from kerastl._tf import CPU_DEVICES_VARIABLE, tensorflow
from kerastl.errors import KerastlError
from kerastl.runs import RunDir

log = logging.getLogger("kerastl")

STRATEGIES = ("auto", "default", "mirrored", "multiworker", "tpu")
TIMEOUT_VARIABLE = "KERASTL_COLLECTIVE_TIMEOUT"


@dataclasses.dataclass(kw_only=True)
class ScaleSettings:
    """Where a job runs; every trainer's config has these fields (``--strategy``,
    ``--devices``, ``--scale-lr``)."""

    strategy: str = "auto"
    devices: str | None = None
    scale_lr: bool = False


def job_strategy(settings: ScaleSettings, batch_size: int, rates: tuple[str, ...]):
    """The strategy ``settings`` name, described in the log. With ``scale_lr``, the fields
    ``rates`` of ``settings`` are multiplied by the replica count, once: ``config.json`` then
    records the rates used."""
    strategy = make_strategy(settings.strategy, settings.devices)
    replicas = strategy.num_replicas_in_sync
    if replicas > 1:  # one device: nothing worth a line
        where = "" if is_chief(strategy) else f" ({worker_label(strategy)})"
        log.info("%s%s", describe(strategy, batch_size), where)
    if settings.scale_lr and replicas > 1:
        for name in rates:
            if getattr(settings, name):
                setattr(settings, name, getattr(settings, name) * replicas)
        log.info("--scale-lr: learning rates x%d", replicas)
        settings.scale_lr = False
    return strategy


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


def make_strategy(name: str = "auto", devices: str | None = None):
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
        _check_devices_exist(device_names)
        return tf.distribute.MirroredStrategy(devices=device_names)
    if name == "multiworker":
        return _multiworker_strategy()
    return _tpu_strategy()


def _check_devices_exist(device_names: list[str] | None) -> None:
    """``MirroredStrategy`` takes a device that does not exist, and its replicas then wait on
    each other forever: refuse it. Logical CPU devices must exist before TensorFlow starts
    (the kerastl command makes those ``--devices`` names; a Python caller sets
    ``KERASTL_CPU_DEVICES`` or calls :func:`kerastl._tf.request_cpu_devices` first)."""
    tf = tensorflow()
    known = {device.name.lower().replace("device:", "")
             for device in tf.config.list_logical_devices()}
    missing = [name for name in device_names or []
               if name.lower().replace("device:", "") not in known]
    if missing:
        raise KerastlError(f"no device {', '.join(missing)} in this process (it has "
                           f"{', '.join(sorted(known))}). CPU devices beyond cpu:0 must be made "
                           f"before TensorFlow starts: the kerastl command does so for "
                           f"--devices; from Python, set {CPU_DEVICES_VARIABLE}=N first")


_MULTIWORKER: list = []


def collective_timeout() -> float | None:
    """Seconds from ``KERASTL_COLLECTIVE_TIMEOUT``, or None (the default: no per-op timeout)."""
    text = os.environ.get(TIMEOUT_VARIABLE, "").strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        seconds = 0
    if seconds <= 0:
        raise KerastlError(f"{TIMEOUT_VARIABLE} takes a number of seconds. Received: {text!r}")
    return seconds


def _multiworker_strategy():
    """One per process: collectives are configured once, before TensorFlow starts, so later
    jobs in the same process share the first one's strategy."""
    tf = tensorflow()
    if not _MULTIWORKER:
        if not os.environ.get("TF_CONFIG"):
            raise KerastlError("--strategy multiworker needs TF_CONFIG naming the cluster and "
                               "this worker (see the README's 'Several machines')")
        options = tf.distribute.experimental.CommunicationOptions(
            timeout_seconds=collective_timeout())
        try:
            _MULTIWORKER.append(tf.distribute.MultiWorkerMirroredStrategy(
                communication_options=options))
        except RuntimeError as exc:
            raise KerastlError(f"cannot start the multi-worker strategy ({exc}): it must be "
                               "created before TensorFlow runs anything in this process") from None
    return _MULTIWORKER[0]


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


def validation_batch(replicas: int, global_batch: int, images: int) -> int:
    """The global batch for validation under ``replicas``: whole batches only (a replica
    with an empty share breaks synchronized BatchNorm), no larger than the validation set,
    so that a few validation images still validate. At most ``replicas - 1`` images (or the
    remainder of the last batch) go unused during training; the final evaluation, on one
    device, sees every image."""
    if replicas <= 1:
        return global_batch
    batch = min(global_batch, (images // replicas) * replicas)
    if batch == 0:
        raise KerastlError(f"{images} validation image(s) cannot be shared by {replicas} "
                           "replicas: use more validation images (--val-fraction) or fewer "
                           "devices")
    unused = images % batch
    if unused:
        log.info("validation under %d replicas: %d of %d images per epoch (whole batches of "
                 "%d); the final evaluation uses all of them", replicas, images - unused, images,
                 batch)
    return batch


def describe(strategy, global_batch: int) -> str:
    replicas = strategy.num_replicas_in_sync
    return (f"{type(strategy).__name__} with {replicas} replica(s): global batch "
            f"{global_batch}, {per_replica_batch(strategy, global_batch)} per replica")


def is_chief(strategy) -> bool:
    """Whether this process writes the run directory: the ``chief`` task when ``TF_CONFIG``
    names one, else worker 0; always, outside a multi-worker cluster."""
    resolver = getattr(strategy, "cluster_resolver", None)
    task_type = getattr(resolver, "task_type", None)
    if task_type is None:
        return True
    if "chief" in resolver.cluster_spec().as_dict():
        return task_type == "chief"
    return task_type == "worker" and int(resolver.task_id or 0) == 0


def worker_label(strategy) -> str:
    resolver = getattr(strategy, "cluster_resolver", None)
    task_type = getattr(resolver, "task_type", None)
    return f"{task_type} {resolver.task_id}" if task_type else "local"


@contextlib.contextmanager
def worker_run_dir(strategy, path: str | Path, job: str = "", overwrite: bool = False,
                   existing: bool = False):
    """The run directory this process writes for ``job``: ``path`` itself on the chief; on
    every other worker a temporary one (a copy of ``path`` when resuming an ``existing`` run),
    removed when the job ends, so that all workers save alike and only the chief's files land."""
    path = Path(path)
    if is_chief(strategy):
        if existing:
            run = RunDir(path)
            run.make_folders()
            yield run
        else:
            with RunDir.create(path, job, overwrite) as run:
                yield run
        return
    scratch = Path(tempfile.mkdtemp(prefix="kerastl-worker-"))
    try:
        if existing:
            shutil.copytree(path, scratch / path.name)
            yield RunDir(scratch / path.name)
        else:
            with RunDir.create(scratch / path.name, job) as run:
                yield run
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def synchronize_batchnorm(model) -> int:
    """Make every BatchNormalization layer of ``model`` compute its batch statistics over the
    global batch (all replicas). Without it each replica keeps moving statistics of its own
    share of the batch, and the workers' models drift apart. Returns the layers changed."""
    import keras

    changed = 0
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, keras.layers.BatchNormalization) and not layer.synchronized:
            layer.synchronized = True
            changed += 1
    return changed
