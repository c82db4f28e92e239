"""tf.data pipeline: batches, shuffling per epoch, augmentation, one-hot mixing."""

import numpy as np
import pytest

from kerastl.data import ImageSet
from kerastl.data.pipeline import make_dataset


@pytest.fixture
def tiny_set():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (20, 8, 8, 3), dtype=np.uint8)
    return ImageSet(images, np.arange(20) % 4, ["a", "b", "c", "d"])


def test_eval_pipeline_keeps_order_and_values(tiny_set):
    images, labels = next(iter(make_dataset(tiny_set, 20)))
    assert images.dtype.name == "float32"
    np.testing.assert_array_equal(images.numpy(), tiny_set.images.astype(np.float32))
    np.testing.assert_array_equal(labels.numpy(), tiny_set.labels)


def test_training_reshuffles_each_epoch(tiny_set):
    dataset = make_dataset(tiny_set, 20, training=True, seed=1)
    first = next(iter(dataset))[1].numpy()
    second = next(iter(dataset))[1].numpy()
    assert sorted(first) == sorted(tiny_set.labels)
    assert not np.array_equal(first, second)


@pytest.mark.parametrize("augment", ["shift", "light", "randaugment"])
def test_augmentation_changes_pixels_not_shape(tiny_set, augment):
    images, _ = next(iter(make_dataset(tiny_set, 20, training=True, augment=augment)))
    assert images.shape == (20, 8, 8, 3)
    assert not np.allclose(np.sort(images.numpy().ravel()),
                           np.sort(tiny_set.images.astype(np.float32).ravel()))


def test_mixup_gives_soft_one_hot_labels(tiny_set):
    _, labels = next(iter(make_dataset(tiny_set, 20, training=True, mixup=True, one_hot=True)))
    labels = labels.numpy()
    assert labels.shape == (20, 4)
    np.testing.assert_allclose(labels.sum(axis=1), 1.0, atol=1e-5)
    assert (labels.max(axis=1) < 1.0).any()


def test_mixing_without_one_hot_is_refused(tiny_set):
    with pytest.raises(ValueError, match="one_hot"):
        make_dataset(tiny_set, 4, training=True, cutmix=True)
