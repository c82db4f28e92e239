"""Accuracy, top-5, per-class precision / recall / F1 and the confusion matrix."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def classification_report(labels: np.ndarray, probabilities: np.ndarray,
                          class_names: Sequence[str], split: str) -> dict:
    """Every figure of a classifier on one split, in plain JSON types.

    Top-5 accuracy is reported where there are more than 5 classes.
    """
    labels = np.asarray(labels, dtype=np.int64)
    predicted = np.argmax(probabilities, axis=1)
    n_classes = len(class_names)
    confusion = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    report = {"split": split, "n": int(len(labels)),
              "accuracy": float(np.mean(predicted == labels)) if len(labels) else 0.0}
    if n_classes > 5:
        top5 = np.argsort(-probabilities, axis=1)[:, :5]
        report["top5_accuracy"] = float(np.mean(np.any(top5 == labels[:, None], axis=1)))
    report["per_class"] = _per_class(confusion, class_names)
    report["macro_f1"] = float(np.mean([c["f1"] for c in report["per_class"].values()]))
    report["confusion_matrix"] = confusion.tolist()
    report["class_names"] = list(class_names)
    return report


def _per_class(confusion: np.ndarray, class_names: Sequence[str]) -> dict:
    true_positive = np.diag(confusion).astype(float)
    predicted = confusion.sum(axis=0).astype(float)
    actual = confusion.sum(axis=1).astype(float)
    precision = np.divide(true_positive, predicted, out=np.zeros_like(true_positive),
                          where=predicted > 0)
    recall = np.divide(true_positive, actual, out=np.zeros_like(true_positive), where=actual > 0)
    denominator = precision + recall
    f1 = np.divide(2 * precision * recall, denominator, out=np.zeros_like(denominator),
                   where=denominator > 0)
    return {name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for name, p, r, f, s in zip(class_names, precision, recall, f1, actual)}
