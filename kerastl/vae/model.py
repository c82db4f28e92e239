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
from kerastl.conditional import class_rows
from kerastl.latents import prior_latents
from kerastl.runs import VAE_JOBS, load_run_model
from kerastl.vae.config import IMAGE_SIZES, LIKELIHOODS

keras = keras_module()
layers = keras.layers

#: A latent dimension whose KL (nats, mean over a batch) is below this carries no information.
ACTIVE_NATS = 0.01
LOG_2PI = math.log(2.0 * math.pi)


def build_encoder(image_size: int = 32, channels: int = 1, latent_dim: int = 32,
                  width: int = 32, num_classes: int = 0):
    """``image in [0, 1] -> down blocks (the small backbone's) -> flatten -> z_mean,
    z_log_var``; with ``num_classes``, a one-hot ``label`` joins the flattened features (the
    blocks stay the small backbone's, so a classifier can still seed them)."""
    images = keras.Input((image_size, image_size, channels), name="image")
    x = images
    for block, filters in enumerate(blocks.widths(image_size, width, IMAGE_SIZES), start=1):
        x = blocks.down_block(x, filters, block)
    x = layers.Flatten(name="flatten")(x)
    inputs = images
    if num_classes:
        label = keras.Input((num_classes,), name="label")
        x, inputs = layers.Concatenate(name="with_label")([x, label]), [images, label]
    z_mean = layers.Dense(latent_dim, dtype="float32", name="z_mean")(x)
    z_log_var = layers.Dense(latent_dim, dtype="float32", name="z_log_var")(x)
    return keras.Model(inputs, [z_mean, z_log_var], name="encoder")


def build_decoder(image_size: int = 32, channels: int = 1, latent_dim: int = 32,
                  width: int = 32, num_classes: int = 0):
    """``z -> the generator's up blocks -> logits`` (the DCGAN's generator without tanh);
    with ``num_classes``, a one-hot ``label`` is concatenated to ``z``."""
    inputs, x = blocks.latent_input(latent_dim, num_classes)
    x = blocks.up_trunk(x, image_size, width, sizes=IMAGE_SIZES)
    logits = layers.Conv2D(channels, 3, padding="same", dtype="float32", name="to_image")(x)
    return keras.Model(inputs, logits, name="decoder")


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
        shapes = decoder.input_shape if isinstance(decoder.input_shape, list) else \
            [decoder.input_shape]
        self.latent_dim = int(shapes[0][-1])
        self.num_classes = int(shapes[1][-1]) if len(shapes) > 1 else 0
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

    def call(self, inputs, training=False):
        """``{"logits", "z_mean", "z_log_var"}`` for images in [0, 1] (a conditional model
        takes ``(images, one-hot labels)``); ``z`` is sampled from the posterior (see
        :meth:`reconstruct` for its mean)."""
        images, labels = self._split(inputs)
        z_mean, z_log_var = self.encoder(self._joined(images, labels), training=training)
        z = self.reparameterize(z_mean, z_log_var)
        return {"logits": self.decoder(self._joined(z, labels), training=training),
                "z_mean": z_mean, "z_log_var": z_log_var}

    def _split(self, inputs):
        if self.num_classes:
            images, labels = inputs
            return images, labels
        return inputs, None

    @staticmethod
    def _joined(tensor, labels):
        return tensor if labels is None else [tensor, labels]

    def reparameterize(self, z_mean, z_log_var):
        noise = keras.random.normal(keras.ops.shape(z_mean), seed=self.seed_generator)
        return z_mean + keras.ops.exp(0.5 * z_log_var) * noise

    # --- the loss ----------------------------------------------------------------------

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The mean over the global batch of ``nll + kl_weight x kl`` per image (nats), as
        ``tf.nn.compute_average_loss`` divides it for ``tf.distribute``; the trackers record
        the reconstruction's NLL, the KL and the negative ELBO (KL weight 1) per image."""
        tf = tensorflow()
        images = tf.cast(self._split(x)[0], tf.float32)
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
        return prior_latents(count, self.latent_dim, seed)

    def one_hot(self, labels, count: int) -> np.ndarray | None:
        """One-hot rows for ``labels`` (:func:`kerastl.conditional.class_rows`)."""
        return class_rows(labels, count, self.num_classes)

    def encode(self, images: np.ndarray, labels=None,
               batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
        """``(z_mean, z_log_var)`` of uint8 ``images`` (and their classes, if conditional)."""
        rows = self.one_hot(labels, len(images))
        means, log_vars = [], []
        for start in range(0, len(images), batch_size):
            part = to_unit(images[start:start + batch_size])
            z_mean, z_log_var = self.encoder(self._joined(
                part, None if rows is None else rows[start:start + batch_size]), training=False)
            means.append(keras.ops.convert_to_numpy(z_mean))
            log_vars.append(keras.ops.convert_to_numpy(z_log_var))
        return np.concatenate(means), np.concatenate(log_vars)

    def generate(self, latents: np.ndarray, labels=None, batch_size: int = 64) -> np.ndarray:
        """uint8 images (N, H, W, C) decoded from latent vectors (of the classes ``labels``, if
        conditional)."""
        rows = self.one_hot(labels, len(latents))
        parts = [keras.ops.convert_to_numpy(keras.ops.sigmoid(self.decoder(self._joined(
            latents[i:i + batch_size], None if rows is None else rows[i:i + batch_size]),
            training=False))) for i in range(0, len(latents), batch_size)]
        return np.clip(np.concatenate(parts) * 255.0, 0, 255).round().astype(np.uint8)

    def reconstruct(self, images: np.ndarray, labels=None) -> np.ndarray:
        """uint8 ``images`` through the posterior mean and back."""
        return self.generate(self.encode(images, labels)[0], labels)

    def sample(self, count: int, seed: int = 0, labels=None) -> np.ndarray:
        return self.generate(self.latents(count, seed), labels)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        shape = self.encoder.input_shape
        return tuple(int(d) for d in (shape[0] if isinstance(shape, list) else shape)[1:])

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
    return load_run_model(run_or_model, VAE_JOBS, VAE, "VAE", "kerastl vae train")


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
