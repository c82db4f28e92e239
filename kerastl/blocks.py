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


def up_block(x, filters: int, index: int, *, sync_bn: bool = False, label=None):
    """``up{index}``: a 4x4 transposed conv of stride 2, BatchNorm and ReLU; with ``label``
    (a one-hot input) the BatchNorm is conditional on it (:func:`up_norm`)."""
    from keras import layers

    x = layers.Conv2DTranspose(filters, 4, strides=2, padding="same", use_bias=False,
                               name=f"up{index}")(x)
    x = up_norm(x, f"up{index}_bn", sync_bn, label)
    return layers.ReLU(name=f"up{index}_relu")(x)


def up_norm(x, name: str, sync_bn: bool = False, label=None):
    """The up path's BatchNorm: plain, or with ``label`` a
    :class:`kerastl.layers.ConditionalBatchNorm` (scale and offset per class)."""
    from keras import layers

    if label is None:
        return layers.BatchNormalization(momentum=BN_MOMENTUM, synchronized=sync_bn,
                                         name=name)(x)
    from kerastl.layers import ConditionalBatchNorm

    return ConditionalBatchNorm(momentum=BN_MOMENTUM, synchronized=sync_bn, name=name)([x, label])


def latent_input(latent_dim: int, num_classes: int = 0):
    """``(inputs, x)`` of a generator or decoder: the ``latent`` input and, with
    ``num_classes``, a one-hot ``label`` input concatenated to it (``with_label``)."""
    import keras

    latents = keras.Input((latent_dim,), name="latent")
    if not num_classes:
        return latents, latents
    label = keras.Input((num_classes,), name="label")
    return [latents, label], keras.layers.Concatenate(name="with_label")([latents, label])


def up_trunk(latents, image_size: int, width: int = 64, sync_bn: bool = False,
             sizes=tuple(BLOCKS), label=None):
    """``latent -> Dense -> side x side map -> up blocks``: the generator's and the VAE
    decoder's body, mirroring the down blocks' widths, up to ``image_size``. With ``label``
    (a one-hot input) every BatchNorm is conditional on the class."""
    from keras import layers

    filters = list(reversed(widths(image_size, width, sizes)))
    side = image_size >> len(filters)
    x = layers.Dense(side * side * filters[0] * 2, use_bias=False, name="project")(latents)
    x = up_norm(x, "project_bn", sync_bn, label)
    x = layers.ReLU(name="project_relu")(x)
    x = layers.Reshape((side, side, filters[0] * 2), name="to_map")(x)
    for index, count in enumerate(filters, start=1):
        x = up_block(x, count, index, sync_bn=sync_bn, label=label)
    return x


def seed_from_run(network, run: str, option: str) -> list[str]:
    """:func:`seed_from_backbone` from the backbone of the classifier ``run`` (``option`` names
    the setting in errors)."""
    from kerastl import layers  # noqa: F401 - registers Preprocess for loading
    from kerastl.runs import CLASSIFIER_JOBS, load_keras_model, require_job, resolve_model_file
    from kerastl.task import task_parts

    require_job(run, CLASSIFIER_JOBS, option)
    classifier = load_keras_model(resolve_model_file(run), compile=False)
    return seed_from_backbone(network, task_parts(classifier, run).backbone)


def seed_from_backbone(network, backbone) -> list[str]:
    """Copy the weights of every block layer ``network`` (a discriminator or a VAE's encoder)
    shares by name with ``backbone`` (a kerastl small backbone); 3-channel first-layer kernels
    are summed over their input channels for a 1-channel network. Returns the layers copied."""
    from keras import layers

    copied = []
    source = {layer.name: layer for layer in backbone.layers}
    for layer in network.layers:
        target = layer.layer if isinstance(layer, layers.SpectralNormalization) else layer
        donor = source.get(target.name)
        if donor is None or not donor.weights:
            continue
        weights = [w.numpy() for w in donor.weights]
        wanted = [tuple(w.shape) for w in target.weights]
        if [tuple(w.shape) for w in weights] != wanted:
            weights = _fit_channels(weights, wanted)
        if weights is None:
            raise KerastlError(
                f"the classifier's {donor.name} does not fit the {network.name} (shapes "
                f"{[tuple(w.shape) for w in donor.weights]} vs {wanted}): build it with the "
                f"classifier's widths (--width {_first_width(source)})")
        target.set_weights(weights)
        copied.append(target.name)
    if not copied:
        raise KerastlError(f"the classifier shares no block with the {network.name}: "
                           "seed from a run trained on the kerastl_small backbone")
    return copied


def _first_width(layers_by_name) -> int | str:
    """The filters of a small backbone's first block: the ``width`` that matches it."""
    first = layers_by_name.get("block1_conv1")
    return int(first.weights[0].shape[-1]) if first is not None and first.weights else "N"


def _fit_channels(weights, wanted):
    """A 3-channel first conv into a 1-channel one: sum over input channels (gray = R=G=B)."""
    if len(weights) == 1 and weights[0].ndim == 4 and weights[0].shape[2] == 3 \
            and wanted[0][2] == 1 and weights[0].shape[:2] + weights[0].shape[3:] \
            == wanted[0][:2] + wanted[0][3:]:
        return [weights[0].sum(axis=2, keepdims=True)]
    return None
