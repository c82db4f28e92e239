"""Generation: a subclassed DCGAN, DiffAugment, FreezeD transfer, sampling."""

from kerastl.gan.dcgan import DCGAN
from kerastl.gan.networks import build_discriminator, build_generator

__all__ = ["DCGAN", "build_discriminator", "build_generator"]
