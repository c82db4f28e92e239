"""kerastl: transfer learning for image recognition, generation and editing in Keras 3.

The public API is imported lazily, so ``import kerastl`` (and ``kerastl --help``)
does not start TensorFlow::

    import kerastl
    result = kerastl.finetune("path/to/images", backbone="resnet50", weights="imagenet")
    print(result.metrics["val"]["accuracy"], result.run_dir)
"""

from __future__ import annotations

from kerastl._lazy import lazy_getattr

__version__ = "0.1.0"

_LAZY = {
    "finetune": "kerastl.transfer.finetune",
    "pretrain": "kerastl.transfer.finetune",
    "FinetuneConfig": "kerastl.transfer.config",
    "FinetuneResult": "kerastl.transfer.finetune",
    "evaluate": "kerastl.inference",
    "predict": "kerastl.inference",
    "load_classifier": "kerastl.serving",
    "quickstart": "kerastl.quickstart",
    "multitask": "kerastl.transfer.finetune",
    "load_data": "kerastl.data",
    "KerastlError": "kerastl.errors",
    "QuickstartResult": "kerastl.quickstart",
    "VAE": "kerastl.vae.model",
    "train_vae": "kerastl.vae.train",
    "DCGAN": "kerastl.gan.dcgan",
    "train_gan": "kerastl.gan.train",
}

__all__ = sorted(_LAZY) + ["__version__"]


__getattr__ = lazy_getattr(__name__, _LAZY)
