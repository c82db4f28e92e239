"""VAE on Fashion-MNIST: kerastl's ``VAE`` against the keras.io recipe, then kerastl's own.

Same recipe, side by side: the encoder, decoder, latent size (2) and batch (128) of keras.io's
``examples/generative/vae.py`` (Conv 32/64 stride 2, Dense 16; its decoder mirrored), trained
in this process by (a) the recipe's own ``VAE`` (a GradientTape ``train_step``, sigmoid decoder,
binary cross-entropy) and (b) kerastl's ``VAE`` (Keras' ``train_step`` calling its
``compute_loss``; the same decoder ending in logits), alternating one epoch of each over the
60,000 training images. Reported: images per second over ``--speed-rounds`` alternating rounds
of the same 10 cached batches (best and median: this machine's speed drifts), and after the
same epochs the test negative ELBO of both models through kerastl's evaluator (the recipe has
no test step; its sigmoid output is turned back into logits).

kerastl's defaults: ``kerastl.vae.train_vae("fashion_mnist", image_size=28)`` (latent 32,
its blocks) for ``--epochs`` epochs, per seed; test negative ELBO and IWAE-64 in nats.

    python benchmarks/vae_fashion.py [--epochs 5] [--seeds 0 1 2] [--skip-defaults]

Needs Fashion-MNIST (``apt-get install dataset-fashion-mnist``).
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from kerastl._tf import keras_module, tensorflow  # noqa: E402
from kerastl.data.generative import GenerativeImages  # noqa: E402
from kerastl.data.imageset import ImageSet  # noqa: E402
from kerastl.data.sources import fashion_mnist_arrays  # noqa: E402

keras = keras_module()
tf = tensorflow()
layers = keras.layers
LATENT, BATCH = 2, 128


class Sampling(layers.Layer):
    """keras.io: z = z_mean + exp(0.5 z_log_var) * epsilon."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.seed_generator = keras.random.SeedGenerator(1337)

    def call(self, inputs):
        z_mean, z_log_var = inputs
        epsilon = keras.random.normal(keras.ops.shape(z_mean), seed=self.seed_generator)
        return z_mean + keras.ops.exp(0.5 * z_log_var) * epsilon


def recipe_encoder(sampling: bool):
    inputs = keras.Input((28, 28, 1))
    x = layers.Conv2D(32, 3, activation="relu", strides=2, padding="same")(inputs)
    x = layers.Conv2D(64, 3, activation="relu", strides=2, padding="same")(x)
    x = layers.Flatten()(x)
    x = layers.Dense(16, activation="relu")(x)
    z_mean = layers.Dense(LATENT, name="z_mean")(x)
    z_log_var = layers.Dense(LATENT, name="z_log_var")(x)
    outputs = [z_mean, z_log_var, Sampling()([z_mean, z_log_var])] if sampling \
        else [z_mean, z_log_var]
    return keras.Model(inputs, outputs, name="encoder")


def recipe_decoder(activation: str | None):
    latent = keras.Input((LATENT,))
    x = layers.Dense(7 * 7 * 64, activation="relu")(latent)
    x = layers.Reshape((7, 7, 64))(x)
    x = layers.Conv2DTranspose(64, 3, activation="relu", strides=2, padding="same")(x)
    x = layers.Conv2DTranspose(32, 3, activation="relu", strides=2, padding="same")(x)
    outputs = layers.Conv2DTranspose(1, 3, activation=activation, padding="same")(x)
    return keras.Model(latent, outputs, name="decoder")


class RecipeVAE(keras.Model):
    """keras.io's VAE, as published (its train_step, its loss)."""

    def __init__(self, encoder, decoder, **kwargs):
        super().__init__(**kwargs)
        self.encoder, self.decoder = encoder, decoder
        self.total_loss_tracker = keras.metrics.Mean(name="total_loss")
        self.reconstruction_loss_tracker = keras.metrics.Mean(name="reconstruction_loss")
        self.kl_loss_tracker = keras.metrics.Mean(name="kl_loss")

    @property
    def metrics(self):
        return [self.total_loss_tracker, self.reconstruction_loss_tracker, self.kl_loss_tracker]

    def train_step(self, data):
        with tf.GradientTape() as tape:
            z_mean, z_log_var, z = self.encoder(data)
            reconstruction = self.decoder(z)
            reconstruction_loss = keras.ops.mean(keras.ops.sum(
                keras.losses.binary_crossentropy(data, reconstruction), axis=(1, 2)))
            kl_loss = -0.5 * (1 + z_log_var - keras.ops.square(z_mean)
                              - keras.ops.exp(z_log_var))
            kl_loss = keras.ops.mean(keras.ops.sum(kl_loss, axis=1))
            total_loss = reconstruction_loss + kl_loss
        grads = tape.gradient(total_loss, self.trainable_weights)
        self.optimizer.apply_gradients(zip(grads, self.trainable_weights))
        self.total_loss_tracker.update_state(total_loss)
        self.reconstruction_loss_tracker.update_state(reconstruction_loss)
        self.kl_loss_tracker.update_state(kl_loss)
        return {m.name: m.result() for m in self.metrics}


def as_kerastl(recipe: RecipeVAE):
    """The recipe's networks seen by kerastl's evaluator: its sigmoid output as logits."""
    from kerastl.vae.model import VAE

    images = keras.Input((28, 28, 1))
    z_mean, z_log_var, _ = recipe.encoder(images)
    encoder = keras.Model(images, [z_mean, z_log_var])
    latent = keras.Input((LATENT,))
    p = keras.ops.clip(recipe.decoder(latent), 1e-7, 1 - 1e-7)
    decoder = keras.Model(latent, keras.ops.log(p) - keras.ops.log(1 - p))
    return VAE(encoder, decoder)


def timed_epoch(model, data) -> float:
    started = time.perf_counter()
    model.fit(data, epochs=1, verbose=0)
    return len(data) * BATCH / (time.perf_counter() - started)  # whole batches only


def side_by_side(train: np.ndarray, test: GenerativeImages, epochs: int,
                 speed_rounds: int) -> list[dict]:
    from kerastl.vae.evaluate import elbo_report
    from kerastl.vae.model import VAE

    keras.utils.set_random_seed(0)
    recipe = RecipeVAE(recipe_encoder(True), recipe_decoder("sigmoid"))
    recipe.compile(keras.optimizers.Adam())
    ours = VAE(recipe_encoder(False), recipe_decoder(None))
    ours.compile(keras.optimizers.Adam())
    models = {"recipe": recipe, "kerastl": ours}
    data = tf.data.Dataset.from_tensor_slices(train).shuffle(len(train), seed=0) \
        .batch(BATCH, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
    for epoch in range(epochs):  # the same epochs for both, taken in turn
        for name in (("recipe", "kerastl") if epoch % 2 else ("kerastl", "recipe")):
            print(f"epoch {epoch + 1} {name}: {timed_epoch(models[name], data):.0f} img/s",
                  flush=True)
    rates = speed_rounds_of(models, train, speed_rounds)
    rows = []
    for name, model in (("recipe", as_kerastl(recipe)), ("kerastl", ours)):
        report = elbo_report(model, test, 256, seed=0, iw_samples=0)
        rows.append({"model": {"recipe": "keras.io recipe", "kerastl": "kerastl VAE"}[name],
                     "best": float(np.max(rates[name])), "median": float(np.median(rates[name])),
                     "test_neg_elbo": report["neg_elbo"], "nll": report["nll"],
                     "kl": report["kl"]})
    return rows


def speed_rounds_of(models: dict, train: np.ndarray, rounds: int) -> dict[str, list[float]]:
    """Images per second of each model over the same 10 cached batches, ``rounds`` times in
    turn: this machine's speed drifts (whole stretches run at a lower, capped rate), so only
    rounds next to each other compare, and the best round is the model's own speed."""
    batches = tf.data.Dataset.from_tensor_slices(train[:10 * BATCH]).batch(BATCH).cache()
    rates = {name: [] for name in models}
    for _ in range(rounds):
        for name, model in models.items():
            rates[name].append(timed_epoch(model, batches))
    return rates


def kerastl_defaults(seed: int, epochs: int, runs: str) -> dict:
    from kerastl.vae import train_vae
    from kerastl.vae.evaluate import evaluate_vae

    result = train_vae("fashion_mnist", image_size=28, epochs=epochs, seed=seed,
                       runs_dir=runs, name=f"defaults-{seed}", verbose=0)
    report = evaluate_vae(result.run_dir, "fashion_mnist", iw_samples=64, batch_size=128)
    return {"seed": seed, "test_neg_elbo": report["neg_elbo"], "iwae_64": report["iwae_64"],
            "kl": report["kl"], "psnr": report["psnr"],
            "active_dims": result.history[-1].get("val_active_dims"),
            "train_s": result.metrics["train_seconds"], "run": str(result.run_dir)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--skip-defaults", action="store_true")
    parser.add_argument("--skip-recipe", action="store_true")
    parser.add_argument("--speed-rounds", type=int, default=30)
    parser.add_argument("--runs", default=None)
    parser.add_argument("--train-images", type=int, default=None,
                        help="Train on the first N images only (a quick check).")
    args = parser.parse_args()
    (train_x, _), (test_x, _) = fashion_mnist_arrays()
    train = train_x[:args.train_images, ..., None].astype(np.float32) / 255.0
    test_images = np.repeat(test_x[..., None], 3, axis=-1)
    test = GenerativeImages(ImageSet(test_images, np.zeros(len(test_x), np.int64), ["all"]), 1)
    print(f"{platform.node()} {os.cpu_count()} cores, TF {tf.__version__}, "
          f"Keras {keras.__version__}")
    if not args.skip_recipe:
        rows = side_by_side(train, test, args.epochs, args.speed_rounds)
        print(f"\n| model | img/s best of {args.speed_rounds} | median | test -ELBO (nats) | "
              "NLL | KL |")
        print("| --- | --- | --- | --- | --- | --- |")
        for row in rows:
            print(f"| {row['model']} | {row['best']:.0f} | {row['median']:.0f} | "
                  f"{row['test_neg_elbo']:.2f} | {row['nll']:.2f} | {row['kl']:.2f} |")
        print(f"\nspeed kerastl / recipe: best {rows[1]['best'] / rows[0]['best']:.2f}x, "
              f"median {rows[1]['median'] / rows[0]['median']:.2f}x; test -ELBO kerastl - "
              f"recipe: {rows[1]['test_neg_elbo'] - rows[0]['test_neg_elbo']:+.2f} nats")
    if not args.skip_defaults:
        runs = args.runs or tempfile.mkdtemp(prefix="vae_bench_")
        results = [kerastl_defaults(seed, args.epochs, runs) for seed in args.seeds]
        print("\n| seed | test -ELBO | IWAE-64 | KL | PSNR dB | active dims | train s |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for r in results:
            print(f"| {r['seed']} | {r['test_neg_elbo']:.2f} | {r['iwae_64']:.2f} | "
                  f"{r['kl']:.2f} | {r['psnr']:.2f} | {r['active_dims']} | {r['train_s']} |")
        print(f"mean test -ELBO {np.mean([r['test_neg_elbo'] for r in results]):.2f}, "
              f"IWAE-64 {np.mean([r['iwae_64'] for r in results]):.2f}; runs in {runs}")


if __name__ == "__main__":
    main()
