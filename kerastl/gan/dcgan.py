"""A DCGAN as a subclassed ``keras.Model`` with its own ``train_step``.

Reads top to bottom like the keras.io example it follows: ``__init__``,
``compile``, ``metrics``, ``train_step``; then sampling and serialization.
Saved as one ``.keras`` file (both networks, the EMA generator and both
optimizers' states), so a run resumes where it stopped.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kerastl._tf import keras_module, tensorflow
from kerastl.errors import KerastlError
from kerastl.conditional import class_rows
from kerastl.latents import prior_latents
from kerastl.gan.config import LOSSES
from kerastl.runs import GAN_JOBS, load_run_model
from kerastl.gan.diffaugment import diff_augment, parse_policy

keras = keras_module()

#: Adaptive augmentation's pace: at an accuracy error of 1, ``augment_p`` moves from 0 to 1
#: over this many real images (StyleGAN2-ADA uses sign(error) over 500k images, for runs of
#: millions; kerastl's runs see tens of thousands, and collapse within the first few).
ADA_IMAGES = 2000


@keras.saving.register_keras_serializable(package="kerastl")
class DCGAN(keras.Model):
    """Generator and discriminator trained against each other.

    Args:
        generator: ``latent -> image in [-1, 1]``.
        discriminator: ``image -> logit``.
        loss: ``nonsaturating`` (the DCGAN default) or ``hinge``.
        ema_decay: keep an exponential moving average of the generator's weights
            and sample from it (0 turns it off).
        diffaugment: DiffAugment policy applied to real and fake images in both
            steps, such as ``"color,translation,cutout"`` (empty: none).
        ada_target: adaptive augmentation: the discriminator's accuracy on real images to
            hold (0.8 is StyleGAN2-ADA's ``r_t = 0.6``). Each policy then reaches each image
            with a probability ``augment_p`` that starts at 0 and moves by
            ``(accuracy - ada_target) * batch / ADA_IMAGES`` per step. 0: every image is
            augmented (plain DiffAugment).

    Example:
        >>> from kerastl.gan import DCGAN, build_discriminator, build_generator
        >>> gan = DCGAN(build_generator(32, 1), build_discriminator(32, 1))
        >>> gan.compile(keras.optimizers.Adam(2e-4, 0.5), keras.optimizers.Adam(2e-4, 0.5))
        >>> gan.fit(images_in_minus1_1, epochs=5)
        >>> grid = gan.sample(16, seed=0)
    """

    def __init__(self, generator, discriminator, loss: str = "nonsaturating",
                 ema_decay: float = 0.999, diffaugment: str = "", ada_target: float = 0.0,
                 seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        if loss not in LOSSES:
            raise KerastlError(f"the GAN loss is nonsaturating or hinge. Received: {loss!r}")
        # === Networks ===
        self.generator = generator
        self.discriminator = discriminator
        shapes = generator.input_shape if isinstance(generator.input_shape, list) else [
            generator.input_shape]
        self.latent_dim = int(shapes[0][-1])
        #: Classes of a conditional GAN (its generator and discriminator take a one-hot label).
        self.num_classes = int(shapes[1][-1]) if len(shapes) > 1 else 0
        self.ema_decay = float(ema_decay or 0.0)
        self.ema_generator = None
        if self.ema_decay:
            self.ema_generator = keras.models.clone_model(generator)
            self.ema_generator.set_weights(generator.get_weights())
        # === Config ===
        self.loss_name = loss
        self.diffaugment = diffaugment or ""
        self.policy = parse_policy(self.diffaugment)
        self.ada_target = float(ada_target or 0.0) if self.policy else 0.0
        # only adaptive GANs carry the probability, so GANs saved before it still load
        self.augment_p = self.add_weight(shape=(), initializer="zeros", trainable=False,
                                         name="augment_p", aggregation="mean") \
            if self.ada_target else None
        self.seed = int(seed)
        self.seed_generator = keras.random.SeedGenerator(self.seed)  # latents, DiffAugment
        self.d_optimizer = self.g_optimizer = None
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")
        self.d_real_tracker = keras.metrics.Mean(name="d_real")
        self.d_fake_tracker = keras.metrics.Mean(name="d_fake")
        self.augment_p_tracker = keras.metrics.Mean(name="augment_p")
        self.built = True  # both networks are functional models, built already

    def call(self, latents, training=False):
        return self.sampler(latents, training=False)

    @property
    def sampler(self):
        """The generator samples come from: the EMA copy when there is one."""
        return self.ema_generator if self.ema_generator is not None else self.generator

    # --- compile -----------------------------------------------------------------------

    def compile(self, d_optimizer, g_optimizer, loss_fn=None, **kwargs):
        """Two optimizers, built here on every variable that trains, so that ``fit`` under
        a ``tf.distribute`` strategy finds them ready. ``loss_fn`` may name the loss."""
        super().compile(**kwargs)
        if loss_fn is not None:
            if loss_fn not in LOSSES:
                raise KerastlError(f"loss_fn is nonsaturating or hinge. Received: {loss_fn!r}")
            self.loss_name = loss_fn
        self.d_optimizer = _loss_scaled(keras.optimizers.get(d_optimizer))
        self.g_optimizer = _loss_scaled(keras.optimizers.get(g_optimizer))
        self.d_optimizer.build(self.discriminator.trainable_variables)
        self.g_optimizer.build(self.generator.trainable_variables)

    @property
    def metrics(self):
        trackers = [self.d_loss_tracker, self.g_loss_tracker, self.d_real_tracker,
                    self.d_fake_tracker]
        return trackers + ([self.augment_p_tracker] if self.augment_p is not None else [])

    # --- train_step --------------------------------------------------------------------

    def train_step(self, data):
        """One discriminator step, then one generator step, on a batch of real images.

        ``data`` is real images in [-1, 1] (for a conditional GAN, ``(images, one-hot
        labels)``: the fakes of each step take the real batch's labels), or ``(real,
        latents)`` (``x`` and ``y`` of ``fit``) to feed the latent vectors: reproducible runs,
        distributed comparisons.
        """
        tf = tensorflow()
        real, latents, _ = keras.utils.unpack_x_y_sample_weight(data)
        real, labels = real if self.num_classes else (real, None)
        batch = tf.shape(real)[0]
        d_latents, g_latents = (latents, latents) if latents is not None else (
            self._latents(batch), self._latents(batch))

        with tf.GradientTape() as tape:
            fake = self.generator(self._joined(d_latents, labels), training=True)
            real_logits = self.discriminator(self._joined(self._augment(real), labels),
                                             training=True)
            fake_logits = self.discriminator(self._joined(self._augment(fake), labels),
                                             training=True)
            d_losses = self._d_loss(real_logits, fake_logits)
            scaled = self._for_gradients(d_losses, self.d_optimizer)
        self._apply(self.d_optimizer, tape.gradient(scaled, self.discriminator.trainable_variables),
                    self.discriminator.trainable_variables)
        self._adapt_augmentation(real_logits)

        with tf.GradientTape() as tape:
            fake = self.generator(self._joined(g_latents, labels), training=True)
            fake_logits_g = self.discriminator(self._joined(self._augment(fake), labels),
                                               training=True)
            g_losses = self._g_loss(fake_logits_g)
            scaled = self._for_gradients(g_losses, self.g_optimizer)
        self._apply(self.g_optimizer, tape.gradient(scaled, self.generator.trainable_variables),
                    self.generator.trainable_variables)
        self._update_ema()

        self.d_loss_tracker.update_state(d_losses)
        self.g_loss_tracker.update_state(g_losses)
        self.d_real_tracker.update_state(tf.reduce_mean(tf.sigmoid(real_logits)))
        self.d_fake_tracker.update_state(tf.reduce_mean(tf.sigmoid(fake_logits)))
        if self.augment_p is not None:
            self.augment_p_tracker.update_state(self.augment_p)
        return {m.name: m.result() for m in self.metrics}

    @staticmethod
    def _joined(tensor, labels):
        return tensor if labels is None else [tensor, labels]

    def _latents(self, batch):
        return keras.random.normal((batch, self.latent_dim), seed=self.seed_generator)

    def _augment(self, images):
        if not self.policy:
            return images
        return diff_augment(images, self.policy, self.seed_generator, self.augment_p)

    def _adapt_augmentation(self, real_logits):
        """ADA: raise ``augment_p`` while the discriminator calls more than ``ada_target`` of
        the real images real (it is starting to memorise them), lower it otherwise. Each
        replica moves it by its own batch; the variable keeps the replicas' mean."""
        if self.augment_p is None:
            return
        tf = tensorflow()
        accuracy = tf.reduce_mean(tf.cast(real_logits[:, 0] > 0, tf.float32))
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        images = tf.cast(tf.shape(real_logits)[0] * replicas, tf.float32)
        step = (accuracy - self.ada_target) * images / ADA_IMAGES
        self.augment_p.assign(tf.clip_by_value(self.augment_p + step, 0.0, 1.0))

    def _d_loss(self, real_logits, fake_logits):
        """The discriminator's loss per example: real scored real, fake scored fake."""
        tf = tensorflow()
        real, fake = tf.cast(real_logits[:, 0], tf.float32), tf.cast(fake_logits[:, 0],
                                                                   tf.float32)
        if self.loss_name == "hinge":
            return tf.nn.relu(1.0 - real) + tf.nn.relu(1.0 + fake)
        return tf.nn.softplus(-real) + tf.nn.softplus(fake)

    def _g_loss(self, fake_logits):
        """The generator's loss per example: its fakes scored real."""
        tf = tensorflow()
        fake = tf.cast(fake_logits[:, 0], tf.float32)
        if self.loss_name == "hinge":
            return -fake
        return tf.nn.softplus(-fake)

    @staticmethod
    def _for_gradients(per_example, optimizer):
        """The mean over the global batch (``tf.nn.compute_average_loss``: the local sum over
        the global batch size, so replicas' gradients add up to the whole batch's), scaled for
        mixed precision."""
        loss = tensorflow().nn.compute_average_loss(per_example)
        if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
            return optimizer.scale_loss(loss)
        return loss

    @staticmethod
    def _apply(optimizer, gradients, variables):
        optimizer.apply(gradients, variables)

    def _update_ema(self):
        """Average the generator's weights; the decay warms up as ``(1 + t) / (10 + t)`` so
        that the average follows the first steps instead of the random initial weights."""
        if self.ema_generator is None:
            return
        tf = tensorflow()
        step = tf.cast(self.g_optimizer.iterations, tf.float32)
        decay = tf.minimum(self.ema_decay, (1.0 + step) / (10.0 + step))
        for average, weight in zip(self.ema_generator.weights, self.generator.weights):
            average.assign(decay * average + (1.0 - decay) * weight)

    # --- sampling ----------------------------------------------------------------------

    def latents(self, count: int, seed: int = 0) -> np.ndarray:
        """A fixed batch of latent vectors (the same for the same seed)."""
        return prior_latents(count, self.latent_dim, seed)

    def generate(self, latents: np.ndarray, labels=None, batch_size: int = 64) -> np.ndarray:
        """uint8 images (N, H, W, C) from latent vectors (of the classes ``labels``, for a
        conditional GAN; none given: every class in turn), through :attr:`sampler`.

        Called batch by batch rather than through ``predict``, which fails under a
        multi-worker strategy (and does nothing faster for a few batches)."""
        rows = class_rows(labels, len(latents), self.num_classes)
        images = [keras.ops.convert_to_numpy(self.sampler(self._joined(
            latents[i:i + batch_size], None if rows is None else rows[i:i + batch_size]),
            training=False)) for i in range(0, len(latents), batch_size)]
        return to_uint8(np.concatenate(images))

    def sample(self, count: int, seed: int = 0, labels=None) -> np.ndarray:
        return self.generate(self.latents(count, seed), labels)

    # --- serialization -----------------------------------------------------------------

    def get_config(self):
        return {**super().get_config(),
                "generator": keras.saving.serialize_keras_object(self.generator),
                "discriminator": keras.saving.serialize_keras_object(self.discriminator),
                "loss": self.loss_name, "ema_decay": self.ema_decay,
                "diffaugment": self.diffaugment, "ada_target": self.ada_target,
                "seed": self.seed}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        generator = keras.saving.deserialize_keras_object(config.pop("generator"))
        discriminator = keras.saving.deserialize_keras_object(config.pop("discriminator"))
        return cls(generator, discriminator, **config)

    def get_compile_config(self):
        if self.d_optimizer is None:
            return None
        return {"d_optimizer": keras.saving.serialize_keras_object(_inner(self.d_optimizer)),
                "g_optimizer": keras.saving.serialize_keras_object(_inner(self.g_optimizer)),
                "loss_fn": self.loss_name}

    def compile_from_config(self, config):
        """A custom ``compile`` is not re-run on load: rebuild both optimizers here, so their
        saved states load into them."""
        self.compile(d_optimizer=keras.saving.deserialize_keras_object(config["d_optimizer"]),
                     g_optimizer=keras.saving.deserialize_keras_object(config["g_optimizer"]),
                     loss_fn=config.get("loss_fn"))


def load_gan(run_or_model: str | Path) -> DCGAN:
    """The GAN of a run directory or ``.keras`` file, optimizers and their states included."""
    return load_run_model(run_or_model, GAN_JOBS, DCGAN, "GAN", "kerastl gan train")


def to_uint8(images) -> np.ndarray:
    """Generator output in [-1, 1] -> uint8."""
    return np.clip((np.asarray(images) + 1.0) * 127.5, 0, 255).round().astype(np.uint8)


def _loss_scaled(optimizer):
    """Under mixed_float16, wrap ``optimizer`` in a ``LossScaleOptimizer`` (once)."""
    policy = keras.mixed_precision.global_policy().name
    if policy == "mixed_float16" and not isinstance(optimizer,
                                                    keras.optimizers.LossScaleOptimizer):
        return keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def _inner(optimizer):
    return optimizer.inner_optimizer if isinstance(
        optimizer, keras.optimizers.LossScaleOptimizer) else optimizer
