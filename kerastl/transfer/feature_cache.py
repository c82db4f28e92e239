"""Train the head on cached backbone features while the backbone is frozen.

With the backbone frozen, called in inference mode, and no augmentation, every
epoch of phase 1 would push the same images through the same frozen layers to
the same pooled features. kerastl computes them once and trains the head (the
classifier's own dropout and dense layers, shared) on them: the same model,
for one forward pass instead of one per epoch (the model is split at its pooled
features by :func:`kerastl.task.split_at_features`).
"""

from __future__ import annotations

from kerastl.data import ImageSet
from kerastl.data.pipeline import make_dataset


def can_cache_features(phase_unfreezes: bool, augment: str, mixing: bool,
                       train_bn: bool) -> bool:
    """Pooled features are fixed only with nothing unfrozen, no augmentation or mixing,
    and BatchNorm (and any in-backbone dropout) in inference mode."""
    return not phase_unfreezes and augment == "none" and not mixing and not train_bn


def features_of(extractor, data: ImageSet, batch_size: int) -> ImageSet:
    """The pooled features of ``data`` as an ImageSet of float32 vectors."""
    features = extractor.predict(make_dataset(data, batch_size), verbose=0)
    return ImageSet(features, data.labels, data.class_names)
