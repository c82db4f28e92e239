"""Use a trained classifier (run, .keras, SavedModel or .tflite): evaluate, predict.

Reading the model back is :mod:`kerastl.serving`'s job, shared with export."""

from __future__ import annotations

import io
import weakref
from pathlib import Path
from typing import Iterable

import numpy as np

from kerastl.data import ImageSet
from kerastl.data.images import IMAGE_EXTENSIONS, BadImage, SkippedFiles, load_image
from kerastl.data.sources import load_splits
from kerastl.data.split import narrow
from kerastl.errors import DataError
from kerastl.metrics import classification_report
from kerastl.runs import CONFIG_FILE, atomic_write_text, check_output_file
from kerastl.serving import Classifier, load_classifier
from kerastl.task import PRIMARY


def evaluate_heads(model, data: ImageSet, heads: list, split: str, batch_size: int = 64) -> dict:
    """Report of a Keras model on ``data``: the primary head, plus ``heads`` per extra head."""
    from kerastl.data.pipeline import make_dataset

    outputs = predictions(model, make_dataset(data, batch_size))
    if not heads:
        return classification_report(data.labels, outputs, data.class_names, split)
    report = classification_report(data.labels, outputs[PRIMARY], data.class_names, split)
    report["heads"] = {head.name: classification_report(
        np.asarray(head.lookup)[data.labels], outputs[head.name], list(head.class_names), split)
        for head in heads}
    return report


def predictions(model, dataset):
    """``model``'s outputs (an array, or a dict of them) over the batches of ``dataset``,
    through one traced forward pass.

    Not ``model.predict``: for a model compiled with ``steps_per_execution`` N, Keras 3 traces
    the network N times into one graph (measured: 20 s before the first result for
    MobileNetV3Small compiled with N=10, against 5 s at N=1 and 3.5 s here). Not
    ``predict_on_batch`` either: under a multi-replica strategy that returns every replica's
    copy of a batch. A forward pass in inference mode needs no replica context."""
    import keras

    forward = _forward_pass(model)
    batches = [keras.tree.map_structure(np.asarray, forward(images)) for images, _ in dataset]
    return keras.tree.map_structure(lambda *parts: np.concatenate(parts), *batches)


_FORWARD_PASSES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _forward_pass(model):
    """``model`` in inference mode as one ``tf.function``, traced once per model (validation
    and test splits share it), held no longer than the model."""
    if model not in _FORWARD_PASSES:
        from kerastl._tf import tensorflow

        held = weakref.ref(model)  # the cache must not keep the model alive
        _FORWARD_PASSES[model] = tensorflow().function(
            lambda images: held()(images, training=False), reduce_retracing=True)
    return _FORWARD_PASSES[model]


def evaluate(model: str | Path, data: str, batch_size: int = 64,
             split: str | None = None, errors_plot: str | Path | None = None,
             tta: bool = False, overwrite: bool = False, classes=None,
             per_class: int | None = None, limit: int | None = None, seed: int = 0) -> dict:
    """Classification report of a trained model (any format ``load_classifier`` reads) on ``data``.

    A pre-split folder (or a source with a test split) is evaluated on ``test``
    (else ``val``); a plain class-per-folder tree on all its images. With
    ``errors_plot``, the most confident mistakes are saved there as a grid. ``tta``
    averages each image's probabilities with its mirror image's (see
    :meth:`Classifier.probabilities`). ``errors_plot`` is never one of the command's inputs,
    and an existing file only with ``overwrite``. ``classes``, ``per_class`` and ``limit``
    narrow the evaluated split as they narrow training data (seeded with ``seed``).
    """
    if errors_plot:
        errors_plot = check_output_file(errors_plot, overwrite, _inputs(model, [data]),
                                        "--errors")
    classifier = load_classifier(model)
    skipped = SkippedFiles()
    splits = load_splits(data, classifier.image_size, skipped)
    chosen = split or next(s for s in ("test", "val", "train") if s in splits)
    if chosen not in splits:
        raise DataError(f"{data} has no {chosen!r} split; it has {sorted(splits)}")
    images = narrow(splits[chosen], classes, per_class, limit, seed)
    images = images.relabel_to(classifier.class_names)
    probabilities = classifier.probabilities(images.images, batch_size, tta=tta)
    report = classification_report(images.labels, probabilities, images.class_names, chosen)
    if errors_plot:
        from kerastl.report import plot_misclassified

        written = plot_misclassified(images.images, images.labels, probabilities,
                                     images.class_names, Path(errors_plot))
        report["errors_plot"] = str(written) if written else None
    report.update({"data": str(data), "model": str(classifier.path), "format": classifier.kind,
                   "tta": tta, "skipped": skipped.as_dict()})
    return report


def _inputs(model: str | Path, data: Iterable[str | Path]) -> list[Path]:
    """What a command reads: the model (every file of its run directory) and the data given
    as paths (specs such as ``sample`` name no file)."""
    model = Path(model).expanduser()
    folder = model if model.is_dir() else model.parent
    run_files = [folder] if (folder / CONFIG_FILE).exists() else [model]
    return run_files + [Path(item) for item in data if Path(item).exists()]


def write_predictions(results: list[dict], handle) -> None:
    """:func:`predict`'s results as CSV rows to an open text ``handle``."""
    import csv

    writer = csv.writer(handle)
    writer.writerow(["file", "rank", "label", "probability", "error"])
    for result in results:
        for rank, top in enumerate(result.get("top", []), start=1):
            writer.writerow([result["file"], rank, top["label"], f"{top['probability']:.6f}", ""])
        if "error" in result:
            writer.writerow([result["file"], "", "", "", result["error"]])


def image_files(inputs: Iterable[str | Path]) -> list[Path]:
    """Image files named directly, or found (recursively) in the folders named."""
    files: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            files.extend(sorted(p for p in item.rglob("*")
                                if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS))
        elif item.exists():
            files.append(item)
        else:
            raise DataError(f"no such file or folder: {item}")
    if not files:
        raise DataError("no image files to predict")
    return files


def predict(model: str | Path | Classifier, inputs: Iterable[str | Path], top_k: int = 3,
            batch_size: int = 64, csv: str | Path | None = None,
            overwrite: bool = False) -> list[dict]:
    """Top-k classes for each image; unreadable files get an ``error`` instead.

    ``model`` is anything :func:`load_classifier` reads, or a loaded :class:`Classifier` (such
    as :func:`kerastl.serving.load_imagenet_classifier`'s). With ``csv``, the results are also
    written there (``file,rank,label,probability,error``), atomically; never over the model's
    run or an input image, and over an existing file only with ``overwrite``.
    """
    inputs = list(inputs)
    if csv is not None:  # refuse a taken file before the work, not after it
        taken = _inputs(model, inputs) if not isinstance(model, Classifier) else inputs
        csv = check_output_file(csv, overwrite, taken, "--csv")
    classifier = model if isinstance(model, Classifier) else load_classifier(model)
    files = image_files(inputs)
    top_k = max(1, min(top_k, len(classifier.class_names)))
    results: list[dict] = []
    for start in range(0, len(files), batch_size):
        results.extend(_predict_batch(classifier, files[start:start + batch_size], top_k))
    if csv is not None:
        buffer = io.StringIO()
        write_predictions(results, buffer)
        atomic_write_text(csv, buffer.getvalue())
    return results


def _predict_batch(classifier: Classifier, files: list[Path], top_k: int) -> list[dict]:
    pixels, rows = [], []
    for path in files:
        try:
            pixels.append(load_image(path, classifier.image_size))
            rows.append({"file": str(path)})
        except BadImage as bad:
            rows.append({"file": str(path), "error": bad.reason})
    if pixels:
        good = iter(classifier.probabilities(np.stack(pixels)))
        for row in rows:
            if "error" not in row:
                probs = next(good)
                order = np.argsort(-probs)[:top_k]
                row["top"] = [{"label": classifier.class_names[i], "probability": float(probs[i])}
                              for i in order]
    return rows
