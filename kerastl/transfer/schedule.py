"""Freeze-then-unfreeze as data: a short list of phases and a small mechanism.

A :class:`Phase` says how long to train, at what rate, and which part of the
backbone trains. :func:`apply_phase` sets ``trainable`` flags to match; the
caller recompiles (a fresh optimizer per phase, so no optimizer ever meets a
variable it was not built on). Gradual unfreezing or per-group rates are more
phases or more fields, not a rewrite.
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
        backbone_ramp: the backbone's rate as a share of the head's in the phase's first
            epoch, multiplied by :data:`RAMP_GROWTH` each epoch up to the head's (1: no ramp).
    """

    name: str
    epochs: int
    learning_rate: float
    unfreeze: str = "none"
    train_bn: bool = False
    schedule: str = "constant"
    group_factor: float = 1.0
    backbone_ramp: float = 1.0


#: fastai's ``fine_tune``: the rate of the lowest block group is the head's / 100.
FINE_TUNE_RATIO = 100.0
#: Lightning's ``BackboneFinetuning``: the unfrozen backbone starts at a tenth of the head's
#: rate and its rate grows 1.5x per epoch until it meets the head's.
RAMP_START, RAMP_GROWTH = 0.1, 1.5
RECIPES = ("fine_tune", "backbone_finetuning")
#: How the rate moves within a phase (see :func:`kerastl.transfer.rates.make_schedule`).
SCHEDULES = ("cosine", "onecycle", "constant")


def ramp_factor(phase: Phase, epoch_in_phase: int) -> float:
    """The backbone's share of the head's rate in the phase's ``epoch_in_phase``-th epoch."""
    return min(1.0, phase.backbone_ramp * RAMP_GROWTH ** epoch_in_phase)


def plan_phases(*, transfer: bool, frozen_epochs: int, finetune_epochs: int, lr: float,
                finetune_lr: float | None, unfreeze: str, train_bn: bool,
                schedule: str = "cosine", group_factor: float = 1.0, gradual: bool = False,
                recipe: str | None = None, group_count: int = 1) -> list[Phase]:
    """The schedule of a run.

    With transferred weights: ``frozen_epochs`` of the head alone at ``lr``, then
    ``finetune_epochs`` with the top of the backbone unfrozen at ``finetune_lr``
    (default ``lr / 10``), each phase on ``schedule``. ``gradual`` (ULMFiT)
    unfreezes one more block group each epoch of the second phase, then
    ``unfreeze``. Without transfer (``--weights none``) there is nothing to keep:
    one ``scratch`` phase of both budgets, every layer and BatchNorm training.

    ``recipe="fine_tune"`` is fastai's one call: ``frozen_epochs`` (say 1) on
    one-cycle at ``lr``, then everything unfrozen for ``finetune_epochs`` on
    one-cycle at ``lr / 2``, discriminative rates from the head's down to 1/100 of
    it at the lowest of ``group_count`` block groups. ``recipe="backbone_finetuning"`` is
    Lightning's callback of that name: the backbone unfreezes at epoch ``frozen_epochs``
    and trains ``finetune_epochs`` at a rate ramping from ``lr / 10`` up to the head's ``lr``
    (x1.5 per epoch), on ``schedule``.
    """
    parse_unfreeze(unfreeze)
    if not transfer:
        return [Phase(SCRATCH, frozen_epochs + finetune_epochs, lr, "all", True, schedule)]
    if recipe is not None:
        return _recipe(recipe, frozen_epochs, finetune_epochs, lr, train_bn, group_count,
                       schedule)
    phases = []
    if frozen_epochs > 0:
        phases.append(Phase(FROZEN, frozen_epochs, lr, "none", train_bn, schedule))
    rate = finetune_lr if finetune_lr is not None else lr / 10
    if gradual:
        opened = min(finetune_epochs, group_count)
        phases += [Phase(f"unfreeze{k}", 1, rate, f"{k}blocks", train_bn, schedule,
                         group_factor) for k in range(1, opened + 1)]
        finetune_epochs -= opened
    if finetune_epochs > 0:
        phases.append(Phase(FINETUNE, finetune_epochs, rate, unfreeze, train_bn, schedule,
                            group_factor))
    return phases


def _recipe(recipe: str, frozen_epochs: int, finetune_epochs: int, lr: float, train_bn: bool,
            group_count: int, schedule: str) -> list[Phase]:
    if recipe not in RECIPES:
        raise KerastlError(f"--recipe takes {', '.join(RECIPES)}. Received: {recipe!r}")
    from kerastl.transfer.rates import factor_for_ratio

    if recipe == "backbone_finetuning":
        return [phase for phase in (
            Phase(FROZEN, frozen_epochs, lr, "none", train_bn, schedule),
            Phase(FINETUNE, finetune_epochs, lr, "all", train_bn, schedule,
                  backbone_ramp=RAMP_START)) if phase.epochs > 0]
    phases = []
    if frozen_epochs > 0:
        phases.append(Phase(FROZEN, frozen_epochs, lr, "none", train_bn, "onecycle"))
    if finetune_epochs > 0:
        phases.append(Phase(FINETUNE, finetune_epochs, lr / 2, "all", train_bn, "onecycle",
                            factor_for_ratio(FINE_TUNE_RATIO, group_count)))
    return phases


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
