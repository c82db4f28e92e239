"""DCGAN generator and discriminator for 32, 64 or 128 pixels and 1 or 3 channels.

The discriminator's blocks are those of kerastl's small backbone (:mod:`kerastl.blocks`:
per block a 3x3 conv and a strided 3x3 conv, BatchNorm, LeakyReLU 0.2, named
``block{i}_conv{j}``), so a classifier trained on that backbone can seed them:
transfer from recognition to generation.
"""

from __future__ import annotations

from kerastl import blocks
from kerastl._tf import keras_module
from kerastl.errors import KerastlError

keras = keras_module()
layers = keras.layers

SIZES = (32, 64, 128)


def check_size(image_size: int) -> None:
    blocks.block_count(image_size, SIZES)


def default_widths(image_size: int, width: int = 64) -> tuple[int, ...]:
    """Discriminator widths, doubling per block, one block per halving down to 4 px."""
    return blocks.widths(image_size, width, SIZES)


def build_generator(image_size: int = 32, channels: int = 3, latent_dim: int = 128,
                    width: int = 64, sync_bn: bool = False, num_classes: int = 0):
    """``z -> Dense -> 4x4 -> (Conv2DTranspose stride 2, BatchNorm, ReLU)* -> tanh image``
    (:func:`kerastl.blocks.up_trunk`, as the VAE's decoder). With ``num_classes`` (a
    conditional GAN) the generator also takes a one-hot ``label``, concatenated to ``z`` and
    steering every BatchNorm (conditional BatchNorm, as in the projection discriminator's
    paper: the label entering once beside ``z`` left shirts drawn as pullovers).

    ``sync_bn``: BatchNorm statistics over the global batch under a ``tf.distribute``
    strategy (else per replica)."""
    inputs, x = blocks.latent_input(latent_dim, num_classes)
    label = inputs[1] if num_classes else None
    x = blocks.up_trunk(x, image_size, width, sync_bn, SIZES, label=label)
    images = layers.Conv2D(channels, 3, padding="same", activation="tanh", dtype="float32",
                           name="to_image")(x)
    return keras.Model(inputs, images, name="generator")


def build_discriminator(image_size: int = 32, channels: int = 3, width: int = 64,
                        spectral_norm: bool = False, batchnorm: bool = True,
                        sync_bn: bool = False, num_classes: int = 0):
    """``image in [-1, 1] -> blocks -> flatten -> logit``; ``spectral_norm`` wraps each conv;
    ``batchnorm`` False drops BatchNorm (the convolutions then carry a bias); ``sync_bn``
    as in :func:`build_generator`. With ``num_classes``, a projection discriminator (Miyato &
    Koyama, 2018): it also takes a one-hot ``label``, and adds to the logit the inner product
    of the image's features with the label's learned embedding (``projection``)."""
    images = keras.Input((image_size, image_size, channels), name="image")
    x = images
    for block, filters in enumerate(default_widths(image_size, width), start=1):
        x = blocks.down_block(x, filters, block, batchnorm=batchnorm,
                              spectral_norm=spectral_norm, sync_bn=sync_bn)
    features = layers.Flatten(name="flatten")(x)
    x = layers.Dropout(0.2, name="dropout")(features)
    logit = layers.Dense(1, dtype="float32", name="logit")(x)
    if not num_classes:
        return keras.Model(images, logit, name="discriminator")
    label = keras.Input((num_classes,), name="label")
    embedded = layers.Dense(features.shape[-1], use_bias=False, name="class_embedding")(label)
    projection = layers.Dot(axes=1, dtype="float32", name="projection")([features, embedded])
    logit = layers.Add(dtype="float32", name="conditional_logit")([logit, projection])
    return keras.Model([images, label], logit, name="discriminator")


def block_names(discriminator) -> list[str]:
    """The discriminator's block prefixes, lowest first (``block1``, ``block2``, ...)."""
    names = []
    for layer in discriminator.layers:
        prefix = layer.name.split("_")[0]
        if prefix.startswith("block") and prefix not in names:
            names.append(prefix)
    return names


def freeze_blocks(discriminator, count: int) -> list[str]:
    """FreezeD: the lowest ``count`` blocks stop training (BatchNorm in inference mode)."""
    blocks = block_names(discriminator)
    if count > len(blocks):
        raise KerastlError(f"--freeze-d {count}: the discriminator has {len(blocks)} blocks")
    frozen = blocks[:count]
    for layer in discriminator.layers:
        if layer.name.split("_")[0] in frozen:
            layer.trainable = False
    return frozen
