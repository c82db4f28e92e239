"""Generation: a subclassed DCGAN, DiffAugment, FreezeD transfer, sampling, FID/KID."""

from kerastl._lazy import lazy_getattr

#: Imported on first use: ``kerastl.gan.config`` stays free of TensorFlow (the CLI reads it).
_LAZY = {
    "DCGAN": "kerastl.gan.dcgan", "GanConfig": "kerastl.gan.config",
    "build_discriminator": "kerastl.gan.networks", "build_generator": "kerastl.gan.networks",
    "evaluate": "kerastl.gan.sampling", "interpolate": "kerastl.gan.sampling",
    "sample": "kerastl.gan.sampling", "GanResult": "kerastl.gan.train",
    "finetune_gan": "kerastl.gan.train", "load_gan": "kerastl.gan.dcgan",
    "resume_gan": "kerastl.gan.train", "train_gan": "kerastl.gan.train",
}
__all__ = sorted(_LAZY)


__getattr__ = lazy_getattr(__name__, _LAZY)
