"""Grad-CAM: where in an image a classifier finds the evidence for a class.

The feature map explained is the input of the first layer that turns a 4-D tensor into a
2-D one (global pooling or Flatten), that is, the backbone's last convolutional block. It
is found in the model that owns it: kerastl's classifiers (the backbone a nested model, the
pooling in the outer graph), flat functional models (EfficientNet-Lite's ImageNet classifier)
and Keras Applications wrapped with their preprocessing (the whole network nested, pooling
inside it). Hand-written Grad-CAM fails on nested models with "graph disconnected" because it
asks the outer model for a tensor of the inner graph; here each graph is only asked for its
own tensors and a nested owner is called as one layer of a rebuilt outer chain.

The class score differentiated is the logit (the softmax's input) when the primary output is
a softmax Dense layer, which does not saturate the way the probability does; otherwise the
log-probability.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Iterable

import numpy as np

from kerastl._tf import tensorflow
from kerastl.data.images import BadImage, load_image
from kerastl.errors import DataError, KerastlError
from kerastl.report import save_image_grid
from kerastl.serving import Classifier, load_classifier
from kerastl.task import PREDICTIONS, PRIMARY

GRID_FILE = "gradcam.png"


@dataclasses.dataclass
class Explanation:
    """One image's Grad-CAM: the class explained, its probability, the overlay written."""

    source: Path
    output: Path
    label: str
    probability: float


class GradCam:
    """``GradCam(keras_model)(pixels, class_index=None) -> (heat maps, classes, probabilities)``.

    Pixels are float (N, H, W, 3) in 0-255 (the model's own preprocessing inside); heat maps
    are (N, H, W) in [0, 1], each scaled by its own maximum (all zero when no region speaks
    for the class). ``class_index`` None explains each image's top class.
    """

    def __init__(self, model):
        self.model = model
        self.split = _feature_model(model)
        self.score_layer = _score_layer(model)

    def __call__(self, pixels: np.ndarray, class_index: int | None = None):
        tf = tensorflow()
        pixels = tf.convert_to_tensor(np.asarray(pixels, np.float32))
        with tf.GradientTape() as tape:
            features, head_input = self.split(pixels, training=False)
            tape.watch(features)
            scores = self._scores(features, head_input)
            probabilities = tf.nn.softmax(scores).numpy() if self.score_layer else \
                np.exp(scores.numpy())
            classes = (np.argmax(probabilities, axis=-1) if class_index is None
                       else np.full(len(probabilities), class_index))
            chosen = tf.gather(scores, classes, axis=1, batch_dims=1)
        gradients = tape.gradient(chosen, features)
        weights = tf.reduce_mean(gradients, axis=(1, 2), keepdims=True)
        maps = tf.nn.relu(tf.reduce_sum(weights * features, axis=-1))[..., None]
        maps = tf.image.resize(maps, pixels.shape[1:3], method="bilinear")[..., 0].numpy()
        peaks = maps.max(axis=(1, 2), keepdims=True)
        maps = np.divide(maps, peaks, out=np.zeros_like(maps), where=peaks > 0)
        picked = probabilities[np.arange(len(classes)), classes]
        return maps, classes, picked

    def _scores(self, features, head_input):
        tf = tensorflow()
        if self.score_layer is not None:
            return tf.matmul(head_input, self.score_layer.kernel) + self.score_layer.bias
        return tf.math.log(tf.maximum(head_input, 1e-12))


def _feature_model(model):
    """A model image -> [feature map, input of the class scores] built from ``model``."""
    import keras

    score_layer = _score_layer(model)
    flattening = _flattening_layer(model)
    if flattening is not None:
        head = score_layer.input if score_layer is not None and _owns(model, score_layer) \
            else _primary(model.output)
        return keras.Model(model.inputs, [flattening.input, head])
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    nested = [i for i, layer in enumerate(layers)
              if isinstance(layer, keras.Model) and _flattening_layer(layer) is not None]
    if not nested or nested[0] != len(layers) - 1:
        raise KerastlError(f"{model.name}: no global pooling or Flatten after a convolutional "
                           "block to explain (Grad-CAM needs a CNN classifier)")
    inner = _feature_model(layers[-1])
    inputs = keras.Input(model.input_shape[1:])
    x = inputs
    for layer in layers[:-1]:
        x = layer(x)
    return keras.Model(inputs, inner(x))


def _flattening_layer(model):
    """The first layer of ``model``'s own graph taking a 4-D tensor to a 2-D one."""
    import keras

    for layer in model.layers:
        if isinstance(layer, (keras.layers.InputLayer, keras.Model)):
            continue
        tensor_in, tensor_out = layer.input, layer.output
        if isinstance(tensor_in, (list, tuple, dict)) or isinstance(tensor_out, (list, dict)):
            continue  # a merge (Add, Concatenate) or a multi-output layer
        if len(tensor_in.shape) == 4 and len(tensor_out.shape) == 2:
            return layer
    return None


def _score_layer(model):
    """The softmax Dense layer giving the primary output, in ``model`` or the model nested
    last in it; None when there is none (scores are then log-probabilities)."""
    import keras

    for owner in (model, model.layers[-1]):
        if not isinstance(owner, keras.Model):
            continue
        try:
            layer = owner.get_layer(PREDICTIONS)
        except ValueError:
            continue
        if isinstance(layer, keras.layers.Dense) and \
                getattr(layer.activation, "__name__", "") == "softmax":
            return layer
    return None


def _owns(model, layer) -> bool:
    return any(candidate is layer for candidate in model.layers)


def _primary(output):
    return output[PRIMARY] if isinstance(output, dict) else output


def overlay(image: np.ndarray, heat: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """``heat`` (H, W in [0, 1]) as a jet-coloured layer over the uint8 ``image``."""
    import matplotlib

    colours = matplotlib.colormaps["jet"](heat)[..., :3] * 255.0
    blended = (1 - alpha) * np.asarray(image, np.float32) + alpha * colours
    return np.clip(np.round(blended), 0, 255).astype(np.uint8)


def explain(model: str | Path | Classifier, inputs: Iterable[str | Path], out_dir: str | Path,
            class_name: str | None = None, overwrite: bool = False,
            batch_size: int = 16) -> tuple[list[Explanation], dict[str, str]]:
    """Grad-CAM of each image in ``inputs`` (files or folders) for its top class, or
    ``class_name``: ``OUT/NAME_gradcam.png`` per image and ``OUT/gradcam.png``, a grid of the
    images above their overlays. Unreadable files are skipped and returned as
    {file: reason}. ``model`` is a run or ``.keras`` file, or a loaded :class:`Classifier`
    with its Keras model (an ImageNet network from ``load_imagenet_classifier``)."""
    from kerastl.inference import image_files

    inputs = list(inputs)
    classifier = model if isinstance(model, Classifier) else load_classifier(model)
    if classifier.keras_model is None or classifier.kind not in ("keras", "imagenet"):
        raise KerastlError(f"{classifier.path} is a {classifier.kind} export: Grad-CAM needs "
                           "the Keras model (give the run or its .keras file)")
    class_index = None if class_name is None else _class_index(classifier, class_name)
    files, pixels, skipped = _read(image_files(inputs), classifier.image_size)
    targets = _targets(files, out_dir, overwrite, inputs)
    cam = GradCam(classifier.keras_model)
    results, overlays = [], []
    for start in range(0, len(files), batch_size):
        batch = pixels[start:start + batch_size]
        maps, classes, probabilities = cam(batch, class_index)
        for i, (heat, c, p) in enumerate(zip(maps, classes, probabilities)):
            image = overlay(batch[i], heat)
            _write_png(targets[start + i], image)
            overlays.append(image)
            results.append(Explanation(files[start + i], targets[start + i],
                                       classifier.class_names[c], float(p)))
    captions = [[f.name[:18] for f in files], [f"{r.label[:12]} {r.probability:.2f}"
                                               for r in results]]
    save_image_grid([list(pixels), overlays], targets[-1],
                    cell=max(96, min(192, classifier.image_size[0])), captions=captions)
    return results, skipped


def _class_index(classifier: Classifier, name: str) -> int:
    if name not in classifier.class_names:
        shown = ", ".join(classifier.class_names[:20])
        raise KerastlError(f"class {name!r} is not one of the model's classes ({shown}"
                           f"{', ...' if len(classifier.class_names) > 20 else ''})")
    return classifier.class_names.index(name)


def _read(files: list[Path], size) -> tuple[list[Path], np.ndarray, dict[str, str]]:
    kept, pixels, skipped = [], [], {}
    for path in files:
        try:
            pixels.append(load_image(path, size))
            kept.append(path)
        except (BadImage, OSError) as exc:
            skipped[str(path)] = getattr(exc, "reason", str(exc))
    if not kept:
        raise DataError("none of the images could be read")
    return kept, np.stack(pixels), skipped


def _targets(files: list[Path], out_dir, overwrite: bool, inputs) -> list[Path]:
    """One overlay path per image, then the grid's; all checked before anything is written."""
    from kerastl.runs import check_output_file

    out = Path(out_dir)
    names = [f"{f.stem}_gradcam.png" for f in files] + [GRID_FILE]
    if len(set(names)) != len(names):
        raise KerastlError("two inputs share a file name (or one is named gradcam): their "
                           "outputs would collide")
    targets = [check_output_file(out / name, overwrite, inputs=inputs, option="--out")
               for name in names]
    out.mkdir(parents=True, exist_ok=True)
    return targets


def _write_png(path: Path, image: np.ndarray) -> None:
    from kerastl.report import png_bytes
    from kerastl.runs import atomic_write

    atomic_write(path, png_bytes(image))
