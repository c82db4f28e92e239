"""The training engine every trainer runs on (classifier finetune/pretrain/multitask, colour
correction, the DCGAN): the run start (:func:`start_run`: strategy, op determinism, seeds),
the phase loop (:class:`PhaseEngine`: best model, per-epoch checkpoint and resume, early
stopping, history, TensorBoard, NaN stop), the callbacks it uses, and the loop for the
strategy Keras' ``fit`` cannot run (:mod:`kerastl.engine.loop`)."""

from kerastl.engine.start import start_run

__all__ = ["start_run"]
