"""Transfer learning: the freeze-then-unfreeze schedule, finetuning and pretraining."""

from kerastl.transfer.recipes import BackboneFinetuning, Budget, FineTune, FreezeThenUnfreeze, \
    Recipe, make_recipe, plan_phases, register_recipe
from kerastl.transfer.schedule import FINETUNE, FROZEN, SCRATCH, Phase, apply_phase

__all__ = ["FINETUNE", "FROZEN", "SCRATCH", "BackboneFinetuning", "Budget", "FineTune",
           "FreezeThenUnfreeze", "Phase", "Recipe",
           "apply_phase", "make_recipe", "plan_phases", "register_recipe"]
