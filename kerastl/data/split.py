"""Seeded, stratified splits and few-shot sampling."""

from __future__ import annotations

import numpy as np

from kerastl.data.imageset import ImageSet, parse_classes


def stratified_split(data: ImageSet, fraction: float, seed: int) -> tuple[ImageSet, ImageSet]:
    """Split off ``fraction`` of every class (at least one image of any class with two or more).

    Returns (rest, split_off). The same seed gives the same split.
    """
    rng = np.random.default_rng(seed)
    rest, held = [], []
    for label in range(len(data.class_names)):
        members = rng.permutation(np.flatnonzero(data.labels == label))
        n_held = int(round(len(members) * fraction))
        if fraction > 0 and len(members) >= 2:
            n_held = min(max(n_held, 1), len(members) - 1)
        held.append(members[:n_held])
        rest.append(members[n_held:])
    return data.take(np.sort(np.concatenate(rest))), data.take(np.sort(np.concatenate(held)))


def sample_per_class(data: ImageSet, per_class: int, seed: int) -> ImageSet:
    """Keep at most ``per_class`` images of each class, chosen with ``seed``."""
    rng = np.random.default_rng(seed)
    keep = [rng.permutation(np.flatnonzero(data.labels == label))[:per_class]
            for label in range(len(data.class_names))]
    return data.take(np.sort(np.concatenate(keep)))


def sample_limit(data: ImageSet, limit: int, seed: int) -> ImageSet:
    """Keep at most ``limit`` images in all, chosen with ``seed`` (classes as they fall)."""
    if len(data) <= limit:
        return data
    chosen = np.random.default_rng(seed).permutation(len(data))[:limit]
    return data.take(np.sort(chosen))


def narrow(data: ImageSet, classes=None, per_class: int | None = None,
           limit: int | None = None, seed: int = 0) -> ImageSet:
    """``data`` cut as every command's data options cut it: only ``classes`` (names or
    indices, ``"0-4"``), then at most ``per_class`` images of each, then ``limit`` in all."""
    classes = parse_classes(classes)
    if classes:
        data = data.select_classes(classes)
    if per_class:
        data = sample_per_class(data, per_class, seed)
    if limit:
        data = sample_limit(data, limit, seed)
    return data
