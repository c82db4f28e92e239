"""The convolutional blocks kerastl's small networks share, defined once: the small backbone,
the DCGAN's discriminator and generator, and the VAE's encoder and decoder. Layer names are the
contract between them: a classifier on the small backbone seeds a discriminator's or an
encoder's blocks by name (``block{i}_conv{j}``).

A down block is a 3x3 conv then a strided 3x3 conv, each followed by BatchNorm and
LeakyReLU(0.2); an up block is a strided 4x4 transposed conv, BatchNorm and ReLU (DCGAN's).
BatchNorm's momentum is 0.9, not Keras' 0.99: these networks train from scratch in short runs,
where 0.99 leaves the moving statistics far from the batch statistics (TRAPS: BatchNorm
momentum in short from-scratch runs).
"""

from __future__ import annotations

from kerastl.errors import KerastlError

BN_MOMENTUM = 0.9
LEAKY_SLOPE = 0.2
#: Image side -> down (or up) blocks: one per halving, down to 4 px (7 px for 28).
BLOCKS = {28: 2, 32: 3, 64: 4, 128: 5}
MAX_WIDTH = 512


def block_count(image_size: int, sizes=tuple(BLOCKS)) -> int:
    if image_size not in sizes:
        raise KerastlError(f"this network is built for {', '.join(map(str, sizes))} px. "
                           f"Received: {image_size}")
    return BLOCKS[image_size]


def widths(image_size: int, width: int = 64, sizes=tuple(BLOCKS)) -> tuple[int, ...]:
    """The down blocks' filters, doubling per block from ``width`` (at most 512)."""
    return tuple(min(width * 2 ** i, MAX_WIDTH) for i in range(block_count(image_size, sizes)))


def down_block(x, filters: int, block: int, *, batchnorm: bool = True,
               spectral_norm: bool = False, sync_bn: bool = False):
    """``block{block}_conv1`` (3x3) and ``block{block}_conv2`` (3x3, stride 2), each with
    BatchNorm (``_bn``) and LeakyReLU (``_act``); ``spectral_norm`` wraps each conv (``_sn``);
    without ``batchnorm`` the convs carry a bias."""
    from keras import layers

    for conv, strides in ((1, 1), (2, 2)):
        name = f"block{block}_conv{conv}"
        layer = layers.Conv2D(filters, 3, strides=strides, padding="same",
                              use_bias=not batchnorm, name=name)
        if spectral_norm:
            layer = layers.SpectralNormalization(layer, name=f"{name}_sn")
        x = layer(x)
        if batchnorm:
            x = layers.BatchNormalization(momentum=BN_MOMENTUM, synchronized=sync_bn,
                                          name=f"{name}_bn")(x)
        x = layers.LeakyReLU(LEAKY_SLOPE, name=f"{name}_act")(x)
    return x


def up_block(x, filters: int, index: int, *, sync_bn: bool = False):
    """``up{index}``: a 4x4 transposed conv of stride 2, BatchNorm and ReLU."""
    from keras import layers

    x = layers.Conv2DTranspose(filters, 4, strides=2, padding="same", use_bias=False,
                               name=f"up{index}")(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, synchronized=sync_bn,
                                  name=f"up{index}_bn")(x)
    return layers.ReLU(name=f"up{index}_relu")(x)


def up_trunk(latents, image_size: int, width: int = 64, sync_bn: bool = False,
             sizes=tuple(BLOCKS)):
    """``latent -> Dense -> side x side map -> up blocks``: the generator's and the VAE
    decoder's body, mirroring the down blocks' widths, up to ``image_size``."""
    from keras import layers

    filters = list(reversed(widths(image_size, width, sizes)))
    side = image_size >> len(filters)
    x = layers.Dense(side * side * filters[0] * 2, use_bias=False, name="project")(latents)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, synchronized=sync_bn,
                                  name="project_bn")(x)
    x = layers.ReLU(name="project_relu")(x)
    x = layers.Reshape((side, side, filters[0] * 2), name="to_map")(x)
    for index, count in enumerate(filters, start=1):
        x = up_block(x, count, index, sync_bn=sync_bn)
    return x
