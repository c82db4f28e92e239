"""The images a generative model trains on: unlabelled (or with their class, for conditional
models), with the channels the model sees, as batches of floats in the model's range.
Shared by the DCGAN and the VAE."""

from __future__ import annotations

import dataclasses

import numpy as np

from kerastl._tf import tensorflow
from kerastl.data.bundle import load_data, load_images
from kerastl.data.imageset import ImageSet
from kerastl.data.pipeline import batch_reader
from kerastl.errors import KerastlError


@dataclasses.dataclass
class GenerativeImages:
    """Images (in memory, or a streamed folder decoded batch by batch) and the channels a
    model sees of them (1: the first of the three)."""

    data: ImageSet
    channels: int

    def __len__(self) -> int:
        return len(self.data)

    @property
    def size(self) -> int:
        return int(self.data.images.shape[1])


def generative_splits(spec: str, size: int, *, seed: int, channels: int | None = None,
                      val_fraction: float = 0.0, classes=None, per_class=None,
                      limit=None, labelled: bool = False) -> dict[str, GenerativeImages]:
    """The ``train`` (and ``val``, ``test`` where there are any) images of ``spec`` at ``size``;
    ``channels`` defaults to 1 when the training images are gray. ``labelled`` keeps the
    classes (a conditional model); else every image is of one class, ``image``."""
    load = load_data if labelled else load_images
    bundle = load(spec, size, val_fraction=val_fraction, seed=seed, classes=classes,
                  per_class=per_class, limit=limit)
    channels = int(channels or (1 if all_gray(bundle.train.images) else 3))
    return {name: GenerativeImages(split, channels)
            for name, split in (("train", bundle.train), ("val", bundle.val),
                                ("test", bundle.test))
            if split is not None and len(split)}


def sample_images(images: GenerativeImages, count: int, seed: int) -> np.ndarray:
    """Up to ``count`` of the images (the channels the model sees), drawn with ``seed``: the
    real images a model's samples are read against."""
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(len(images), min(count, len(images)), replace=False))
    return np.asarray(images.data.images[chosen])[..., :images.channels]


def all_gray(images) -> bool:
    """Whether the first images are gray (R = G = B)."""
    sample = np.asarray(images[:256])
    return bool(np.all(sample[..., 0] == sample[..., 1]) and
                np.all(sample[..., 1] == sample[..., 2]))


def image_batches(images: GenerativeImages, batch_size: int, *, seed: int | None,
                  low: float = -1.0, drop_remainder: bool = True, num_classes: int = 0):
    """Batches of floats in ``[low, 1]`` with the model's channels, decoded batch by batch
    from the files of a streamed folder; shuffled each epoch from ``seed`` (None: in order).
    With ``num_classes`` (a conditional model), each batch is ``((images, one-hot labels),)``:
    both are the model's input."""
    tf = tensorflow()
    if drop_remainder and len(images) < batch_size:
        raise KerastlError(f"{len(images)} images are fewer than one batch of {batch_size}: "
                           "lower --batch-size")
    read, channels = batch_reader(images.data), images.channels
    scale = (1.0 - low) / 255.0
    indices = tf.data.Dataset.range(len(images))
    if seed is not None:
        indices = indices.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    def batch(index):
        images, labels = read(index)
        pixels = tf.cast(images[..., :channels], tf.float32) * scale + low
        return ((pixels, tf.one_hot(labels, num_classes)),) if num_classes else pixels

    return (indices.batch(batch_size, drop_remainder=drop_remainder).map(batch)
            .prefetch(tf.data.AUTOTUNE))
