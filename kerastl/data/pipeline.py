"""tf.data pipelines over an :class:`ImageSet`, with augmentation presets.

Images stay uint8 in memory (cached once, never as full-size floats), or, for a
folder too large for that, are decoded from their files batch by batch; each batch
is cast to float32 in 0-255 and augmented on the fly. The model's own
preprocessing layer maps 0-255 to what its backbone expects.
"""

from __future__ import annotations

from kerastl._tf import tensorflow
from kerastl.data.imageset import ImageSet
from kerastl.errors import KerastlError
from kerastl.task import PRIMARY

AUGMENTATIONS = ("none", "shift", "light", "randaugment")


def _streamed(data: ImageSet) -> bool:
    from kerastl.data.file_images import FileImages

    return isinstance(data.images, FileImages)


def batch_reader(data: ImageSet):
    """index batch -> (uint8 images, labels): gathered from memory, or decoded from the
    files of a streamed folder (two batches decoding at a time, a few in memory)."""
    tf = tensorflow()
    labels = tf.constant(data.labels)
    if not _streamed(data):
        images = tf.constant(data.images)
        return lambda index: (tf.gather(images, index), tf.gather(labels, index))
    files = data.images

    def read(index):
        batch = tf.numpy_function(files.read, [index], tf.uint8, stateful=False)
        batch.set_shape((None, *files.size, 3))
        return batch, tf.gather(labels, index)
    return read


def augmentation(preset: str, seed: int):
    """A ``keras.layers.Pipeline`` of Keras core layers for an augmentation preset (``none``:
    None; ``shift``, ``light``, ``randaugment``). ``shift`` (mirror, shift up to 10%, black
    fill) suits small centred images such as Fashion-MNIST, where ``light``'s rotation and
    zoom cost accuracy."""
    import keras

    layers = _augmentation_layers(preset, seed)
    return keras.layers.Pipeline(layers, name=f"augment_{preset}") if layers else None


def _augmentation_layers(preset: str, seed: int) -> list:
    """``shift`` and ``light`` warp each image once (:class:`RandomAffine`), not once per
    Keras layer: the frozen phase on 2 cores spent much of its time in three warps."""
    import keras

    from kerastl.data.affine import RandomAffine

    if preset == "none":
        return []
    if preset == "shift":
        return [RandomAffine(rotation=0.0, zoom=0.0, translation=0.1, fill_mode="constant",
                             seed=seed)]
    if preset == "light":
        return [RandomAffine(rotation=0.05, zoom=0.1, translation=0.1, seed=seed)]
    if preset == "randaugment":
        return [keras.layers.RandomFlip("horizontal", seed=seed),
                keras.layers.RandAugment(value_range=(0, 255), seed=seed + 1)]
    raise KerastlError(f"unknown augmentation {preset!r}; choose one of {', '.join(AUGMENTATIONS)}")


def make_dataset(data: ImageSet, batch_size: int, *, training: bool = False, seed: int = 0,
                 augment: str = "none", mixup: bool = False, cutmix: bool = False,
                 one_hot: bool = False, label_maps: dict | None = None,
                 drop_remainder: bool = False):
    """A batched, prefetched ``tf.data.Dataset`` of (float32 images 0-255, labels).

    With ``training`` the data is reshuffled each epoch and augmented. Labels are
    class indices, or one-hot with ``one_hot`` (which ``mixup`` and ``cutmix`` need).
    With ``label_maps`` ({head: lookup array over the classes}) labels become a
    dict: the class index under :data:`~kerastl.task.PRIMARY` and each head's label under its name.
    ``drop_remainder`` drops a last, smaller batch (several replicas must not see
    an uneven split: their gradient all-reduce then fails on mismatched shapes).
    """
    if (mixup or cutmix) and not one_hot:
        raise ValueError("mixup and cutmix mix labels: pass one_hot=True")
    if label_maps and (mixup or cutmix or one_hot):
        raise KerastlError("multi-task heads take class indices: no --mixup or --cutmix")
    tf = tensorflow()
    # Shuffle and batch indices, then gather whole batches: one op per batch, not per image.
    dataset = tf.data.Dataset.range(len(data))
    if training:
        dataset = dataset.shuffle(len(data), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder).map(
        batch_reader(data), num_parallel_calls=2 if _streamed(data) else None,
        deterministic=True)
    augmenter = augmentation(augment, seed) if training else None
    mixers = _mixers(mixup, cutmix, seed) if training else []
    num_classes = len(data.class_names)

    def transform(images, labels):
        images = tf.cast(images, tf.float32)
        if augmenter is not None:
            images = augmenter(images, training=True)
        if one_hot:
            labels = tf.one_hot(labels, num_classes)
            for mixer in mixers:
                mixed = mixer({"images": images, "labels": labels}, training=True)
                images, labels = mixed["images"], mixed["labels"]
        if label_maps:
            labels = {PRIMARY: labels, **{name: tf.gather(tf.constant(lookup), labels)
                                          for name, lookup in label_maps.items()}}
        return images, labels

    dataset = dataset.map(transform, num_parallel_calls=tf.data.AUTOTUNE,
                          deterministic=True)
    return with_data_sharding(dataset.prefetch(tf.data.AUTOTUNE))


def with_data_sharding(dataset):
    """Shard by batch across workers (``AutoShardPolicy.DATA``): the images are in memory, not
    in files a ``FILE`` policy could split."""
    tf = tensorflow()
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def _mixers(mixup: bool, cutmix: bool, seed: int) -> list:
    import keras

    mixers = []
    if mixup:
        mixers.append(keras.layers.MixUp(alpha=0.2, seed=seed + 10))
    if cutmix:
        mixers.append(keras.layers.CutMix(factor=1.0, seed=seed + 11))
    return mixers
