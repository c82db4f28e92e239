"""How the arithmetic runs: mixed precision and XLA compilation.

``--precision``: ``float32``, ``mixed_float16`` (GPUs; Keras wraps the optimizer
in a ``LossScaleOptimizer``) or ``mixed_bfloat16`` (TPUs, recent CPUs; measured
about 6x *slower* on this project's CPU, which has no native bfloat16). Output
layers stay float32 either way.

``--jit-compile auto``: XLA on when training runs on a GPU or TPU (what TensorFlow and
Keras' own ``auto`` recommend there), off on CPUs. Measured on a 2-core AVX-512 CPU
(``benchmarks/xla_per_backbone.py``, training steps, docs/benchmarks.md): XLA was slower for
13 of 15 backbone/size pairs (ResNet50 0.66x at 224 px, EfficientNet-Lite0 0.10-0.21x,
MobileNetV3Small 0.17-0.54x) and at most 1.2x faster for the other two (InceptionV3 at 75 and
96 px), and it costs 10-30 s more before the first step. An earlier rule (XLA for
backbones over 5M parameters) came from one ResNet50 measurement at 32 px on another CPU.
"""

from __future__ import annotations

import contextlib

from kerastl.errors import KerastlError

PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
JIT_SETTINGS = ("auto", "on", "off")


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise KerastlError(f"--precision takes {', '.join(PRECISIONS)}. Received: {precision!r}")
    return precision


@contextlib.contextmanager
def precision_policy(precision: str):
    """Set Keras' global dtype policy for the models built inside; restore it after."""
    import keras

    check_precision(precision)
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(precision)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def normalise_jit(setting) -> str:
    """``True``/``False`` (older configs) or a string -> ``auto``, ``on`` or ``off``."""
    if isinstance(setting, bool):
        return "on" if setting else "off"
    text = str(setting).lower()
    if text not in JIT_SETTINGS:
        raise KerastlError(f"--jit-compile takes {', '.join(JIT_SETTINGS)}. Received: {setting!r}")
    return text


def use_xla(setting, accelerator: bool | None = None) -> bool:
    """Resolve ``auto``: XLA on a GPU or TPU (``accelerator``; None: look for one), not on a
    CPU."""
    setting = normalise_jit(setting)
    if setting != "auto":
        return setting == "on"
    return has_accelerator() if accelerator is None else accelerator


def has_accelerator() -> bool:
    """Whether TensorFlow sees a GPU or a TPU (physical devices: asking does not start the
    runtime, so logical devices can still be configured after)."""
    from kerastl._tf import tensorflow

    tf = tensorflow()
    return bool(tf.config.list_physical_devices("GPU") or tf.config.list_physical_devices("TPU"))
