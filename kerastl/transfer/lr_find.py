"""Learning-rate finder (Smith 2015; fastai's ``lr_find``): an exponential sweep of the rate.

The model the run would train first (its first phase, as the trainer builds it: the
head on a frozen backbone when transferring, on cached features without augmentation)
takes one batch per rate, from ``start`` to ``end``
over ``steps`` batches; the loss is smoothed and the sweep stops early once it
exceeds four times its best. The suggestion is the rate where the smoothed loss
falls fastest (the steepest descent on a log-rate axis). The weights are put
back as they were: nothing trains.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from kerastl._tf import keras_module
from kerastl.errors import KerastlError

keras = keras_module()

SMOOTHING = 0.98
DIVERGENCE = 4.0


@dataclasses.dataclass
class LRFindResult:
    rates: list[float]
    losses: list[float]
    suggestion: float
    plot: Path | None = None


def lr_find(config, steps: int = 100, start: float = 1e-7, end: float = 10.0,
            plot: str | Path | None = None) -> LRFindResult:
    """Sweep the rate on the first phase of ``config`` (a :class:`FinetuneConfig`), built by
    the trainer itself: the same phases, model, data, augmentation (and feature cache)."""
    from kerastl.transfer.finetune import (PhaseTrainer, build_run_model, config_data,
                                           plan_run_phases)
    from kerastl.transfer.model import resolve_backbone

    if not 0 < start < end:
        raise KerastlError(f"the sweep needs 0 < start < end. Received: {start}, {end}")
    keras.utils.set_random_seed(config.seed)
    backbone = resolve_backbone(config.backbone, config.weights, config.image_size,
                                config.bn_momentum)
    bundle = config_data(config, backbone.meta.image_size)
    phases = plan_run_phases(config, backbone)
    model = build_run_model(config, backbone, bundle, phases, heads=[])
    first = PhaseTrainer(config, model, backbone, bundle).setup(phases[0], 0, 0)
    result = sweep(first.model, iter(first.train.repeat()), steps, start, end,
                   loss=first.model.loss)
    if plot:
        result.plot = plot_sweep(result, Path(plot))
    return result


def sweep(model, batches, steps: int = 100, start: float = 1e-7, end: float = 10.0,
          loss=None) -> LRFindResult:
    """Sweep ``model`` (recompiled with Adam on the sweep) over ``batches`` (an iterator of
    ``(images, labels)``); every weight is restored afterwards."""
    saved = [w.numpy().copy() for w in model.weights]
    # start * (end / start) ** (step / (steps - 1)): Keras' exponential decay, rising
    rate = keras.optimizers.schedules.ExponentialDecay(start, max(steps - 1, 1), end / start)
    model.compile(keras.optimizers.Adam(rate),
                  loss or keras.losses.SparseCategoricalCrossentropy())
    try:
        rates, losses = _sweep(model, batches, steps, rate)
    finally:
        for variable, value in zip(model.weights, saved):
            variable.assign(value)
    return LRFindResult(rates, losses, suggest(rates, losses))


def _sweep(model, batches, steps: int, rate):
    rates, losses, smoothed, best = [], [], 0.0, np.inf
    for step in range(steps):
        inputs, labels = next(batches)
        loss = float(model.train_on_batch(inputs, labels, return_dict=True)["loss"])
        smoothed = SMOOTHING * smoothed + (1 - SMOOTHING) * loss
        value = smoothed / (1 - SMOOTHING ** (step + 1))
        rates.append(float(rate(step)))
        losses.append(value)
        best = min(best, value)
        if not np.isfinite(value) or (step > 10 and value > DIVERGENCE * best):
            break
    return rates, losses


def suggest(rates: list[float], losses: list[float]) -> float:
    """The rate of the steepest fall of the loss against log10(rate), ignoring the blow-up."""
    if len(rates) < 3:
        raise KerastlError("the sweep stopped after fewer than 3 steps: lower --start-lr")
    losses_array = np.asarray(losses)
    usable = int(np.argmin(losses_array)) + 1
    slopes = np.gradient(losses_array[:max(usable, 3)], np.log10(rates[:max(usable, 3)]))
    return float(rates[int(np.argmin(slopes))])


def plot_sweep(result: LRFindResult, path: Path) -> Path:
    from kerastl.report import _pyplot, _save

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(result.rates, result.losses)
    ax.axvline(result.suggestion, color="red", linestyle="--",
               label=f"suggested {result.suggestion:.2g}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("smoothed training loss")
    ax.legend()
    try:
        return _save(fig, path)
    finally:
        plt.close(fig)
