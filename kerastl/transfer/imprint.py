"""Imprinting: a classification layer set from class centroids instead of trained.

With a handful of labelled images per class, a softmax layer trained on them fits those
images; the mean direction of each class's pooled features generalises better (Qi, Brown and
Lowe, "Low-Shot Learning with Imprinted Weights", CVPR 2018; measured on Lite0's ImageNet
features, Fashion-MNIST 5-9 at 10 labels per class: 0.900 against 0.860 for a trained layer,
docs/benchmarks.md). Each class's row of the kernel is the unit mean of its training images'
unit feature vectors, times one scale; the bias is zero. Before any training the layer then
picks the class whose centroid is nearest in angle (``|f| cos`` is largest where ``cos`` is,
the feature norm being the same for every class); training starts from there.

The scale (the softmax's inverse temperature) is chosen on the training images with each
image left out of its own class's centroid, so that it reflects how far an unseen image sits
from the centroids rather than how close the images that made them do.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np

from kerastl.data import ImageSet

log = logging.getLogger("kerastl")

#: The scales tried, as multiples of 1 / (median feature norm): logits up to 1,000 apart.
SCALE_GRID = np.geomspace(0.1, 1000.0, 121)


@dataclasses.dataclass(frozen=True)
class Imprint:
    """An imprinted layer: ``kernel`` (features x classes), the ``scale`` in it, and the
    classes that had no training image (their columns are zero)."""

    kernel: np.ndarray
    scale: float
    empty_classes: tuple[int, ...]


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.maximum(norms, 1e-12)


def class_centroids(features: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """(classes, dim): the unit mean of each class's unit feature vectors (zero for a class
    without images)."""
    return unit_rows(class_sums(unit_rows(features), labels, num_classes))


def class_sums(units: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    sums = np.zeros((num_classes, units.shape[1]), np.float64)
    np.add.at(sums, labels, units)
    return sums


def left_out_cosines(features: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """(images, classes): each image's cosine to every class centroid, its own class's
    centroid computed without it (a class's only image keeps the full centroid: there is no
    other)."""
    units = unit_rows(features.astype(np.float64))
    sums = class_sums(units, labels, num_classes)
    counts = np.bincount(labels, minlength=num_classes)
    cosines = units @ unit_rows(sums).T
    rows = np.arange(len(labels))
    alone = counts[labels] == 1
    without_self = unit_rows(sums[labels] - units)
    own = np.einsum("ij,ij->i", units, without_self)
    cosines[rows[~alone], labels[~alone]] = own[~alone]
    return cosines


def cross_entropy(logits: np.ndarray, labels: np.ndarray) -> float:
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float(-log_probs[np.arange(len(labels)), labels].mean())


def fit_scale(features: np.ndarray, labels: np.ndarray, num_classes: int) -> float:
    """The kernel scale whose softmax gives the left-out training images the lowest
    cross-entropy (logits are ``scale |f| cos``)."""
    norms = np.linalg.norm(features, axis=1)
    raw = left_out_cosines(features, labels, num_classes) * norms[:, None]
    unit = 1.0 / max(float(np.median(norms)), 1e-12)
    losses = [cross_entropy(scale * unit * raw, labels) for scale in SCALE_GRID]
    return float(SCALE_GRID[int(np.argmin(losses))] * unit)


def imprint(features: np.ndarray, labels: np.ndarray, num_classes: int) -> Imprint:
    """The imprinted kernel for ``features`` (images, dim) of ``labels``."""
    labels = np.asarray(labels, np.int64)
    centroids = class_centroids(features, labels, num_classes)
    scale = fit_scale(features, labels, num_classes)
    empty = tuple(int(c) for c in np.flatnonzero(np.bincount(labels, minlength=num_classes)
                                                 == 0))
    return Imprint((scale * centroids.T).astype(np.float32), scale, empty)


def imprint_heads(model, data: ImageSet, batch_size: int,
                  targets: dict[str, np.ndarray | None]) -> tuple[dict[str, Imprint], ImageSet]:
    """Set each softmax layer named in ``targets`` from the centroids of ``model``'s pooled
    features of ``data``; ``targets`` maps a layer to a lookup from ``data``'s labels to its
    own (None: the labels themselves). One forward pass over ``data``, whose features come
    back with what was imprinted (a frozen phase can train on them)."""
    from kerastl.data.pipeline import make_dataset
    from kerastl.inference import predictions
    from kerastl.task import split_at_features

    extractor, _ = split_at_features(model)  # a traced pass: no replica context needed
    features = predictions(extractor, make_dataset(data, batch_size))
    imprinted = {}
    for name, lookup in targets.items():
        layer = model.get_layer(name)
        labels = data.labels if lookup is None else np.asarray(lookup)[data.labels]
        result = imprint(features, labels, layer.units)
        layer.set_weights([result.kernel, np.zeros(layer.units, np.float32)])
        imprinted[name] = result
    return imprinted, ImageSet(features, data.labels, data.class_names)
