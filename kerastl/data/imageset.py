"""In-memory labelled images: the one shape every data source is turned into."""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Sequence

import numpy as np

from kerastl.errors import DataError


@dataclasses.dataclass
class ImageSet:
    """uint8 images (N, H, W, 3) with integer labels into ``class_names``; ``images`` is an
    array, or a :class:`~kerastl.data.file_images.FileImages` for a streamed folder."""

    images: np.ndarray
    labels: np.ndarray
    class_names: list[str]

    def __post_init__(self):
        self.labels = np.asarray(self.labels, dtype=np.int64)
        if len(self.images) != len(self.labels):
            raise ValueError(f"{len(self.images)} images but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, indices: np.ndarray) -> "ImageSet":
        return ImageSet(self.images[indices], self.labels[indices], list(self.class_names))

    def counts(self) -> dict[str, int]:
        """Images per class name."""
        per_label = np.bincount(self.labels, minlength=len(self.class_names))
        return {name: int(n) for name, n in zip(self.class_names, per_label)}

    def select_classes(self, classes: Sequence[str | int]) -> "ImageSet":
        """Keep only ``classes`` (names or indices), relabelled 0..K-1 in the order given."""
        wanted = [resolve_class(c, self.class_names) for c in classes]
        if len(set(wanted)) != len(wanted):
            raise DataError(f"a class is named twice in --classes. Received: {list(classes)}")
        mapping = np.full(len(self.class_names), -1, dtype=np.int64)
        mapping[wanted] = np.arange(len(wanted))
        keep = np.flatnonzero(mapping[self.labels] >= 0)
        return ImageSet(self.images[keep], mapping[self.labels[keep]],
                        [self.class_names[i] for i in wanted])

    def relabel_to(self, class_names: Sequence[str]) -> "ImageSet":
        """Re-index labels onto ``class_names`` (a model's), erroring on unknown classes."""
        unknown = sorted(set(self.class_names) - set(class_names))
        if unknown:
            raise DataError(f"the data has classes the model does not know: {unknown}. "
                            f"The model knows: {list(class_names)}")
        index = {name: i for i, name in enumerate(class_names)}
        mapping = np.array([index[name] for name in self.class_names], dtype=np.int64)
        return ImageSet(self.images, mapping[self.labels] if len(self) else self.labels,
                        list(class_names))

    def fingerprint(self) -> str:
        """A short hash of pixels, labels and class names: equal data, equal print."""
        digest = hashlib.blake2b(digest_size=12)
        pixels = getattr(self.images, "fingerprint_bytes", None)  # streamed: no decoding
        digest.update(pixels() if pixels else np.ascontiguousarray(self.images).data)
        digest.update(np.ascontiguousarray(self.labels).data)
        digest.update("\n".join(self.class_names).encode())
        return digest.hexdigest()


def resolve_class(value: str | int, class_names: Sequence[str]) -> int:
    """A class given by name or by index (``"3"`` counts as index 3 unless a class is named so)."""
    text = str(value)
    if text in class_names:
        return list(class_names).index(text)
    if text.lstrip("-").isdigit():
        index = int(text)
        if 0 <= index < len(class_names):
            return index
    raise DataError(f"unknown class {value!r}. Known classes: {list(class_names)}")


def parse_classes(text: str | Sequence | None) -> list[str] | None:
    """``"0-4"``, ``"cat,dog"`` or ``"5,7,9"`` into a list of class names or indices."""
    if text is None or (isinstance(text, (list, tuple)) and not text):
        return None
    if not isinstance(text, str):
        return [str(c) for c in text]
    result: list[str] = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        low, sep, high = part.partition("-")
        if sep and low.isdigit() and high.isdigit():
            result.extend(str(i) for i in range(int(low), int(high) + 1))
        else:
            result.append(part)
    return result
