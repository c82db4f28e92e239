"""kerastl's own training loop, for the strategy Keras' ``fit`` cannot use.

Keras 3's ``fit`` fails under ``MultiWorkerMirroredStrategy`` (keras#20585: its data
adapter meets the distributed batch as a ``PerReplica`` value it cannot convert). :func:`fit`
takes ``model.fit``'s arguments and, under that strategy, runs the model's own
``train_step``/``test_step`` through ``strategy.run`` on a distributed dataset, with the same
Keras callbacks and epoch logs, so the finetuning, GAN and colour trainers keep their phases,
checkpoints and run-directory outputs. Every other strategy goes to ``model.fit``.

Every worker runs the same steps: datasets must give each worker the same number of batches
(``drop_remainder``), or a collective waits for a batch that never comes (until the strategy's
health check, or ``KERASTL_COLLECTIVE_TIMEOUT``, ends the run).
"""

from __future__ import annotations

import contextlib

from kerastl._tf import tensorflow
from kerastl.errors import TrainingError


def needs_own_loop(strategy) -> bool:
    return isinstance(strategy, tensorflow().distribute.MultiWorkerMirroredStrategy)


def fit(model, train, *, epochs: int, initial_epoch: int = 0, validation_data=None,
        callbacks=(), verbose=1, steps_per_epoch: int | None = None, class_weight=None,
        own_loop: bool | None = None):
    """``model.fit(train, ...)``, or kerastl's loop where the strategy needs it (``own_loop``
    forces the choice, as the tests do to compare the two)."""
    strategy = tensorflow().distribute.get_strategy()
    if own_loop is None:
        own_loop = needs_own_loop(strategy)
    if not own_loop:
        return model.fit(train, validation_data=validation_data, initial_epoch=initial_epoch,
                         epochs=epochs, steps_per_epoch=steps_per_epoch, callbacks=callbacks,
                         class_weight=class_weight, verbose=verbose)
    return OwnLoop(model, strategy).fit(
        train, epochs=epochs, initial_epoch=initial_epoch, validation_data=validation_data,
        callbacks=callbacks, verbose=verbose, steps_per_epoch=steps_per_epoch,
        class_weight=class_weight)


class OwnLoop:
    """``fit`` for one model under one strategy: the model's steps, run on every replica."""

    def __init__(self, model, strategy):
        self.model, self.strategy = model, strategy
        self._train_step = self._distributed(model.train_step)
        self._test_step = self._distributed(model.test_step)

    def fit(self, train, *, epochs, initial_epoch=0, validation_data=None, callbacks=(),
            verbose=1, steps_per_epoch=None, class_weight=None):
        import keras

        model = self.model
        if class_weight:
            train = train.map(_class_weight_map(class_weight))
        self._build(train)
        batches = _Batches(self.strategy.experimental_distribute_dataset(train), steps_per_epoch)
        val = (self.strategy.experimental_distribute_dataset(validation_data)
               if validation_data is not None else None)
        callbacks = keras.callbacks.CallbackList(
            list(callbacks), add_history=True, add_progbar=verbose != 0, verbose=verbose,
            epochs=epochs, steps=steps_per_epoch or _cardinality(train), model=model)
        model.stop_training = False
        callbacks.on_train_begin()
        epoch_logs = {}
        for epoch in range(initial_epoch, epochs):
            model.reset_metrics()
            callbacks.on_epoch_begin(epoch)
            with _cluster_errors():
                for step, batch in enumerate(batches.epoch()):
                    callbacks.on_train_batch_begin(step)
                    logs = _floats(self._train_step(batch))
                    callbacks.on_train_batch_end(step, logs)
                    if model.stop_training:
                        break
                epoch_logs = _floats(model.get_metrics_result())
                if val is not None:
                    epoch_logs.update({f"val_{k}": v for k, v in self.evaluate(val).items()})
            callbacks.on_epoch_end(epoch, epoch_logs)
            if model.stop_training:
                break
        callbacks.on_train_end(epoch_logs)
        return model.history

    def evaluate(self, distributed_data) -> dict[str, float]:
        """Mean metrics over ``distributed_data`` (already distributed), all replicas pooled."""
        self.model.reset_metrics()
        for batch in distributed_data:
            self._test_step(batch)
        return _floats(self.model.get_metrics_result())

    def _distributed(self, step):
        """``step`` on every replica in one graph. The step's logs are this worker's first
        replica's (progress only: epoch logs come from the metrics, pooled exactly), since
        every collective op costs (see :mod:`kerastl.distribute`)."""
        tf = tensorflow()
        strategy = self.strategy

        @tf.function
        def run(batch):
            logs = strategy.run(step, args=(batch,))
            return {name: strategy.experimental_local_results(value)[0]
                    for name, value in logs.items()}
        return run

    def _build(self, train) -> None:
        """Build metrics, losses and optimizer variables before tracing, as ``fit`` does:
        a variable created inside ``strategy.run`` is an error."""
        if getattr(self.model, "_distribute_strategy", None) is None:
            return
        first = next(iter(train))
        self.model._maybe_symbolic_build(data_batch=first)


@contextlib.contextmanager
def _cluster_errors():
    """A worker that died or stopped answering: one line, not TensorFlow's page."""
    tf = tensorflow()
    try:
        yield
    except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError,
            tf.errors.CancelledError) as exc:
        first = next((line for line in str(exc).splitlines() if line.strip()), "")
        raise TrainingError(f"the multi-worker cluster broke off ({type(exc).__name__}: "
                            f"{first[:200]}): a worker died or stopped answering; restart "
                            "every worker (finetune runs resume with --resume)") from None


class _Batches:
    """One epoch of distributed batches: the whole dataset, or ``steps`` batches drawn from
    one iterator that lives across epochs (for repeated datasets)."""

    def __init__(self, distributed, steps: int | None):
        self.distributed, self.steps, self._iterator = distributed, steps, None

    def epoch(self):
        if self.steps is None:
            yield from self.distributed
            return
        if self._iterator is None:
            self._iterator = iter(self.distributed)
        for _ in range(self.steps):
            yield next(self._iterator)


def _class_weight_map(class_weight: dict[int, float]):
    """``(x, y)`` -> ``(x, y, weight of y)``, as ``fit(class_weight=...)`` does."""
    tf = tensorflow()
    table = tf.constant([class_weight.get(c, 1.0) for c in range(max(class_weight) + 1)],
                        tf.float32)

    def add_weight(x, y):
        return x, y, tf.gather(table, tf.cast(tf.reshape(y, [-1]), tf.int32))
    return add_weight


def _cardinality(dataset) -> int | None:
    count = int(dataset.cardinality())
    return count if count >= 0 else None


def _floats(logs) -> dict[str, float]:
    return {name: float(value) for name, value in logs.items()}
