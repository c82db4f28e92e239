"""How good a VAE is: the negative ELBO and the importance-weighted bound (IWAE, Burda et al.
2016) in nats per image, the PSNR of its reconstructions, and FID/KID of its samples.

Both bounds are upper bounds on ``-log p(x)``; the IWAE bound with ``k`` samples is at least as
tight as the ELBO (the ELBO is the IWAE bound with one sample) and tightens as ``k`` grows.
"""

from __future__ import annotations

import math

import numpy as np

from kerastl._tf import tensorflow
from kerastl.data.generative import GenerativeImages, generative_splits
from kerastl.conditional import check_same_classes, class_accuracy, run_classes
from kerastl.metrics.image_quality import psnr
from kerastl.vae.model import VAE, kl_per_dimension, to_unit

LOG_2PI = math.log(2.0 * math.pi)


def elbo_report(vae: VAE, images: GenerativeImages, batch_size: int = 64, seed: int = 0,
                iw_samples: int = 0) -> dict:
    """Mean negative ELBO, its reconstruction and KL parts (nats per image), the PSNR of the
    reconstructions (posterior mean) and, with ``iw_samples``, the IWAE bound."""
    rng = np.random.default_rng(seed)
    sums = {"neg_elbo": 0.0, "nll": 0.0, "kl": 0.0, "psnr": 0.0}
    bound = 0.0
    for batch, labels in _batches(images, batch_size, vae.num_classes):
        nll, kl = negative_elbo(vae, batch, rng, labels)
        sums["nll"] += float(np.sum(nll))
        sums["kl"] += float(np.sum(kl))
        sums["neg_elbo"] += float(np.sum(nll + kl))
        sums["psnr"] += sum(psnr(a, b, peak=255.0)
                            for a, b in zip(batch, vae.reconstruct(batch, labels)))
        if iw_samples:
            bound += float(np.sum(iwae_bound(vae, batch, iw_samples, rng, labels)))
    count = len(images)
    report = {name: round(total / count, 4) for name, total in sums.items()}
    if iw_samples:
        report[f"iwae_{iw_samples}"] = round(bound / count, 4)
    report["images"] = count
    return report


def negative_elbo(vae: VAE, images: np.ndarray, rng: np.random.Generator, labels=None):
    """Per image: ``-log p(x | z)`` for one ``z`` drawn from ``q(z | x)``, and the KL of
    ``q(z | x)`` from the prior (exact), in nats (``labels``: the images' classes, for a
    conditional model)."""
    z_mean, z_log_var = vae.encode(images, labels)
    z = z_mean + np.exp(0.5 * z_log_var) * rng.standard_normal(z_mean.shape).astype(np.float32)
    nll = _nll(vae, to_unit(images), z, vae.one_hot(labels, len(images)))
    kl = np.asarray(tensorflow().reduce_sum(kl_per_dimension(z_mean, z_log_var), axis=-1))
    return nll, kl


def iwae_bound(vae: VAE, images: np.ndarray, samples: int, rng: np.random.Generator,
               labels=None):
    """Per image, ``-log (1/k sum_k p(x, z_k) / q(z_k | x))`` with ``k = samples`` draws
    ``z_k ~ q(z | x)``: an upper bound on ``-log p(x)``, tighter than the ELBO."""
    z_mean, z_log_var = vae.encode(images, labels)
    noise = rng.standard_normal((samples, *z_mean.shape)).astype(np.float32)
    z = z_mean[None] + np.exp(0.5 * z_log_var)[None] * noise            # (k, B, D)
    pixels = np.broadcast_to(to_unit(images)[None], (samples, *images.shape))
    rows = vae.one_hot(labels, len(images))
    rows = None if rows is None else np.tile(rows, (samples, 1))
    nll = _nll(vae, pixels.reshape(-1, *images.shape[1:]), z.reshape(-1, z.shape[-1]), rows)
    log_prior = -0.5 * np.sum(np.square(z) + LOG_2PI, axis=-1)
    log_posterior = -0.5 * np.sum(np.square(noise) + LOG_2PI + z_log_var[None], axis=-1)
    log_weights = -nll.reshape(samples, -1) + log_prior - log_posterior   # (k, B)
    top = log_weights.max(axis=0)
    return -(top + np.log(np.mean(np.exp(log_weights - top), axis=0)))


def evaluate_vae(run, data: str, *, split: str = "test", batch_size: int = 64,
                 iw_samples: int = 64, seed: int = 0, extractor: str | None = None,
                 samples: int = 2048, classifier: str | None = None, classes=None,
                 per_class=None, limit=None) -> dict:
    """The report of :func:`elbo_report` on ``data``'s ``split`` (its training images where it
    has no such split), with FID/KID of ``samples`` samples through ``extractor`` if given,
    and for a conditional model :func:`class_accuracy` under a ``classifier`` run."""
    from kerastl.vae.model import load_vae

    vae = load_vae(run)
    size, channels = vae.image_shape[0], vae.image_shape[-1]
    splits = generative_splits(data, size, seed=seed, channels=channels, classes=classes,
                               per_class=per_class, limit=limit,
                               labelled=bool(vae.num_classes))
    chosen = split if split in splits else "train"
    if vae.num_classes:
        check_same_classes(run, run_classes(run), data, splits[chosen].data.class_names)
    report = {"split": chosen, **elbo_report(vae, splits[chosen], batch_size, seed,
                                             iw_samples)}
    if extractor:
        from kerastl.metrics.generative import FeatureExtractor, fid_kid

        real = np.asarray(splits[chosen].data.images[:samples])[..., :channels]
        report["fid_kid"] = fid_kid(FeatureExtractor(extractor), real,
                                    vae.sample(samples, seed + 1))
    if classifier:
        report["class_accuracy"] = class_accuracy(vae, run, classifier, seed=seed)
    return report


def _nll(vae: VAE, pixels: np.ndarray, z: np.ndarray, rows=None,
         batch_size: int = 256) -> np.ndarray:
    parts = []
    for start in range(0, len(z), batch_size):
        part = z[start:start + batch_size]
        logits = vae.decoder(part if rows is None else [part, rows[start:start + batch_size]],
                             training=False)
        parts.append(np.asarray(vae.negative_log_likelihood(
            pixels[start:start + batch_size].astype(np.float32), logits)))
    return np.concatenate(parts)


def _batches(images: GenerativeImages, batch_size: int, num_classes: int = 0):
    """``(uint8 images, their class indices or None)`` batch by batch."""
    for start in range(0, len(images), batch_size):
        end = start + batch_size
        yield (np.asarray(images.data.images[start:end])[..., :images.channels],
               images.data.labels[start:end] if num_classes else None)
