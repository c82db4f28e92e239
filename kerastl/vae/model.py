"""A variational autoencoder as a subclassed ``keras.Model``.

The recipe users know is keras.io's ``examples/generative/vae.py``: an encoder to
``z_mean``/``z_log_var``, a sampling step, a decoder, and a loss of the reconstruction summed
over pixels plus the KL divergence, averaged over the batch. kerastl's :class:`VAE` keeps that
shape and adds what the recipe lacks: a validation step (Keras' own ``train_step`` and
``test_step`` call :meth:`VAE.compute_loss`, so ``fit``, ``evaluate``, ``tf.distribute`` and
kerastl's multi-worker loop all work), a KL weight (``beta``, and a warm-up through
:class:`KLWarmup`), a Bernoulli or Gaussian likelihood, the KL per latent dimension (how many
dimensions are active: posterior collapse shows as dimensions near 0 nats), and one ``.keras``
file with the optimizer's state.

Pixels enter in [0, 1]; the decoder returns logits, and ``sigmoid(logits)`` is the decoded
image (the Bernoulli mean, or the Gaussian mean).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from kerastl import blocks
from kerastl._tf import keras_module, tensorflow
from kerastl.errors import KerastlError
from kerastl.runs import VAE_JOBS, load_keras_model, require_job, resolve_model_file
from kerastl.vae.config import IMAGE_SIZES, LIKELIHOODS

keras = keras_module()
layers = keras.layers

#: A latent dimension whose KL (nats, mean over a batch) is below this carries no information.
ACTIVE_NATS = 0.01
LOG_2PI = math.log(2.0 * math.pi)


def build_encoder(image_size: int = 32, channels: int = 1, latent_dim: int = 32,
                  width: int = 32):
    """``image in [0, 1] -> down blocks (the small backbone's) -> flatten -> z_mean,
    z_log_var``."""
    images = keras.Input((image_size, image_size, channels), name="image")
    x = images
    for block, filters in enumerate(blocks.widths(image_size, width, IMAGE_SIZES), start=1):
        x = blocks.down_block(x, filters, block)
    x = layers.Flatten(name="flatten")(x)
    z_mean = layers.Dense(latent_dim, dtype="float32", name="z_mean")(x)
    z_log_var = layers.Dense(latent_dim, dtype="float32", name="z_log_var")(x)
    return keras.Model(images, [z_mean, z_log_var], name="encoder")


def build_decoder(image_size: int = 32, channels: int = 1, latent_dim: int = 32,
                  width: int = 32):
    """``z -> the generator's up blocks -> logits`` (the DCGAN's generator without tanh)."""
    latents = keras.Input((latent_dim,), name="latent")
    x = blocks.up_trunk(latents, image_size, width, sizes=IMAGE_SIZES)
    logits = layers.Conv2D(channels, 3, padding="same", dtype="float32", name="to_image")(x)
    return keras.Model(latents, logits, name="decoder")


@keras.saving.register_keras_serializable(package="kerastl")
class VAE(keras.Model):
    """An encoder and a decoder trained on the negative ELBO.

    Args:
        encoder: ``image in [0, 1] -> [z_mean, z_log_var]``.
        decoder: ``z -> logits`` of the image.
        likelihood: ``bernoulli`` or ``gaussian``.
        sigma: the Gaussian's fixed scale (in [0, 1] pixel units); None learns it.
        beta: the KL term's weight (1: the ELBO); :class:`KLWarmup` ramps it.
        seed: seeds the sampling of ``z``.

    Example:
        >>> from kerastl.vae import VAE, build_decoder, build_encoder
        >>> vae = VAE(build_encoder(28, 1, 16), build_decoder(28, 1, 16))
        >>> vae.compile(keras.optimizers.Adam(1e-3))
        >>> vae.fit(images_in_0_1, epochs=5)
        >>> vae.sample(16, seed=0).shape
        (16, 28, 28, 1)
    """

    def __init__(self, encoder, decoder, likelihood: str = "bernoulli",
                 sigma: float | None = None, beta: float = 1.0, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        if likelihood not in LIKELIHOODS:
            raise KerastlError(f"the likelihood is {' or '.join(LIKELIHOODS)}. "
                               f"Received: {likelihood!r}")
        self.encoder, self.decoder = encoder, decoder
        self.latent_dim = int(decoder.input_shape[-1])
        self.likelihood, self.sigma, self.beta, self.seed = likelihood, sigma, float(beta), seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.kl_weight = self.add_weight(shape=(), initializer=keras.initializers.Constant(beta),
                                         trainable=False, name="kl_weight")
        self.log_sigma = None
        if likelihood == "gaussian" and sigma is None:
            self.log_sigma = self.add_weight(shape=(), name="log_sigma",
                                             initializer=keras.initializers.Constant(
                                                 math.log(0.1)))
        self.nll_tracker = keras.metrics.Mean(name="nll")
        self.kl_tracker = keras.metrics.Mean(name="kl")
        self.elbo_tracker = keras.metrics.Mean(name="neg_elbo")
        self.active_tracker = keras.metrics.Mean(name="active_dims")
        self.built = True  # both networks are functional models, built already

    def call(self, images, training=False):
        """``{"logits", "z_mean", "z_log_var"}`` for ``images`` in [0, 1]; ``z`` is sampled
        from the posterior (its mean, with ``training=False`` and no sampling wanted: see
        :meth:`reconstruct`)."""
        z_mean, z_log_var = self.encoder(images, training=training)
        z = self.reparameterize(z_mean, z_log_var)
        return {"logits": self.decoder(z, training=training), "z_mean": z_mean,
                "z_log_var": z_log_var}

    def reparameterize(self, z_mean, z_log_var):
        noise = keras.random.normal(keras.ops.shape(z_mean), seed=self.seed_generator)
        return z_mean + keras.ops.exp(0.5 * z_log_var) * noise

    # --- the loss ----------------------------------------------------------------------

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The mean over the global batch of ``nll + kl_weight x kl`` per image (nats), as
        ``tf.nn.compute_average_loss`` divides it for ``tf.distribute``; the trackers record
        the reconstruction's NLL, the KL and the negative ELBO (KL weight 1) per image."""
        tf = tensorflow()
        images = tf.cast(x, tf.float32)
        nll = self.negative_log_likelihood(images, y_pred["logits"])
        kl_dims = kl_per_dimension(y_pred["z_mean"], y_pred["z_log_var"])
        kl = tf.reduce_sum(kl_dims, axis=-1)
        self.nll_tracker.update_state(nll)
        self.kl_tracker.update_state(kl)
        self.elbo_tracker.update_state(nll + kl)
        active = tf.reduce_sum(tf.cast(tf.reduce_mean(kl_dims, axis=0) > ACTIVE_NATS,
                                       tf.float32))
        self.active_tracker.update_state(active)
        return tf.nn.compute_average_loss(nll + self.kl_weight * kl)

    def negative_log_likelihood(self, images, logits):
        """``-log p(images | z)`` per image, summed over pixels (nats)."""
        tf = tensorflow()
        logits = tf.cast(logits, tf.float32)
        if self.likelihood == "bernoulli":
            per_pixel = tf.nn.sigmoid_cross_entropy_with_logits(labels=images, logits=logits)
        else:
            log_sigma = self.log_sigma if self.log_sigma is not None else \
                tf.constant(math.log(self.sigma), tf.float32)
            error = (images - tf.sigmoid(logits)) / tf.exp(log_sigma)
            per_pixel = 0.5 * tf.square(error) + log_sigma + 0.5 * LOG_2PI
        return tf.reduce_sum(per_pixel, axis=[1, 2, 3])

    # --- using the model ---------------------------------------------------------------

    def latents(self, count: int, seed: int = 0) -> np.ndarray:
        """A fixed batch of latent vectors from the prior (the same for the same seed)."""
        return np.random.default_rng(seed).standard_normal((count, self.latent_dim)) \
            .astype(np.float32)

    def encode(self, images: np.ndarray, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
        """``(z_mean, z_log_var)`` of uint8 ``images``."""
        means, log_vars = [], []
        for start in range(0, len(images), batch_size):
            z_mean, z_log_var = self.encoder(to_unit(images[start:start + batch_size]),
                                             training=False)
            means.append(keras.ops.convert_to_numpy(z_mean))
            log_vars.append(keras.ops.convert_to_numpy(z_log_var))
        return np.concatenate(means), np.concatenate(log_vars)

    def generate(self, latents: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """uint8 images (N, H, W, C) decoded from latent vectors."""
        parts = [keras.ops.convert_to_numpy(keras.ops.sigmoid(
            self.decoder(latents[i:i + batch_size], training=False)))
            for i in range(0, len(latents), batch_size)]
        return np.clip(np.concatenate(parts) * 255.0, 0, 255).round().astype(np.uint8)

    def reconstruct(self, images: np.ndarray) -> np.ndarray:
        """uint8 ``images`` through the posterior mean and back."""
        return self.generate(self.encode(images)[0])

    def sample(self, count: int, seed: int = 0) -> np.ndarray:
        return self.generate(self.latents(count, seed))

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(int(d) for d in self.encoder.input_shape[1:])

    # --- serialization -----------------------------------------------------------------

    def get_config(self):
        return {**super().get_config(),
                "encoder": keras.saving.serialize_keras_object(self.encoder),
                "decoder": keras.saving.serialize_keras_object(self.decoder),
                "likelihood": self.likelihood, "sigma": self.sigma, "beta": self.beta,
                "seed": self.seed}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        encoder = keras.saving.deserialize_keras_object(config.pop("encoder"))
        decoder = keras.saving.deserialize_keras_object(config.pop("decoder"))
        return cls(encoder, decoder, **config)


def load_vae(run_or_model: str | Path) -> VAE:
    """The VAE of a run directory or ``.keras`` file, its optimizer's state included."""
    require_job(run_or_model, VAE_JOBS, "this VAE command")
    vae = load_keras_model(resolve_model_file(run_or_model))
    if not isinstance(vae, VAE):
        raise KerastlError(f"{run_or_model} is not a kerastl VAE; train one with "
                           "'kerastl vae train'")
    return vae


def kl_per_dimension(z_mean, z_log_var):
    """``KL(N(mean, exp(log_var)) || N(0, 1))`` per example and latent dimension (nats)."""
    tf = tensorflow()
    z_mean, z_log_var = tf.cast(z_mean, tf.float32), tf.cast(z_log_var, tf.float32)
    return 0.5 * (tf.exp(z_log_var) + tf.square(z_mean) - 1.0 - z_log_var)


def to_unit(images: np.ndarray) -> np.ndarray:
    """uint8 images -> float32 in [0, 1]."""
    return np.asarray(images, np.float32) / 255.0


class KLWarmup(keras.callbacks.Callback):
    """Before each epoch, the KL weight is ``beta x min(1, (epoch + 1) / epochs)``: a linear
    warm-up over ``epochs`` epochs (0: ``beta`` throughout). Computed from the epoch, so a
    resumed run picks up the same weight."""

    def __init__(self, beta: float, epochs: int):
        super().__init__()
        self.beta, self.epochs = beta, epochs

    def weight(self, epoch: int) -> float:
        return self.beta * min(1.0, (epoch + 1) / self.epochs) if self.epochs else self.beta

    def on_epoch_begin(self, epoch, logs=None):
        self.model.kl_weight.assign(self.weight(epoch))
