"""Import TensorFlow quietly and only when a command needs it."""

import contextlib
import os
import sys
import warnings


def quiet_tensorflow() -> None:
    """Silence TensorFlow's C++ and Python log noise before it is imported."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    warnings.filterwarnings("ignore", module="tensorflow")
    warnings.filterwarnings("ignore", message=".*np.object.*")
    warnings.filterwarnings("ignore", message=".*`shuffle=True` was passed.*")


#: Logical CPU devices to make when TensorFlow starts (``--devices cpu:0,cpu:1`` sets it):
#: TensorFlow fixes its devices at its first op, so they cannot be added later.
CPU_DEVICES_VARIABLE = "KERASTL_CPU_DEVICES"


def tensorflow():
    """Return the ``tensorflow`` module, imported with its log noise off (and as many logical
    CPU devices as ``KERASTL_CPU_DEVICES`` asks for)."""
    quiet_tensorflow()
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    with silenced_stderr():
        import tensorflow as tf
        import keras  # noqa: F401 - its import also logs through absl

        _make_cpu_devices(tf)
        if not os.environ.get("TF_CONFIG"):  # a multi-worker process must configure
            tf.constant(0)  # collectives first; else the CPU notice comes with the first op

    tf.get_logger().setLevel("ERROR")
    try:
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)
    except ImportError:  # pragma: no cover - absl ships with tensorflow
        pass
    return tf


def _make_cpu_devices(tf) -> None:
    try:
        count = int(os.environ.get(CPU_DEVICES_VARIABLE) or 1)
    except ValueError:
        count = 1
    if count > 1:
        try:
            cpu = tf.config.list_physical_devices("CPU")[0]
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration()] * count)
        except RuntimeError:  # TensorFlow already started: make_strategy says so
            pass


def request_cpu_devices(devices: str | None) -> None:
    """Before TensorFlow starts: make the logical CPU devices ``devices`` names
    (``"cpu:0,cpu:1"`` -> 2). Without them, ``cpu:1`` does not exist."""
    indices = [int(part.split(":")[-1]) for part in (devices or "").lower().split(",")
               if part.strip().lstrip("/").startswith("cpu:") and part.split(":")[-1].isdigit()]
    if indices and max(indices) > 0:
        os.environ[CPU_DEVICES_VARIABLE] = str(max(indices) + 1)


@contextlib.contextmanager
def silenced_stderr():
    """Hide what native code prints to fd 2 while TensorFlow loads.

    XLA's CUDA probe logs "Could not find cuda drivers" before absl's logging is
    set up, so ``TF_CPP_MIN_LOG_LEVEL`` cannot stop it.
    """
    try:
        saved = os.dup(2)
    except OSError:  # pragma: no cover - no stderr to silence
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        sys.stderr.flush()
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def keras_module():
    """Return ``keras``, with TensorFlow imported quietly first."""
    tensorflow()
    import keras

    return keras
