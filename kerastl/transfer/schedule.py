"""Freeze-then-unfreeze as data: a short list of phases and a small mechanism.

A :class:`Phase` says how long to train, at what rate, and which part of the
backbone trains. :func:`apply_phase` sets ``trainable`` flags to match; the
caller recompiles (a fresh optimizer per phase, so no optimizer ever meets a
variable it was not built on). Which phases a run trains is its recipe's plan
(:mod:`kerastl.transfer.recipes`).
"""

from __future__ import annotations

import dataclasses

from kerastl.errors import KerastlError

FROZEN, FINETUNE, SCRATCH = "frozen", "finetune", "scratch"


@dataclasses.dataclass(frozen=True)
class Phase:
    """One stretch of training.

    Attributes:
        name: ``frozen`` (head only), ``finetune`` (top of the backbone too) or
            ``scratch`` (everything, no transfer).
        epochs: epochs in this phase.
        learning_rate: the optimizer's rate for this phase.
        unfreeze: which backbone layers train: ``none``, ``all``, ``N`` (top N
            layers with weights), a fraction such as ``0.25`` (top share of those
            layers) or ``Kblocks`` (top K blocks from the registry's groups).
        train_bn: BatchNorm layers in the unfrozen part train too.
        schedule: the rate within the phase: ``cosine`` (warm-up, then cosine decay),
            ``onecycle`` or ``constant`` (:mod:`kerastl.transfer.rates`).
        group_factor: discriminative rates: each unfrozen block group trains this
            many times slower than the one above it (1: one rate for all).
    """

    name: str
    epochs: int
    learning_rate: float
    unfreeze: str = "none"
    train_bn: bool = False
    schedule: str = "constant"
    group_factor: float = 1.0


#: How the rate moves within a phase (see :func:`kerastl.transfer.rates.make_schedule`).
SCHEDULES = ("cosine", "onecycle", "constant")


def parse_unfreeze(spec: str) -> tuple[str, float]:
    """``"all"`` -> ("all", 0); ``"20"`` -> ("layers", 20); ``"0.3"`` -> ("fraction", 0.3);
    ``"2blocks"`` -> ("blocks", 2); ``"none"`` -> ("none", 0)."""
    text = str(spec).strip().lower()
    if text in ("all", "none"):
        return text, 0
    try:
        if text.endswith(("blocks", "block")):
            count = int(text.rstrip("s").removesuffix("block"))
            if count >= 1:
                return "blocks", count
        elif "." in text:
            fraction = float(text)
            if 0 < fraction <= 1:
                return "fraction", fraction
        elif int(text) >= 1:
            return "layers", int(text)
    except ValueError:
        pass
    raise KerastlError("--unfreeze takes 'all', 'none', a layer count (20), a fraction (0.25) "
                       f"or a block count (2blocks). Received: {spec!r}")


def layers_to_unfreeze(backbone, groups: list[list[str]], spec: str) -> set[str]:
    """Names of the backbone layers the ``unfreeze`` spec opens, counted from the top."""
    kind, amount = parse_unfreeze(spec)
    weighted = [layer.name for layer in backbone.layers if layer.weights]
    if kind == "none":
        return set()
    if kind == "all":
        return {layer.name for layer in backbone.layers}
    if kind == "blocks":
        return {name for group in groups[-int(amount):] for name in group}
    count = int(amount) if kind == "layers" else max(1, round(len(weighted) * amount))
    return set(weighted[-count:]) if count else set()


def apply_phase(backbone, groups: list[list[str]], phase: Phase) -> set[str]:
    """Set each backbone layer's ``trainable`` flag for ``phase``; return the unfrozen names.

    BatchNorm layers stay frozen (inference mode, moving statistics kept) unless
    ``phase.train_bn``.
    """
    import keras

    opened = layers_to_unfreeze(backbone, groups, phase.unfreeze)
    backbone.trainable = True
    for layer in backbone.layers:
        is_bn = isinstance(layer, keras.layers.BatchNormalization)
        layer.trainable = layer.name in opened and (phase.train_bn or not is_bn)
    return opened
