"""The settings of a GAN run, with no TensorFlow imported (the CLI reads its defaults and
choices here); ``config.json`` records them to repeat or resume a run."""

from __future__ import annotations

import dataclasses

from kerastl.distribute import ScaleSettings
from kerastl.runs import GAN_JOBS
from kerastl.settings import DataSelection, RunSettings, check_choice, check_settings

#: The adversarial losses :class:`~kerastl.gan.dcgan.DCGAN` knows.
LOSSES = ("nonsaturating", "hinge")
#: The sides the DCGAN's generator can produce.
IMAGE_SIZES = (32, 64, 128)
#: A GAN epoch is one pass over the images, or at least this many images: a DCGAN needs
#: hundreds of steps before its samples differ at all, and one pass over a small folder is a
#: few dozen (measured: 2,459 icons, 38 steps per pass, collapsed after 10 passes; varied
#: after 624 steps).
MIN_EPOCH_IMAGES = 10_000
#: The discriminator's accuracy on real images that adaptive augmentation holds by default
#: (StyleGAN2-ADA's ``r_t = 0.6``).
ADA_TARGET = 0.8


@dataclasses.dataclass
class GanConfig(ScaleSettings, DataSelection, RunSettings):
    """Every setting of a GAN run; saved as ``config.json``.

    Defaults follow DCGAN (Adam 2e-4, beta_1 0.5, batch 64) with a generator
    EMA of 0.999 for sampling. An epoch is ``steps_per_epoch`` steps, or one pass over the
    images, or ``min_epoch_images`` images if a pass holds fewer (0: one pass).
    ``channels`` defaults to 1 when every image is gray. ``diffaugment`` is ``auto`` (every
    DiffAugment policy), ``none`` or policies; ``ada_target`` makes their probability adaptive
    (ADA: it rises only while the discriminator calls more than that share of real images real,
    so a large data set stays nearly unaugmented); 0 augments every image (plain DiffAugment).
    Adapting (``init``: a GAN run) keeps the source's architecture; ``freeze_d``
    freezes its lowest discriminator blocks (FreezeD); ``d_from`` seeds the
    discriminator's blocks from a classifier run on the kerastl_small backbone.
    ``conditional``: the class of each image enters the generator (one-hot, beside ``z``, and
    through conditional BatchNorm in every block) and the discriminator (projection), so
    ``sample`` can ask for a class.
    """

    data: str
    image_size: int = 32
    channels: int | None = None
    latent_dim: int = 128
    width: int = 64
    epochs: int = 10
    steps_per_epoch: int | None = None
    min_epoch_images: int = MIN_EPOCH_IMAGES
    batch_size: int = 64
    d_lr: float = 2e-4
    g_lr: float = 2e-4
    beta_1: float = 0.5
    loss: str = "nonsaturating"
    ema_decay: float = 0.999
    diffaugment: str = "auto"
    ada_target: float = ADA_TARGET
    spectral_norm: bool = False
    conditional: bool = False
    init: str | None = None
    freeze_d: int = 0
    d_from: str | None = None
    jit_compile: bool = False
    job: str = "gan"

    def __post_init__(self):
        check_settings(self, _RANGES)
        check_choice(self, "image_size", IMAGE_SIZES)
        check_choice(self, "channels", (None, 1, 3))
        check_choice(self, "loss", LOSSES)
        check_choice(self, "job", GAN_JOBS)
        self.data = str(self.data)


#: (setting, low, high, low is open): what GanConfig accepts beyond the shared settings.
_RANGES = [("latent_dim", 2, None, False), ("width", 4, None, False), ("epochs", 1, None, False),
           ("steps_per_epoch", 1, None, False), ("min_epoch_images", 0, None, False),
           ("batch_size", 1, None, False),
           ("d_lr", 0, None, True), ("g_lr", 0, None, True), ("beta_1", 0, 1, False),
           ("ema_decay", 0, 1, False), ("freeze_d", 0, None, False),
           ("ada_target", 0, 1, False)]
