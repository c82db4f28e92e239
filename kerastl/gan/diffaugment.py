"""DiffAugment (Zhao et al., 2020): differentiable augmentation of real and fake images alike.

Applied to every image the discriminator sees, in both the discriminator's and
the generator's step, so the discriminator cannot memorise a few real images
while gradients still reach the generator. Images are in [-1, 1], NHWC.
Policies: ``color`` (brightness, saturation, contrast), ``translation`` (up to
1/8 of the side, zero padded), ``cutout`` (a zeroed square of half the side).
Random draws come from a ``keras.random.SeedGenerator`` (the GAN's own), so a seeded run
repeats its augmentation.

With a ``probability`` (adaptive discriminator augmentation, Karras et al. 2020, as the
DCGAN runs it), each policy is applied to each image independently with that probability,
and the rest pass unchanged: the probability rises while the discriminator wins on real
images and falls while it does not, so a large data set keeps it near 0.
"""

from __future__ import annotations

from kerastl._tf import tensorflow
from kerastl.errors import KerastlError

POLICIES = ("color", "translation", "cutout")
DEFAULT_POLICY = "color,translation,cutout"


def parse_policy(policy: str | None) -> tuple[str, ...]:
    if not policy or policy == "none":
        return ()
    names = tuple(p.strip() for p in policy.split(",") if p.strip())
    unknown = [n for n in names if n not in POLICIES]
    if unknown:
        raise KerastlError(f"DiffAugment policies are {', '.join(POLICIES)}. Received: {unknown}")
    return names


def diff_augment(images, policy: tuple[str, ...], seed=None, probability=None):
    """``images`` through each policy in turn; ``seed`` is a ``keras.random.SeedGenerator``
    (or an int), None for unseeded draws. ``probability`` (a scalar tensor or variable):
    each policy reaches each image with that probability; None: every image, every policy."""
    for name in policy:
        augmented = _AUGMENTS[name](images, seed)
        if probability is None:
            images = augmented
        else:
            chosen = _per_image(images, 0.0, 1.0, seed) < tensorflow().cast(probability,
                                                                            images.dtype)
            images = tensorflow().where(chosen, augmented, images)
    return images


def _per_image(images, low: float, high: float, seed):
    import keras

    tf = tensorflow()
    return keras.random.uniform([tf.shape(images)[0], 1, 1, 1], low, high, dtype=images.dtype,
                                seed=seed)


def _integers(shape, low, high, seed):
    """Whole numbers in [low, high) per image: ``keras.random.randint`` with tensor bounds."""
    import keras

    tf = tensorflow()
    unit = keras.random.uniform(shape, 0.0, 1.0, seed=seed)
    span = tf.cast(high - low, tf.float32)
    return low + tf.minimum(tf.cast(tf.floor(unit * span), tf.int32), high - low - 1)


def _color(images, seed=None):
    tf = tensorflow()
    images = images + _per_image(images, -0.5, 0.5, seed)
    mean = tf.reduce_mean(images, axis=3, keepdims=True)
    images = (images - mean) * _per_image(images, 0.0, 2.0, seed) + mean
    mean = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)
    return (images - mean) * _per_image(images, 0.5, 1.5, seed) + mean


def _translation(images, seed=None, ratio: float = 0.125):
    tf = tensorflow()
    batch, height, width = tf.shape(images)[0], tf.shape(images)[1], tf.shape(images)[2]
    shift_h = tf.cast(tf.cast(height, tf.float32) * ratio + 0.5, tf.int32)
    shift_w = tf.cast(tf.cast(width, tf.float32) * ratio + 0.5, tf.int32)
    dy = _integers([batch, 1], -shift_h, shift_h + 1, seed)
    dx = _integers([batch, 1], -shift_w, shift_w + 1, seed)
    rows = tf.clip_by_value(tf.range(height)[None] + dy + 1, 0, height + 1)
    cols = tf.clip_by_value(tf.range(width)[None] + dx + 1, 0, width + 1)
    padded = tf.pad(images, [[0, 0], [1, 1], [1, 1], [0, 0]])
    shifted = tf.gather(padded, rows, axis=1, batch_dims=1)
    return tf.gather(shifted, cols, axis=2, batch_dims=1)


def _cutout(images, seed=None, ratio: float = 0.5):
    tf = tensorflow()
    batch, height, width = tf.shape(images)[0], tf.shape(images)[1], tf.shape(images)[2]
    cut_h = tf.cast(tf.cast(height, tf.float32) * ratio + 0.5, tf.int32)
    cut_w = tf.cast(tf.cast(width, tf.float32) * ratio + 0.5, tf.int32)
    top = _integers([batch, 1, 1], 0, height + (1 - cut_h % 2), seed) - cut_h // 2
    left = _integers([batch, 1, 1], 0, width + (1 - cut_w % 2), seed) - cut_w // 2
    rows = tf.range(height)[None, :, None]
    cols = tf.range(width)[None, None, :]
    inside = (rows >= top) & (rows < top + cut_h) & (cols >= left) & (cols < left + cut_w)
    return images * tf.cast(~inside, images.dtype)[..., None]


_AUGMENTS = {"color": _color, "translation": _translation, "cutout": _cutout}
