"""Read a trained classifier back: evaluate it on data, predict images."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Iterable

import numpy as np

from kerastl._tf import tensorflow
from kerastl.data.images import IMAGE_EXTENSIONS, BadImage, SkippedFiles, load_image
from kerastl.data.sources import load_splits
from kerastl.errors import DataError
from kerastl.runs import read_labels, resolve_model_file


@dataclasses.dataclass
class Classifier:
    """A loaded model with its class names and input size."""

    model: object
    class_names: list[str]
    path: Path

    @property
    def image_size(self) -> tuple[int, int]:
        _, height, width, _ = self.model.input_shape
        return int(height), int(width)


def load_classifier(run_or_model: str | Path) -> Classifier:
    """Load ``runs/NAME`` or a ``.keras`` file (Keras ``safe_mode`` stays on)."""
    tensorflow()
    import keras

    import kerastl.layers  # noqa: F401 - registers kerastl's layers for loading

    path = resolve_model_file(run_or_model)
    model = keras.models.load_model(path)
    n_classes = int(model.output_shape[-1])
    names = read_labels(path) or [f"class_{i}" for i in range(n_classes)]
    if len(names) != n_classes:
        raise DataError(f"{path.parent / 'labels.txt'} names {len(names)} classes but the "
                        f"model has {n_classes} outputs")
    return Classifier(model, names, path)


def evaluate(run_or_model: str | Path, data: str, batch_size: int = 64,
             split: str | None = None) -> dict:
    """Classification report of a trained model on ``data``.

    A pre-split folder (or a source with a test split) is evaluated on ``test``
    (else ``val``); a plain class-per-folder tree on all its images.
    """
    from kerastl.transfer.finetune import evaluate_imageset

    classifier = load_classifier(run_or_model)
    skipped = SkippedFiles()
    splits = load_splits(data, classifier.image_size, skipped)
    chosen = split or next(s for s in ("test", "val", "train") if s in splits)
    if chosen not in splits:
        raise DataError(f"{data} has no {chosen!r} split; it has {sorted(splits)}")
    images = splits[chosen].relabel_to(classifier.class_names)
    report = evaluate_imageset(classifier.model, images, batch_size, chosen)
    report["data"] = str(data)
    report["skipped"] = skipped.as_dict()
    return report


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


def predict(run_or_model: str | Path, inputs: Iterable[str | Path], top_k: int = 3,
            batch_size: int = 64) -> list[dict]:
    """Top-k classes for each image; unreadable files get an ``error`` instead."""
    classifier = load_classifier(run_or_model)
    files = image_files(inputs)
    top_k = max(1, min(top_k, len(classifier.class_names)))
    results: list[dict] = []
    for start in range(0, len(files), batch_size):
        results.extend(_predict_batch(classifier, files[start:start + batch_size], top_k))
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
        probabilities = classifier.model.predict(np.stack(pixels).astype(np.float32), verbose=0)
        good = iter(probabilities)
        for row in rows:
            if "error" not in row:
                probs = next(good)
                order = np.argsort(-probs)[:top_k]
                row["top"] = [{"label": classifier.class_names[i], "probability": float(probs[i])}
                              for i in order]
    return rows
