"""Class-conditional generation, for every generative model kerastl has (the DCGAN, the VAE).

A conditional model has ``num_classes`` > 0 and ``sample(count, seed, labels)``, where
``labels`` are class indices (or one-hot rows); its run's ``config.json`` names the classes.
Here: one-hot rows, the class names of a run, samples of one class, a data folder of
samples per class (kerastl's own folder format, ready for ``finetune``), and whether a
classifier sees each class's samples as that class.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kerastl.errors import DataError, KerastlError
from kerastl.report import png_bytes
from kerastl.runs import atomic_write, check_output_file, read_run_config


def class_rows(labels, count: int, num_classes: int) -> np.ndarray | None:
    """One-hot rows for class indices (or rows given already, such as a blend of two
    classes); None for an unconditional model (``num_classes`` 0). No labels: ``count`` rows
    cycling through the classes."""
    if not num_classes:
        return None
    if labels is None:
        labels = np.arange(count) % num_classes
    labels = np.asarray(labels)
    if labels.ndim == 2:
        return labels.astype(np.float32)
    if labels.min() < 0 or labels.max() >= num_classes:
        raise KerastlError(f"class indices run from 0 to {num_classes - 1}. "
                           f"Received: {sorted(set(labels.tolist()))}")
    return np.eye(num_classes, dtype=np.float32)[labels]


def run_classes(run) -> list[str]:
    """The class names a conditional model's run was trained on (its ``config.json``)."""
    record = read_run_config(run) or {}
    names = record.get("class_names")
    if not isinstance(names, list) or not names:
        raise KerastlError(f"{run} is not a conditional run (its config names no classes)")
    return [str(n) for n in names]


def class_index(names: list[str], name: str) -> int:
    """The index of class ``name`` (a name, or an index as text) among ``names``."""
    if str(name) in names:
        return names.index(str(name))
    if str(name).isdigit() and int(name) < len(names):
        return int(name)
    raise DataError(f"the model has no class {name!r}; its classes are {', '.join(names)}")


def class_labels(run, model, class_name: str | None, count: int,
                 required: bool = True) -> np.ndarray | None:
    """Class indices for ``count`` images of ``class_name``: None for an unconditional model
    (which refuses a class), and for a conditional one given no class unless ``required``
    (then it names the classes to choose from)."""
    if not model.num_classes:
        if class_name is not None:
            raise KerastlError(f"{run} is not conditional: it takes no --class")
        return None
    if class_name is None:
        if not required:
            return None
        raise KerastlError(f"{run} is conditional: name the images' --class "
                           f"({', '.join(run_classes(run))})")
    return np.full(count, class_index(run_classes(run), class_name))


def sample_folders(run, model, per_class: int, out_dir, seed: int = 0,
                   overwrite: bool = False) -> dict[str, int]:
    """``per_class`` samples of every class of a conditional ``model`` (of ``run``) as
    ``OUT/CLASS/sample_NNNN.png``: a data set in kerastl's folder format, ready for
    ``finetune``. Every path is checked before anything is written. Returns the count per
    class."""
    require_conditional(run, model, "--per-class")
    names = run_classes(run)
    out = Path(out_dir)
    paths = {name: [check_output_file(out / name / f"sample_{i:04d}.png", overwrite,
                                      option="--out") for i in range(per_class)]
             for name in names}
    for index, name in enumerate(names):
        images = model.sample(per_class, seed + index, np.full(per_class, index))
        (out / name).mkdir(parents=True, exist_ok=True)
        for image, path in zip(images, paths[name]):
            atomic_write(path, png_bytes(image))
    return {name: per_class for name in names}


def class_accuracy(model, run, classifier_run, per_class: int = 100, seed: int = 0) -> dict:
    """Does class c's sample look like class c? For each class of a conditional ``model``,
    the share of ``per_class`` samples that the classifier run labels as that class (classes
    matched by name), and their mean: a model that ignores its label scores about
    1 / classes."""
    from kerastl.data.images import resize_array
    from kerastl.serving import load_classifier

    require_conditional(run, model, "--classifier")
    names = run_classes(run)
    classifier = load_classifier(classifier_run)
    missing = [name for name in names if name not in classifier.class_names]
    if missing:
        raise KerastlError(f"the classifier {classifier_run} does not know the class(es) "
                           f"{', '.join(missing)}; its classes are "
                           f"{', '.join(classifier.class_names)}")
    scores = {}
    for index, name in enumerate(names):
        images = model.sample(per_class, seed + index, np.full(per_class, index))
        images = np.repeat(images, 3, axis=-1) if images.shape[-1] == 1 else images
        pixels = np.stack([resize_array(image, classifier.image_size) for image in images])
        predicted = np.argmax(classifier.probabilities(pixels), axis=1)
        scores[name] = round(float(np.mean([classifier.class_names[p] == name
                                            for p in predicted])), 4)
    return {"per_class": scores, "mean": round(float(np.mean(list(scores.values()))), 4),
            "samples_per_class": per_class, "classifier": str(classifier_run)}


def require_conditional(run, model, option: str) -> None:
    """One line when ``option`` (which needs classes) meets an unconditional model."""
    if not model.num_classes:
        raise KerastlError(f"{option} needs a conditional model (trained with --conditional); "
                           f"{run} is not conditional")


def check_same_classes(run, names: list[str], data: str, found) -> None:
    """A conditional run's classes against those of the data it is scored or adapted on."""
    if names != list(found):
        raise KerastlError(f"{run} is conditional on the classes {', '.join(names)}; "
                           f"{data} has {', '.join(found)}: select the same classes")
