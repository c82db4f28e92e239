"""How far an export is from the Keras model: differences, agreement, size, latency."""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Callable

import numpy as np

Predict = Callable[[np.ndarray], np.ndarray]


def parity_report(keras_predict: Predict, exported_predict: Predict, pixels: np.ndarray,
                  artifact: Path, source: str, latency_images: int = 20) -> dict:
    """Compare two predictors on ``pixels`` (float32 NHWC, 0-255).

    Returns file size, the max absolute difference of probabilities, top-1
    agreement, and median per-image latency of each (batch of one).
    """
    reference = batched(keras_predict, pixels)
    exported = batched(exported_predict, pixels)
    return {
        "artifact": str(artifact),
        "size_bytes": artifact_size(artifact),
        "check_images": int(len(pixels)),
        "check_images_from": source,
        **agreement(reference, exported),
        "latency_ms_per_image": {
            "keras": median_latency_ms(keras_predict, pixels[:latency_images]),
            "export": median_latency_ms(exported_predict, pixels[:latency_images]),
        },
    }


def agreement(reference: np.ndarray, exported: np.ndarray) -> dict:
    """Top-1 agreement and the largest difference of two predictions of the same images. A row
    with a NaN or infinite value on either side disagrees (argmax would call NaN class 0);
    ``max_abs_diff`` is then None (JSON has no NaN) and ``non_finite_rows`` counts them."""
    if not len(reference):
        return {"max_abs_diff": 0.0, "top1_agreement": 1.0, "non_finite_rows": 0}
    finite = np.isfinite(reference).all(axis=1) & np.isfinite(exported).all(axis=1)
    same = (reference.argmax(1) == exported.argmax(1)) & finite
    bad = int((~finite).sum())
    largest = None if bad else float(np.max(np.abs(reference - exported)))
    return {"max_abs_diff": largest, "top1_agreement": float(np.mean(same)),
            "non_finite_rows": bad}


def batched(predict: Predict, pixels: np.ndarray, batch_size: int = 32) -> np.ndarray:
    return np.concatenate([np.asarray(predict(pixels[i:i + batch_size]))
                           for i in range(0, len(pixels), batch_size)])


def median_latency_ms(predict: Predict, pixels: np.ndarray) -> float:
    """Median wall time of single-image calls, after one warm-up call."""
    if not len(pixels):
        return 0.0
    predict(pixels[:1])
    times = []
    for i in range(len(pixels)):
        start = time.perf_counter()
        predict(pixels[i:i + 1])
        times.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(times), 3)


def artifact_size(path: Path) -> int:
    path = Path(path)
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size
