"""How the arithmetic runs: mixed precision and XLA compilation.

``--precision``: ``float32``, ``mixed_float16`` (GPUs; Keras wraps the optimizer
in a ``LossScaleOptimizer``) or ``mixed_bfloat16`` (TPUs, recent CPUs; measured
about 6x *slower* on this project's CPU, which has no native bfloat16). Output
layers stay float32 either way.

``--jit-compile auto`` is kerastl's own rule, not Keras': XLA on for backbones
of more than :data:`XLA_MIN_PARAMS` parameters on a single device (ResNet50
training measured 1.7x faster with XLA on a 2-core CPU, where Keras' ``auto``
would leave it off), off for small backbones, whose short runs spend longer
compiling than they save.
"""

from __future__ import annotations

import contextlib

from kerastl.errors import KerastlError

PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
JIT_SETTINGS = ("auto", "on", "off")
XLA_MIN_PARAMS = 5_000_000


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


def use_xla(setting, backbone_params: int, replicas: int = 1) -> bool:
    """Resolve ``auto`` for a backbone of ``backbone_params`` parameters."""
    setting = normalise_jit(setting)
    if setting != "auto":
        return setting == "on"
    return replicas == 1 and backbone_params > XLA_MIN_PARAMS
