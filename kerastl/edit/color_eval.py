"""Judge a colour-correction model on degraded copies of clean images it did not train on."""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from kerastl.data.images import resize_array
from kerastl.edit import color_ops
from kerastl.edit.baseline import classical_correction
from kerastl.metrics.image_quality import mean_ciede2000, psnr

VERSIONS = ("degraded", "baseline", "corrected")


def predict_params(model, images: Sequence[np.ndarray], batch_size: int = 32) -> np.ndarray:
    """The adjustment parameters ``model`` finds in each uint8 image (any size).

    The model sees a copy resized the way training images were (Pillow,
    antialiased), so the parameters apply to the original at full resolution.
    """
    size = tuple(model.input_shape[1:3])
    small = np.stack([resize_array(np.asarray(image, np.uint8), size) for image in images])
    return np.asarray(model.predict(small.astype(np.float32), batch_size=batch_size, verbose=0))


def correct(image: np.ndarray, params: np.ndarray, strength: float = 1.0) -> np.ndarray:
    """Undo ``params`` (times ``strength``) on one uint8 image; uint8 out, same size."""
    restored = color_ops.invert(np.asarray(image, np.float32)[None] / 255.0,
                                np.asarray(params, np.float32)[None] * strength)
    return (np.clip(np.asarray(restored)[0], 0.0, 1.0) * 255.0).round().astype(np.uint8)


@dataclasses.dataclass
class ColorReport:
    """Per-image figures, the images behind them, and the parameters: ``applied`` degraded
    each clean image, ``found`` is what the model answered (both ``(images, 6)``)."""

    clean: list[np.ndarray]
    versions: dict[str, list[np.ndarray]]
    figures: dict[str, dict[str, list[float]]]
    applied: np.ndarray
    found: np.ndarray
    grid_titles = ("clean", *VERSIONS)

    @property
    def summary(self) -> dict:
        """Mean PSNR (dB) and CIEDE2000 per version, and the CIEDE2000 reduction vs degraded."""
        out = {version: {name: float(np.mean(values)) for name, values in figures.items()}
               for version, figures in self.figures.items()}
        before = out["degraded"]["ciede2000"]
        for version in ("baseline", "corrected"):
            out[version]["ciede2000_reduction"] = 1.0 - out[version]["ciede2000"] / before
        out["images"] = len(self.clean)
        return out

    def parameter_correlation(self) -> dict[str, float]:
        """Pearson correlation of found against applied, per adjustment (1 is perfect)."""
        return {name: float(np.corrcoef(self.applied[:, i], self.found[:, i])[0, 1])
                for i, name in enumerate(color_ops.NAMES)}

    def ciede2000_with(self, params: np.ndarray) -> float:
        """Mean CIEDE2000 after undoing ``params`` on every degraded image; with ``applied``
        it is the floor that clipping leaves to any corrector."""
        return float(np.mean([
            mean_ciede2000(clean.astype(np.float32) / 255.0,
                           correct(degraded, p).astype(np.float32) / 255.0)
            for clean, degraded, p in zip(self.clean, self.versions["degraded"], params)]))

    def grid_rows(self, count: int) -> list[list[np.ndarray]]:
        return [[self.clean[i]] + [self.versions[v][i] for v in VERSIONS]
                for i in range(min(count, len(self.clean)))]


def evaluate_color(model, clean_images: Sequence[np.ndarray], *, seed: int,
                   strength: float = 1.0) -> ColorReport:
    """Degrade each clean uint8 image at random, correct it with ``model`` and with the
    classical baseline, and measure PSNR and CIEDE2000 of every version against the clean one."""
    params = color_ops.random_params(len(clean_images), seed, strength)
    degraded = [np.asarray(color_ops.degrade(image[None], p[None]))[0].astype(np.uint8)
                for image, p in zip(clean_images, params)]
    found = predict_params(model, degraded)
    versions = {"degraded": degraded,
                "baseline": [classical_correction(image) for image in degraded],
                "corrected": [correct(image, p) for image, p in zip(degraded, found)]}
    figures = {version: {"psnr": [], "ciede2000": []} for version in VERSIONS}
    for i, clean in enumerate(clean_images):
        reference = clean.astype(np.float32) / 255.0
        for version in VERSIONS:
            image = versions[version][i].astype(np.float32) / 255.0
            figures[version]["psnr"].append(min(psnr(reference, image), 100.0))
            figures[version]["ciede2000"].append(mean_ciede2000(reference, image))
    return ColorReport(list(clean_images), versions, figures, params, found)
