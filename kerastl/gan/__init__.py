"""Generation: a subclassed DCGAN, DiffAugment, FreezeD transfer, sampling, FID/KID."""

from kerastl.gan.dcgan import DCGAN
from kerastl.gan.networks import build_discriminator, build_generator
from kerastl.gan.sampling import evaluate, interpolate, sample
from kerastl.gan.train import GanConfig, GanResult, finetune_gan, load_gan, resume_gan, train_gan

__all__ = ["DCGAN", "GanConfig", "GanResult", "build_discriminator", "build_generator",
           "evaluate", "finetune_gan", "interpolate", "load_gan", "resume_gan", "sample",
           "train_gan"]
