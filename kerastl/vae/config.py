"""The settings of a VAE run, with no TensorFlow imported (the CLI reads its defaults and
choices here); ``config.json`` records them to repeat or resume a run."""

from __future__ import annotations

import dataclasses

from kerastl.distribute import ScaleSettings
from kerastl.runs import VAE_JOBS
from kerastl.settings import DataSelection, RunSettings, check_choice, check_settings

#: How a decoded pixel is scored: Bernoulli (binary cross-entropy on logits) or Gaussian.
LIKELIHOODS = ("bernoulli", "gaussian")
#: The sides the VAE's encoder and decoder are built for.
IMAGE_SIZES = (28, 32, 64)


@dataclasses.dataclass
class VaeConfig(ScaleSettings, DataSelection, RunSettings):
    """Every setting of a VAE run; saved as ``config.json``.

    The loss is the negative ELBO per image in nats: the reconstruction's negative
    log-likelihood summed over pixels plus ``beta`` x the KL divergence of the posterior from
    the standard normal prior, summed over latent dimensions. ``kl_warmup`` epochs ramp the KL
    weight linearly from 0 to ``beta`` (against posterior collapse early in training).
    ``likelihood`` is ``bernoulli`` (pixels in [0, 1] as probabilities) or ``gaussian`` with a
    learned scale, or the fixed ``sigma`` given. ``conditional``: the class enters the encoder
    and the decoder (one-hot), so samples can be asked for by class. The encoder's blocks are
    the small backbone's (``encoder_from``: a classifier run on ``kerastl_small`` seeds them);
    adapting (``init``: a VAE run) keeps the source's architecture.
    """

    data: str
    image_size: int = 32
    channels: int | None = None
    latent_dim: int = 32
    width: int = 32
    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3
    beta: float = 1.0
    kl_warmup: int = 0
    likelihood: str = "bernoulli"
    sigma: float | None = None
    conditional: bool = False
    val_fraction: float = 0.1
    patience: int | None = None
    init: str | None = None
    encoder_from: str | None = None
    jit_compile: bool = False
    job: str = "vae"

    def __post_init__(self):
        check_settings(self, _RANGES)
        check_choice(self, "image_size", IMAGE_SIZES)
        check_choice(self, "channels", (None, 1, 3))
        check_choice(self, "likelihood", LIKELIHOODS)
        check_choice(self, "job", VAE_JOBS)
        self.data = str(self.data)


#: (setting, low, high, low is open): what VaeConfig accepts beyond the shared settings.
_RANGES = [("latent_dim", 1, None, False), ("width", 4, None, False), ("epochs", 1, None, False),
           ("batch_size", 1, None, False), ("lr", 0, None, True), ("beta", 0, None, False),
           ("kl_warmup", 0, None, False), ("sigma", 0, None, True),
           ("val_fraction", 0, 0.5, False), ("patience", 1, None, False)]
