"""int8 weights chosen on calibration images: adaptive rounding and bias correction.

TFLite's int8 rounds each convolution's weights, with the following BatchNorm folded in, to
the nearest of 255 steps of the output channel's largest weight. An edge filter whose large
weights nearly cancel loses that cancellation: over a flat region its output shifts by a
constant in proportion to the input level, and every later layer carries the shift.
EfficientNet-Lite's stem and first depthwise convolution have several such channels: rounding
those two layers' weights alone, in float, costs the finetuned Lite0 of ``docs/benchmarks.md``
3 points of top-1 agreement with Keras.

Two post-training remedies, both from the quantization literature and both measured on the
calibration images the converter already takes:

- **adaptive rounding** (after Nagel et al., "Up or Down? Adaptive Rounding for Post-Training
  Quantization", ICML 2020): each weight may round down or up, whichever makes the channel's
  output error ``E[(rounding error . input patch)^2]`` smaller over the calibration patches
  (coordinate descent from nearest rounding; the channel's largest weight, which fixes the
  step, stays put). Done for layers with at most :data:`ADAPTIVE_MAX_WEIGHTS` weights per
  output channel (a 3x3 stem, depthwise convolutions); the others keep nearest rounding;
- **bias correction** (Nagel et al., "Data-Free Quantization Through Weight Equalization and
  Bias Correction", ICCV 2019): the mean output error left is subtracted from the channel's
  bias (the BatchNorm's beta, or the convolution's own bias).

Both are written into the Keras model only while it is converted (kernels set to the chosen
int8 grid values, which the converter's own rounding then keeps), and put back afterwards.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

from kerastl.export.swap import swapped

#: Layers with more weights per output channel keep nearest rounding. 32 takes a 3x3 stem and
#: 3x3 or 5x5 depthwise convolutions; on Lite0, choosing the rounding of its 1x1
#: convolutions too (up to 1,152 weights a channel) lowered agreement (0.983 against 0.989):
#: their second moments come from too few patches.
ADAPTIVE_MAX_WEIGHTS = 32
#: Input patches sampled per calibration image and layer for the rounding's statistics.
PATCHES_PER_IMAGE = 32


@dataclass
class _Target:
    """A convolution, the BatchNorm folded into it (if any) and its input patches' moments."""
    conv: object
    batch_norm: object | None
    first: np.ndarray | None = None    # sum of every patch, (n,)
    positions: int = 0                 # how many patches ``first`` sums
    second: np.ndarray | None = None   # sum of sampled patches' outer products: (n, n), or
    count: int = 0                     # (channels, n, n) for depthwise; how many were sampled
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))

    @property
    def depthwise(self) -> bool:
        import keras

        return isinstance(self.conv, keras.layers.DepthwiseConv2D)

    def folded_kernel(self) -> tuple[np.ndarray, np.ndarray]:
        """(kernel, fold): what TFLite rounds is ``kernel * fold`` (BatchNorm's scale per
        output channel, broadcast over the kernel)."""
        kernel = np.asarray(self.conv.kernel)
        bn = self.batch_norm
        if bn is None:
            fold = np.ones(kernel.shape[2:] if self.depthwise else kernel.shape[-1:], np.float32)
        else:
            gamma = np.asarray(bn.gamma) if bn.scale else 1.0
            fold = gamma / np.sqrt(np.asarray(bn.moving_variance) + bn.epsilon)
        return kernel, fold.reshape(kernel.shape[2:] if self.depthwise else (-1,))

    def weights_per_channel(self) -> np.ndarray:
        """Folded weights as (channels, n): one row per output channel, patch order."""
        kernel, fold = self.folded_kernel()
        folded = kernel * fold
        if self.depthwise:   # (kh, kw, c, multiplier) -> (c * multiplier, kh * kw)
            return folded.reshape(-1, folded.shape[2] * folded.shape[3]).T
        return folded.reshape(-1, folded.shape[-1]).T

    def record(self, inputs) -> None:
        """Add a batch of this layer's inputs to its patch moments: the mean over every patch,
        the second moment over a sample of them."""
        geometry = (self.conv.kernel_size, self.conv.strides, self.conv.padding)
        images = np.asarray(inputs)
        total, positions = patch_sum(images, *geometry)
        self.first = total if self.first is None else self.first + total
        self.positions += positions
        if not self.adaptive:
            return
        rows = sample_patches(images, *geometry, PATCHES_PER_IMAGE, self.rng, self.depthwise)
        if self.depthwise:   # per channel: (c, rows, kh * kw)
            second = np.repeat(np.matmul(rows.transpose(0, 2, 1), rows).astype(np.float64),
                               self.conv.depth_multiplier, axis=0)
            self.count += rows.shape[1]
        else:
            second = (rows.T @ rows).astype(np.float64)
            self.count += len(rows)
        self.second = second if self.second is None else self.second + second

    @property
    def adaptive(self) -> bool:
        """Whether this layer's rounding is chosen (else nearest, as TFLite rounds)."""
        kernel = self.conv.kernel.shape
        return int(np.prod(kernel[:2] if self.depthwise else kernel[:3])) <= ADAPTIVE_MAX_WEIGHTS

    def mean_patch(self) -> np.ndarray:
        """The mean input patch, (n,), or (channels, n) for a depthwise convolution."""
        mean = self.first / self.positions
        if self.depthwise:
            mean = np.repeat(mean.reshape(int(np.prod(self.conv.kernel_size)), -1).T,
                             self.conv.depth_multiplier, axis=0)
        return mean

    def rounding_error(self) -> np.ndarray:
        """Chosen int8 weights minus float weights, (channels, n), in folded units."""
        weights = self.weights_per_channel().astype(np.float64)
        scale = np.abs(weights).max(axis=1, keepdims=True) / 127.0
        scale = np.where(scale == 0, 1.0, scale)
        steps = weights / scale
        chosen = np.sign(steps) * np.floor(np.abs(steps) + 0.5)  # nearest, as TFLite rounds
        if self.adaptive and self.count:
            chosen = adaptive_rounding(steps, chosen, self.second / self.count)
        return (chosen - steps) * scale

    def apply(self, error: np.ndarray) -> None:
        """Set the kernel to the chosen int8 values and the bias to absorb the mean error."""
        kernel, fold = self.folded_kernel()
        rows = self.weights_per_channel() + error
        chosen = rows.T.reshape(kernel.shape[:2] + fold.shape) if self.depthwise \
            else rows.T.reshape(kernel.shape)
        self.conv.kernel.assign((chosen / np.where(fold == 0, 1.0, fold)).astype(np.float32))
        if self.positions:
            shift = (error * self.mean_patch()).sum(axis=1)
            bias = self.bias()
            bias.assign((np.asarray(bias) - shift).astype(np.float32))

    def bias(self):
        return self.batch_norm.beta if self.batch_norm is not None else self.conv.bias


def sample_patches(images: np.ndarray, kernel_size, strides, padding: str, count: int,
                   rng: np.random.Generator, per_channel: bool = False) -> np.ndarray:
    """``count`` input patches per image of a batch (B, H, W, C) as a convolution sees them,
    at random output positions (drawn with replacement): (B * count, n) flattened in the
    kernel's (row, column, channel) order, or with ``per_channel`` (C, B * count, kh * kw)
    (what a depthwise convolution's channels see, gathered in that layout: transposing after
    costs more)."""
    images, (out_h, out_w) = _as_convolved(images, kernel_size, strides, padding)
    (kh, kw), (sh, sw) = kernel_size, strides
    batch = len(images)
    which = np.repeat(np.arange(batch), count)
    chosen = rng.integers(0, out_h * out_w, batch * count)
    top, left = chosen // out_w * sh, chosen % out_w * sw
    rows, cols = np.meshgrid(np.arange(kh), np.arange(kw), indexing="ij")
    at = (which[:, None, None], top[:, None, None] + rows, left[:, None, None] + cols)
    if per_channel:
        channels = np.moveaxis(images, -1, 0)
        return channels[(slice(None), *at)].reshape(images.shape[-1], batch * count, -1)
    return images[at].reshape(batch * count, -1)


def patch_sum(images: np.ndarray, kernel_size, strides, padding: str) -> tuple[np.ndarray, int]:
    """The sum of every input patch a convolution sees in a batch (B, H, W, C) (flattened as
    :func:`sample_patches`), and how many there are."""
    images, (out_h, out_w) = _as_convolved(images, kernel_size, strides, padding)
    (kh, kw), (sh, sw) = kernel_size, strides
    sums = [images[:, i:i + sh * out_h:sh, j:j + sw * out_w:sw].sum(axis=(0, 1, 2),
                                                                   dtype=np.float64)
            for i in range(kh) for j in range(kw)]
    return np.concatenate(sums), len(images) * out_h * out_w


def _as_convolved(images: np.ndarray, kernel_size, strides, padding: str):
    """A batch (B, H, W, C) padded as TensorFlow's ``same`` pads (the extra row or column at
    the bottom and right), and the convolution's output height and width."""
    (_, height, width, _), (kh, kw), (sh, sw) = images.shape, kernel_size, strides
    if padding != "same":
        return images, ((height - kh) // sh + 1, (width - kw) // sw + 1)
    out_h, out_w = -(-height // sh), -(-width // sw)
    pad_h, pad_w = max((out_h - 1) * sh + kh - height, 0), max((out_w - 1) * sw + kw - width, 0)
    return np.pad(images, ((0, 0), (pad_h // 2, pad_h - pad_h // 2),
                           (pad_w // 2, pad_w - pad_w // 2), (0, 0))), (out_h, out_w)


def adaptive_rounding(steps: np.ndarray, rounded: np.ndarray, moment: np.ndarray) -> np.ndarray:
    """Round each row of ``steps`` (weights in units of their channel's step) down or up so that
    ``e @ moment @ e`` (e: the rounding error; ``moment`` the input patches' second moment,
    shared or one per row) is small: coordinate descent from ``rounded``, one weight at a
    time, until no flip helps. Weights at +-127 (the channel's largest) stay."""
    rounded = rounded.copy()
    error = rounded - steps
    shared = moment.ndim == 2
    grad = error @ moment if shared else np.einsum("ci,cij->cj", error, moment)
    diagonal = np.diagonal(moment, axis1=-2, axis2=-1)
    for _ in range(20):
        flipped = False
        for i in range(steps.shape[1]):
            move = np.where(rounded[:, i] < steps[:, i], 1.0, -1.0)
            change = 2 * move * grad[:, i] + (diagonal[i] if shared else diagonal[:, i])
            take = (change < -1e-12) & (np.abs(rounded[:, i] + move) <= 127) & \
                (np.abs(rounded[:, i]) < 127)
            if not take.any():
                continue
            move = np.where(take, move, 0.0)
            rounded[:, i] += move
            grad += move[:, None] * (moment[i][None, :] if shared else moment[:, i, :])
            flipped = True
        if not flipped:
            break
    return rounded


def correction_targets(model) -> list[_Target]:
    """Every undilated 2-D convolution of ``model`` (nested models included) whose bias can
    absorb its error: one followed only by a centred BatchNorm, or one with its own bias."""
    import keras

    layers = list(model._flatten_layers(include_self=False))
    targets = []
    for conv in layers:
        if type(conv) not in (keras.layers.Conv2D, keras.layers.DepthwiseConv2D) or \
                getattr(conv, "groups", 1) != 1 or conv.data_format != "channels_last" or \
                tuple(conv.dilation_rate) != (1, 1):
            continue
        batch_norm = _only_batch_norm_after(conv, layers)
        if batch_norm is not None and batch_norm.center:
            targets.append(_Target(conv, batch_norm))
        elif batch_norm is None and conv.use_bias:
            targets.append(_Target(conv, None))
    return targets


def _only_batch_norm_after(conv, layers):
    import keras

    consumers = [layer for layer in layers
                 if any(conv in _parents(node) for node in layer._inbound_nodes)]
    if len(consumers) == 1 and isinstance(consumers[0], keras.layers.BatchNormalization):
        return consumers[0]
    return None


def _parents(node) -> list:
    return [tensor._keras_history.operation for tensor in node.input_tensors]


@contextlib.contextmanager
def int8_weight_calibration(model, images: Iterable[np.ndarray]):
    """While the block runs, each correctable convolution of ``model`` holds the int8 weights
    chosen on ``images`` (float32 batches, the model's input) and a bias that absorbs their
    mean error; everything is put back afterwards. Yields how many layers were changed."""
    targets = correction_targets(model)
    originals = [(np.asarray(t.conv.kernel), np.asarray(t.bias())) for t in targets]
    _record_patches(model, targets, images)
    try:
        for target in targets:
            target.apply(target.rounding_error())
        yield len(targets)
    finally:
        for target, (kernel, bias) in zip(targets, originals):
            target.conv.kernel.assign(kernel)
            target.bias().assign(bias)


def _record_patches(model, targets: list[_Target], images) -> None:
    """Run ``model`` on ``images`` with each target's ``call`` also recording its input."""
    def recording(target, original):
        def call(inputs, *args, **kwargs):
            target.record(inputs)
            return original(inputs, *args, **kwargs)
        return call

    with swapped((target.conv, "call", recording(target, target.conv.call))
                 for target in targets):
        for batch in images:
            model(batch, training=False)
