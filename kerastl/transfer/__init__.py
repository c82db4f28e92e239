"""Transfer learning: the freeze-then-unfreeze schedule, finetuning and pretraining."""

from kerastl.transfer.schedule import Phase, apply_phase, plan_phases

__all__ = ["Phase", "apply_phase", "plan_phases"]
