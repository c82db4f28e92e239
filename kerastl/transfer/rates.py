"""Learning rates: per-group rates that work with Adam, and schedules within a phase.

Scaling gradients does nothing under Adam (its update is normalised by the
gradient's own scale), so discriminative rates scale the *learning rate* per
variable: :class:`GroupedAdam` / :class:`GroupedAdamW` multiply the rate of
each variable by its layer's factor inside ``update_step``. The factors live in
an optimizer variable, so they are saved with its state and a callback can
change them between epochs (a recipe's :meth:`~kerastl.transfer.recipes.Recipe.finetune_function`,
such as a backbone rate ramping up to the head's).
"""

from __future__ import annotations

import math

from kerastl._tf import keras_module
from kerastl.errors import KerastlError
from kerastl.transfer.schedule import SCHEDULES

keras = keras_module()

#: Share of a phase's steps spent warming up under ``cosine``.
WARMUP_SHARE = 0.1


class _GroupedRates:
    """Mixin: per-layer learning-rate factors, ``{layer name: factor}`` (others 1)."""

    def __init__(self, *args, rate_factors: dict[str, float] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.rate_factors = dict(rate_factors or {})
        self._factor_values = None

    def build(self, variables):
        super().build(variables)
        self._paths = [v.path for v in variables]
        values = self._values(self.rate_factors)
        # Created with its values: Keras may build inside a traced function, where an
        # assign right after creation would not run.
        self._factor_values = self.add_variable(
            (len(variables),), initializer=lambda shape, dtype=None: values,
            name="rate_factors")

    def set_factors(self, rate_factors: dict[str, float]) -> None:
        """Change the factors (between epochs; before ``build``, the ones it will use)."""
        self.rate_factors = dict(rate_factors)
        if self._factor_values is not None:
            self._factor_values.assign(self._values(self.rate_factors))

    def _values(self, rate_factors: dict[str, float]) -> list[float]:
        return [_factor(path, rate_factors) for path in self._paths]

    def update_step(self, gradient, variable, learning_rate):
        factor = self._factor_values[self._get_variable_index(variable)]
        return super().update_step(gradient, variable,
                                   learning_rate * keras.ops.cast(factor, learning_rate.dtype))

    def get_config(self):
        return {**super().get_config(), "rate_factors": self.rate_factors}


def _factor(path: str, rate_factors: dict[str, float]) -> float:
    for part in path.split("/"):
        if part in rate_factors:
            return float(rate_factors[part])
    return 1.0


@keras.saving.register_keras_serializable(package="kerastl")
class GroupedAdam(_GroupedRates, keras.optimizers.Adam):
    """Adam with a learning-rate factor per layer (discriminative rates)."""


@keras.saving.register_keras_serializable(package="kerastl")
class GroupedAdamW(_GroupedRates, keras.optimizers.AdamW):
    """AdamW with a learning-rate factor per layer (discriminative rates)."""


@keras.saving.register_keras_serializable(package="kerastl")
class OneCycle(keras.optimizers.schedules.LearningRateSchedule):
    """One-cycle (Smith; fastai's ``fit_one_cycle``): cosine up from ``max / 25`` to ``max``
    over ``warmup`` of the steps, then cosine down to ``max / 25e4``."""

    def __init__(self, max_rate: float, total_steps: int, warmup: float = 0.25):
        self.max_rate, self.total_steps, self.warmup = float(max_rate), int(total_steps), warmup

    def __call__(self, step):
        ops = keras.ops
        step = ops.cast(step, "float32")
        up = max(1.0, self.total_steps * self.warmup)
        down = max(1.0, self.total_steps - up)
        start, end = self.max_rate / 25.0, self.max_rate / 25e4

        def cosine(low, high, progress):
            progress = ops.clip(progress, 0.0, 1.0)
            return high + (low - high) * (1 + ops.cos(math.pi * progress)) / 2

        rising = cosine(start, self.max_rate, step / up)
        falling = cosine(self.max_rate, end, (step - up) / down)
        return ops.where(step < up, rising, falling)

    def get_config(self):
        return {"max_rate": self.max_rate, "total_steps": self.total_steps,
                "warmup": self.warmup}


def make_schedule(kind: str, rate: float, total_steps: int):
    """The learning rate of one phase: ``cosine`` (linear warm-up over the first 10% of the
    steps, then cosine decay to 0), ``onecycle`` or ``constant``."""
    if kind not in SCHEDULES:
        raise KerastlError(f"--schedule takes {', '.join(SCHEDULES)}. Received: {kind!r}")
    total_steps = max(1, int(total_steps))
    if kind == "constant":
        return rate
    if kind == "onecycle":
        return OneCycle(rate, total_steps)
    warmup = int(total_steps * WARMUP_SHARE)
    return keras.optimizers.schedules.CosineDecay(
        0.0 if warmup else rate, decay_steps=max(1, total_steps - warmup),
        warmup_target=rate if warmup else None, warmup_steps=warmup)


def make_optimizer(learning_rate, weight_decay: float = 0.0,
                   rate_factors: dict[str, float] | None = None):
    """Adam, or AdamW where there is weight decay (decoupled, as AdamW's authors intend); with
    ``rate_factors`` the grouped variant."""
    if rate_factors:
        if weight_decay > 0:
            return GroupedAdamW(learning_rate, weight_decay=weight_decay,
                                rate_factors=rate_factors)
        return GroupedAdam(learning_rate, rate_factors=rate_factors)
    if weight_decay > 0:
        return keras.optimizers.AdamW(learning_rate, weight_decay=weight_decay)
    return keras.optimizers.Adam(learning_rate)


class RecipeEpochs(keras.callbacks.Callback):
    """Calls ``recipe.finetune_function`` before each epoch of ``phase`` (which began at epoch
    ``start``), with the phase's optimizer and the backbone layers it opened. Computed from
    the epoch, so a resumed run gets what an uninterrupted one got."""

    def __init__(self, recipe, optimizer, groups, phase, opened, start: int):
        super().__init__()
        self.recipe, self.optimizer, self.groups = recipe, optimizer, groups
        self.phase, self.opened, self.start = phase, set(opened), start

    def on_epoch_begin(self, epoch, logs=None):
        self.recipe.finetune_function(self.optimizer, self.groups, self.phase, self.opened,
                                      epoch - self.start)
