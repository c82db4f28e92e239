"""Finetuning recipes as objects, shaped as Lightning's ``BaseFinetuning``.

A :class:`Recipe` plans its phases (:meth:`Recipe.plan`) and has the two hooks Lightning's
callback has: :meth:`~Recipe.freeze_before_training` (which backbone layers train in a phase)
and :meth:`~Recipe.finetune_function` (what changes at an epoch of it: here, the backbone's
rate factors). The trainers call the hooks and know no recipe by name; a new recipe is a
subclass, not a string threaded through the phases, the schedule and the trainer.

- :class:`FreezeThenUnfreeze`: the head alone, then the top of the backbone at a tenth of the
  rate (optionally ULMFiT's gradual unfreezing and discriminative rates). The default.
- :class:`FineTune`: fastai's ``fine_tune``.
- :class:`BackboneFinetuning`: Lightning's callback of that name (the backbone's rate ramps).

A recipe of your own: subclass :class:`Recipe`, give it a ``name`` and :meth:`~Recipe.plan`
(and whichever hook differs), then :func:`register_recipe` it and pass ``recipe=NAME`` to
:func:`kerastl.finetune`. No TensorFlow is imported here: the CLI reads :data:`RECIPES`.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import ClassVar

from kerastl.errors import KerastlError
from kerastl.transfer.schedule import FINETUNE, FROZEN, SCRATCH, Phase, apply_phase, \
    parse_unfreeze

log = logging.getLogger("kerastl")


@dataclasses.dataclass(frozen=True)
class Budget:
    """What a run gives every recipe to plan with: epochs before and after unfreezing, the
    head's rate (and the unfrozen phase's, default ``lr / 10``), how much of the backbone
    opens, whether BatchNorm trains, the rate's shape within a phase, and how many block
    groups the backbone has."""

    frozen_epochs: int
    finetune_epochs: int
    lr: float
    finetune_lr: float | None = None
    unfreeze: str = "all"
    train_bn: bool = False
    schedule: str = "cosine"
    group_count: int = 1


class Recipe:
    """A freeze-then-unfreeze recipe: its phases and its two hooks."""

    name: ClassVar[str] = ""

    def plan(self, budget: Budget) -> list[Phase]:
        """The phases a run with transferred weights trains."""
        raise NotImplementedError

    def freeze_before_training(self, backbone, groups: list[list[str]],
                               phase: Phase) -> set[str]:
        """Set the backbone's ``trainable`` flags for ``phase`` (BatchNorm frozen unless the
        phase trains it); return the names of the layers that train."""
        return apply_phase(backbone, groups, phase)

    def rate_factors(self, groups: list[list[str]], phase: Phase, opened: set[str],
                     epoch_in_phase: int) -> dict[str, float] | None:
        """Each unfrozen layer's rate as a share of the head's in the phase's
        ``epoch_in_phase``-th epoch (None: one rate for all): the phase's discriminative
        rates, each block group ``phase.group_factor`` times slower than the one above."""
        if not opened or phase.group_factor == 1.0:
            return None
        return discriminative_factors(groups, phase.group_factor, opened)

    def finetune_function(self, optimizer, groups: list[list[str]], phase: Phase,
                          opened: set[str], epoch_in_phase: int) -> None:
        """Called before each epoch of ``phase`` with its optimizer (built with
        :meth:`rate_factors` of the phase's first epoch trained). Nothing by default."""


def _head_alone(budget: Budget, schedule: str) -> Phase:
    """The first phase of every recipe: the head alone at the budget's ``lr``."""
    return Phase(FROZEN, budget.frozen_epochs, budget.lr, "none", budget.train_bn, schedule)


def _with_epochs(*phases: Phase) -> list[Phase]:
    return [phase for phase in phases if phase.epochs > 0]


@dataclasses.dataclass(frozen=True)
class FreezeThenUnfreeze(Recipe):
    """``frozen_epochs`` of the head alone at ``lr``, then ``finetune_epochs`` with the
    ``unfreeze`` share of the backbone at ``finetune_lr`` (default ``lr / 10``), each phase on
    the budget's schedule. ``gradual`` (ULMFiT) opens one more block group each epoch of the
    second phase first; ``group_factor`` > 1 gives each group down a slower rate."""

    group_factor: float = 1.0
    gradual: bool = False
    name: ClassVar[str] = "freeze_then_unfreeze"

    def plan(self, budget: Budget) -> list[Phase]:
        b = budget
        rate = b.finetune_lr if b.finetune_lr is not None else b.lr / 10
        opened = min(b.finetune_epochs, b.group_count) if self.gradual else 0
        gradual = [Phase(f"unfreeze{k}", 1, rate, f"{k}blocks", b.train_bn, b.schedule,
                         self.group_factor) for k in range(1, opened + 1)]
        return _with_epochs(_head_alone(b, b.schedule), *gradual,
                            Phase(FINETUNE, b.finetune_epochs - opened, rate, b.unfreeze,
                                  b.train_bn, b.schedule, self.group_factor))


#: fastai's ``fine_tune``: the rate of the lowest block group is the head's / 100.
FINE_TUNE_RATIO = 100.0


@dataclasses.dataclass(frozen=True)
class FineTune(Recipe):
    """fastai's one call: ``frozen_epochs`` (say 1) on one-cycle at ``lr``, then everything
    unfrozen for ``finetune_epochs`` on one-cycle at ``lr / 2``, rates from the head's down to
    ``1 / ratio`` of it at the lowest block group."""

    ratio: float = FINE_TUNE_RATIO
    name: ClassVar[str] = "fine_tune"

    def plan(self, budget: Budget) -> list[Phase]:
        b = budget
        return _with_epochs(_head_alone(b, "onecycle"),
                            Phase(FINETUNE, b.finetune_epochs, b.lr / 2, "all", b.train_bn,
                                  "onecycle", factor_for_ratio(self.ratio, b.group_count)))


@dataclasses.dataclass(frozen=True)
class BackboneFinetuning(Recipe):
    """Lightning's ``BackboneFinetuning``: the backbone unfreezes at epoch ``frozen_epochs``
    and trains ``finetune_epochs`` at a rate starting at ``start`` of the head's ``lr`` and
    growing ``growth`` times per epoch until it meets it, on the budget's schedule."""

    start: float = 0.1
    growth: float = 1.5
    name: ClassVar[str] = "backbone_finetuning"

    def plan(self, budget: Budget) -> list[Phase]:
        b = budget
        return _with_epochs(_head_alone(b, b.schedule),
                            Phase(FINETUNE, b.finetune_epochs, b.lr, "all", b.train_bn,
                                  b.schedule))

    def ramp(self, epoch_in_phase: int) -> float:
        """The backbone's share of the head's rate in the unfrozen phase's epoch."""
        return min(1.0, self.start * self.growth ** epoch_in_phase)

    def rate_factors(self, groups, phase, opened, epoch_in_phase):
        return dict.fromkeys(opened, self.ramp(epoch_in_phase)) if opened else None

    def finetune_function(self, optimizer, groups, phase, opened, epoch_in_phase):
        if opened:
            optimizer.set_factors(self.rate_factors(groups, phase, opened, epoch_in_phase))
            log.info("epoch %d of phase %s: backbone rate x%.3g of the head's",
                     epoch_in_phase + 1, phase.name, self.ramp(epoch_in_phase))


#: The recipes ``--recipe`` names (the default, :class:`FreezeThenUnfreeze`, needs no name).
RECIPES = {recipe.name: recipe for recipe in (FineTune, BackboneFinetuning)}


def register_recipe(recipe: type[Recipe]) -> type[Recipe]:
    """Make a :class:`Recipe` subclass (with a ``name`` and a constructor that needs no
    argument) a value of ``recipe=`` in the Python API; ``config.json`` records the name, so
    its runs repeat and resume where it is registered. Usable as a class decorator."""
    if not (isinstance(recipe, type) and issubclass(recipe, Recipe) and recipe.name):
        raise KerastlError(f"a recipe is a Recipe subclass with a name. Received: {recipe!r}")
    RECIPES[recipe.name] = recipe
    return recipe


def make_recipe(name: str | None = None, *, group_factor: float = 1.0,
                gradual: bool = False) -> Recipe:
    """The recipe ``--recipe name`` means; without a name, freeze-then-unfreeze with
    ``--group-factor`` and ``--gradual``."""
    if name is None:
        return FreezeThenUnfreeze(group_factor, gradual)
    if name not in RECIPES:
        raise KerastlError(f"--recipe takes {', '.join(RECIPES)}. Received: {name!r}")
    if gradual or group_factor != 1.0:
        raise KerastlError(f"--recipe {name} sets its own rates and unfreezing: leave out "
                           "--gradual and --group-factor (they shape the default recipe)")
    return RECIPES[name]()


def plan_phases(budget: Budget, *, transfer: bool = True,
                recipe: Recipe | None = None) -> list[Phase]:
    """The schedule of a run: ``recipe``'s phases (freeze-then-unfreeze by default). Without
    transfer (``--weights none``) there is nothing to keep: one ``scratch`` phase of both
    budgets, every layer and BatchNorm training, at ``lr``."""
    parse_unfreeze(budget.unfreeze)
    if not transfer:
        return [Phase(SCRATCH, budget.frozen_epochs + budget.finetune_epochs, budget.lr, "all",
                      True, budget.schedule)]
    return (recipe or FreezeThenUnfreeze()).plan(budget)


def discriminative_factors(groups: list[list[str]], group_factor: float,
                           opened: set[str] | None = None) -> dict[str, float]:
    """Each backbone block group trains ``group_factor`` times slower than the one above it
    (ULMFiT's 2.6); the top group at ``1 / group_factor``, the head (not listed) at 1.

    Only the groups with a layer in ``opened`` count, so the lowest *training* group
    gets the lowest rate however many are frozen.
    """
    if group_factor <= 0:
        raise KerastlError(f"--group-factor must be positive. Received: {group_factor}")
    live = [g for g in groups if opened is None or any(name in opened for name in g)]
    factors = {}
    for depth, group in enumerate(reversed(live), start=1):
        for name in group:
            factors[name] = float(group_factor ** -depth)
    return factors


def factor_for_ratio(ratio: float, groups: int) -> float:
    """The per-group factor that puts the lowest of ``groups`` groups at ``1 / ratio`` of the
    head's rate (fastai's ``slice(lr / ratio, lr)``)."""
    return float(ratio ** (1.0 / max(groups, 1)))
