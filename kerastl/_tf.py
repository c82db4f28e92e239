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


def tensorflow():
    """Return the ``tensorflow`` module, imported with its log noise off."""
    quiet_tensorflow()
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    with silenced_stderr():
        import tensorflow as tf
        import keras  # noqa: F401 - its import also logs through absl

        if not os.environ.get("TF_CONFIG"):  # a multi-worker process must configure
            tf.constant(0)  # collectives first; else the CPU notice comes with the first op

    tf.get_logger().setLevel("ERROR")
    try:
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)
    except ImportError:  # pragma: no cover - absl ships with tensorflow
        pass
    return tf


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
