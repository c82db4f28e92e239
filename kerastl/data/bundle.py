"""Load a data spec into train / validation / test splits ready for a model."""

from __future__ import annotations

import dataclasses
import logging
from typing import Sequence

import numpy as np

from kerastl.data.images import SkippedFiles
from kerastl.data.imageset import ImageSet, parse_classes
from kerastl.data.sources import UNLABELLED, at_size, load_splits, load_unlabelled_splits
from kerastl.data.split import narrow, sample_limit, sample_per_class, stratified_split
from kerastl.errors import DataError

log = logging.getLogger(__name__)


@dataclasses.dataclass
class DataBundle:
    """The splits of one data spec at one image size, with what was skipped."""

    spec: str
    train: ImageSet
    val: ImageSet
    test: ImageSet | None
    skipped: SkippedFiles

    @property
    def class_names(self) -> list[str]:
        return self.train.class_names

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def fingerprint(self) -> str:
        parts = [self.train.fingerprint(), self.val.fingerprint()]
        if self.test is not None:
            parts.append(self.test.fingerprint())
        return "-".join(p[:8] for p in parts)

    def describe(self) -> dict:
        """Counts per split, for config.json and the log."""
        return {"spec": self.spec, "classes": self.class_names,
                "train": len(self.train), "val": len(self.val),
                "test": len(self.test) if self.test is not None else 0,
                "skipped": self.skipped.as_dict(), "fingerprint": self.fingerprint()}


def load_data(spec: str, image_size: int | tuple[int, int], *, val_fraction: float = 0.2,
              seed: int = 0, classes: str | Sequence[str | int] | None = None,
              per_class: int | None = None, limit: int | None = None) -> DataBundle:
    """Read ``spec`` into a :class:`DataBundle` of uint8 RGB images at ``image_size``.

    Args:
        spec: a folder, ``tfds:NAME[:SPLIT]``, ``fashion_mnist`` or ``sample``.
        image_size: side (or (height, width)) every image is resized to.
        val_fraction: share of each class held out for validation where the source
            has no validation split of its own.
        seed: seeds the split and the few-shot sample.
        classes: keep only these classes (names or indices), in this order.
        per_class: few-shot: keep at most this many labelled images per class of
            the training split, chosen with ``seed``. Where the source has no
            validation split, validation is carved from these same images
            (``val_fraction`` of them, at least one per class), so that model
            selection sees only the few labels; a test split is never cut.
        limit: then keep at most this many training images in all (seeded), as
            ``per_class`` does (validation is carved from them).
    """
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    skipped = SkippedFiles()
    splits = load_splits(spec, size, skipped, resize=False)
    if skipped.total:
        log.warning("%s", skipped.summary())
    classes = parse_classes(classes)
    if classes:
        splits = {name: part.select_classes(classes) for name, part in splits.items()}
    train = splits["train"]
    _check_classes(spec, train)
    train = narrow(train, per_class=per_class, limit=limit, seed=seed)
    val = splits.get("val")
    if val is None:
        train, val = stratified_split(train, val_fraction, seed)
        _warn_unvalidated(spec, train, val)
    return resized_bundle(spec, size, skipped, train, val, splits.get("test"))


def resized_bundle(spec: str, size: tuple[int, int], skipped: SkippedFiles, train: ImageSet,
                   val: ImageSet, test: ImageSet | None) -> DataBundle:
    """The bundle of the selected images, each at ``size`` (only these are resized)."""
    return DataBundle(spec=str(spec), train=at_size(train, size), val=at_size(val, size),
                      test=None if test is None else at_size(test, size), skipped=skipped)


def _warn_unvalidated(spec: str, train: ImageSet, val: ImageSet) -> None:
    """One line for classes that got no validation image (one image, or none, to split)."""
    if not len(val):
        return  # --val-fraction 0: no validation at all, said elsewhere
    missing = [name for name, count in val.counts().items()
               if count == 0 and train.counts()[name] > 0]
    if missing:
        log.warning("%s: class(es) %s have too few images for a validation image; their "
                    "validation accuracy is not measured", spec, ", ".join(missing))


def load_images(spec: str, image_size: int | tuple[int, int], *, val_fraction: float = 0.2,
                seed: int = 0, classes: str | Sequence[str | int] | None = None,
                per_class: int | None = None, limit: int | None = None) -> DataBundle:
    """Read ``spec`` for a task that needs no labels (editing, generation).

    A folder may hold images directly, in sub-folders, or in ``train/ val/ test/``;
    ``classes`` keeps only those class folders (or classes of a labelled source),
    ``per_class`` at most that many training images of each (seeded; it needs classes: class
    folders or a labelled source), ``limit`` at most that many training images in all. The
    bundle has one class, ``image``; validation is a seeded random share of the training
    images where the source has no split of its own (``val_fraction`` 0: none).
    """
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    skipped = SkippedFiles()
    classes = parse_classes(classes)
    if classes or per_class:
        splits = load_splits(spec, size, skipped, resize=False)
        if classes:
            splits = {name: part.select_classes(classes) for name, part in splits.items()}
        if per_class:
            splits["train"] = sample_per_class(splits["train"], per_class, seed)
        splits = {name: _unlabel(part) for name, part in splits.items()}
    else:
        splits = load_unlabelled_splits(spec, size, skipped, resize=False)
    if skipped.total:
        log.warning("%s", skipped.summary())
    train = splits["train"]
    if limit:
        train = sample_limit(train, limit, seed)
    if len(train) < 2:
        raise DataError(f"{spec}: at least 2 training images are needed; found {len(train)}")
    val = splits.get("val")
    if val is None:
        train, val = stratified_split(train, val_fraction, seed)
    return resized_bundle(spec, size, skipped, train, val, splits.get("test"))


def _unlabel(data: ImageSet) -> ImageSet:
    return ImageSet(data.images, np.zeros(len(data), np.int64), [UNLABELLED])


def _check_classes(spec: str, train: ImageSet) -> None:
    if len(train) == 0:
        raise DataError(f"{spec}: no training images")
    present = [name for name, n in train.counts().items() if n > 0]
    if len(present) < 2:
        raise DataError(f"{spec}: classification needs at least 2 classes with images; "
                        f"found {present or 'none'}")
