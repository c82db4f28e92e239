"""Sample diversity and the collapse warning a GAN run prints."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from kerastl.metrics.diversity import COLLAPSE_BELOW, diversity_ratio, sample_diversity


def shapes(count: int, seed: int = 0) -> np.ndarray:
    """Squares of random place, size and colour on black: varied at 8x8."""
    rng = np.random.default_rng(seed)
    images = np.zeros((count, 32, 32, 3), np.uint8)
    for image in images:
        top, left = rng.integers(0, 20, 2)
        side = rng.integers(6, 12)
        image[top:top + side, left:left + side] = rng.integers(60, 256, 3)
    return images


def test_one_image_repeated_has_no_diversity_and_varied_images_have_some():
    real = shapes(32)
    assert sample_diversity(np.repeat(real[:1], 32, axis=0)) == pytest.approx(0.0, abs=1e-9)
    assert sample_diversity(real) > 0.1
    assert diversity_ratio(shapes(32, seed=1), real) == pytest.approx(1.0, abs=0.3)


def test_fine_noise_textures_count_as_collapsed():
    """The failure seen in the wild: every sample a different draw of one high-frequency
    texture. Pooled to 8x8, they are all the same gray."""
    rng = np.random.default_rng(0)
    checker = (np.indices((32, 32)).sum(axis=0) % 2 * 255).astype(np.uint8)[..., None]
    noisy = np.clip(checker + rng.normal(0, 20, (32, 32, 32, 3)), 0, 255).astype(np.uint8)
    assert diversity_ratio(noisy, shapes(32)) < COLLAPSE_BELOW


class _Generator:
    """A model stand-in with ``generate``: the callback's only contact with the model."""

    def __init__(self, images):
        self.images = images

    def generate(self, latents):
        return self.images


def test_collapse_watch_logs_the_figure_and_warns_once(caplog, monkeypatch):
    from kerastl.engine.callbacks import CollapseWatch

    monkeypatch.setattr(logging.getLogger("kerastl"), "propagate", True)  # the CLI turns it off
    real = shapes(16)
    watch = CollapseWatch(np.zeros((16, 4)), real, "try X")
    watch.set_model(_Generator(np.repeat(real[:1], 16, axis=0)))
    logs = {}
    with caplog.at_level(logging.WARNING, logger="kerastl"):
        watch.on_epoch_end(0, logs)
        watch.on_epoch_end(1, {})
    assert logs["diversity"] == pytest.approx(0.0, abs=1e-9)
    warnings = [r.getMessage() for r in caplog.records if "collapsed" in r.getMessage()]
    assert len(warnings) == 1 and "epoch 1" in warnings[0] and "try X" in warnings[0]
    early = CollapseWatch(np.zeros((16, 4)), real, "try X", min_steps=10)
    early.set_model(_Generator(np.repeat(real[:1], 16, axis=0)))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="kerastl"):
        early.on_epoch_begin(0)
        early.on_train_batch_end(4)
        early.on_epoch_end(0, {})  # 5 steps: an untrained generator's samples are alike
        assert not caplog.records
        early.on_epoch_begin(1)
        early.on_train_batch_end(4)
        early.on_epoch_end(1, {})  # 10 steps
    assert len(caplog.records) == 1 and "epoch 2" in caplog.records[0].getMessage()
    healthy = CollapseWatch(np.zeros((16, 4)), real, "try X")
    healthy.set_model(_Generator(shapes(16, seed=2)))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="kerastl"):
        healthy.on_epoch_end(0, {})
    assert not caplog.records
