"""One shape for kerastl's image models, keras-hub's: a task owns a backbone, a pooler and a
head.

``image (0-255) -> Preprocess -> backbone -> pooler (global average) -> dropout -> head``.
The classifier's head is one softmax (or one per task, the primary under :data:`PRIMARY`);
the colour regressor's is a small network on the pooled features and the image's colour
statistics. :func:`build_task` builds the trunk once for both. :func:`task_parts` finds the
parts again in a built or a loaded model by their type and place in the graph, never by a
layer's name, so consumers (the feature cache, a domain FID extractor, seeding a GAN from a
classifier, saving a pretrained backbone) do not depend on names typed elsewhere.

No TensorFlow is imported here until a model is built or read.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

from kerastl.errors import KerastlError

#: The primary head's key in a multi-task model's outputs, labels and ``heads.json``.
PRIMARY = "class"
#: The primary softmax layer's name (Keras Applications' classifiers use the same).
PREDICTIONS = "predictions"


@dataclasses.dataclass
class TaskParts:
    """A task model's ``backbone`` (the nested model) and ``pooled`` (the pooler's output:
    the features every head reads)."""

    backbone: object
    pooled: object


def build_task(backbone, head: Callable, *, dropout: float, train_bn: bool = False,
               name: str):
    """The task model of ``backbone`` (a :class:`~kerastl.transfer.model.ResolvedBackbone`)
    with ``head(features, image) -> outputs`` on its pooled, dropped-out features.

    Unless BatchNorm is to train, the backbone is called with ``training=False``, so its
    BatchNorm keeps its moving statistics and any dropout or drop-connect inside it stays
    off, frozen or not.
    """
    import keras

    from kerastl.layers import Preprocess

    size = backbone.meta.image_size
    image = keras.Input((size, size, 3), name="image")
    x = Preprocess(backbone.meta.preprocessing, name="preprocess")(image)
    x = backbone.model(x, training=None if train_bn else False)
    pooled = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    features = keras.layers.Dropout(dropout, name="head_dropout")(pooled)
    return keras.Model(image, head(features, image), name=name)


def task_parts(model, source: str | None = None) -> TaskParts:
    """The backbone and pooled features of a model :func:`build_task` built (or of one loaded
    from a kerastl run); a clear error for any other model (``source`` names it)."""
    import keras

    nested = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    pools = [layer for layer in model.layers
             if isinstance(layer, keras.layers.GlobalAveragePooling2D)]
    if len(nested) != 1 or len(pools) != 1:
        raise KerastlError(f"{source or model.name} is not a kerastl classifier (a backbone "
                           "then a pooling layer): use a run of kerastl finetune or pretrain")
    return TaskParts(nested[0], pools[0].output)


def split_at_features(model):
    """(extractor: image -> pooled features, head: pooled features -> outputs), sharing the
    model's layers and weights (a classifier's head reads nothing but the pooled features)."""
    import keras

    pooled = task_parts(model).pooled
    return (keras.Model(model.input, pooled, name="feature_extractor"),
            keras.Model(pooled, model.output, name="head"))
