"""What every trainer does the same way: starting a run.

:func:`start_run` is the one run start of the finetuning, colour and GAN trainers: the
``tf.distribute`` strategy first of all (a multi-worker strategy must configure its
collectives before TensorFlow runs anything), then op determinism, then the seeds of Python,
NumPy, TensorFlow and Keras. Op determinism is on by default because parallel ``tf.data``
augmentation otherwise draws its random numbers in a different order each run (the same seed
varied by 0.19 in accuracy); it cannot be turned off again inside a process, and on a GPU it
can cost speed or refuse some ops (``--no-deterministic`` there).
"""

from __future__ import annotations

from kerastl._tf import tensorflow
from kerastl.distribute import ScaleSettings, job_strategy


def start_run(settings: ScaleSettings, batch_size: int, rates: tuple[str, ...], seed: int,
              deterministic: bool = True):
    """The strategy ``settings`` name (see :func:`kerastl.distribute.job_strategy`, which also
    scales the fields ``rates`` under ``--scale-lr``), with determinism and seeds set."""
    tf = tensorflow()
    import keras

    strategy = job_strategy(settings, batch_size, rates)
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(seed)
    return strategy
