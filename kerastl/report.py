"""Plots for a run: training curves with the unfreeze point, confusion matrix."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from kerastl.runs import staged_file


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    with staged_file(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
    return path


def plot_history(rows: Sequence[dict], phase_starts: dict[str, int], path: Path,
                 metrics: Sequence[str] | None = None,
                 before_training: dict | None = None) -> Path:
    """Loss and accuracy (or ``metrics``) per epoch, train and validation, a dashed line where
    each phase starts; ``before_training`` (validation figures of a head set rather than
    trained) as a star at epoch 0."""
    plt = _pyplot()
    epochs = [row["epoch"] + 1 for row in rows]
    if metrics is None:
        accuracy = "accuracy" if any("accuracy" in row for row in rows) else "class_accuracy"
        metrics = ("loss", accuracy)
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 4), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        for prefix, style in (("", "-"), ("val_", "--")):
            values = [row.get(prefix + metric) for row in rows]
            if any(v is not None for v in values):
                ax.plot(epochs, values, style, marker="o", label=(prefix or "train_") + metric)
        if (before_training or {}).get("val_" + metric) is not None:
            ax.plot([0], [before_training["val_" + metric]], "*", markersize=12,
                    label=f"val_{metric} before training")
        for phase, start in phase_starts.items():
            if start > 0:
                ax.axvline(start + 0.5, color="grey", linestyle=":")
                ax.annotate(phase, (start + 0.5, ax.get_ylim()[1]), fontsize=8,
                            rotation=90, va="top", ha="right")
        ax.set_xlabel("epoch")
        ax.set_title(metric)
        ax.legend()
    try:
        return _save(fig, path)
    finally:
        plt.close(fig)


def plot_confusion(matrix: Sequence[Sequence[int]], class_names: Sequence[str],
                   path: Path, title: str = "confusion matrix") -> Path:
    """A labelled confusion matrix (rows: true class, columns: predicted)."""
    plt = _pyplot()
    matrix = np.asarray(matrix)
    side = max(4, 0.5 * len(class_names) + 2)
    fig, ax = plt.subplots(figsize=(side, side))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(class_names)), class_names, rotation=45, ha="right")
    ax.set_yticks(range(len(class_names)), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    if len(class_names) <= 20:
        threshold = matrix.max() / 2 if matrix.size else 0
        for (i, j), value in np.ndenumerate(matrix):
            ax.text(j, i, str(value), ha="center", va="center", fontsize=8,
                    color="white" if value > threshold else "black")
    try:
        return _save(fig, path)
    finally:
        plt.close(fig)


def save_image_grid(rows: Sequence[Sequence[np.ndarray]], path: Path, *, cell: int = 128,
                    titles: Sequence[str] | None = None,
                    captions: Sequence[Sequence[str]] | None = None) -> Path:
    """Save uint8 RGB images as a grid PNG, one list per row, each cell ``cell`` px high.

    ``titles`` label the columns in a strip above the first row; ``captions``
    (one list per row) go in a strip under each image.
    """
    from PIL import Image, ImageDraw

    columns = max(len(row) for row in rows)
    header = 16 if titles else 0
    caption = 14 if captions else 0
    height = cell + caption
    grid = Image.new("RGB", (columns * cell, header + len(rows) * height), "white")
    draw = ImageDraw.Draw(grid)
    for r, row in enumerate(rows):
        for c, image in enumerate(row):
            pixels = np.asarray(image, np.uint8)
            pixels = pixels[..., 0] if pixels.ndim == 3 and pixels.shape[-1] == 1 else pixels
            tile = Image.fromarray(pixels).convert("RGB")
            scale = cell / max(tile.size)
            tile = tile.resize((max(1, round(tile.width * scale)),
                                max(1, round(tile.height * scale))),
                               Image.Resampling.NEAREST if scale > 1 else
                               Image.Resampling.LANCZOS)
            grid.paste(tile, (c * cell + (cell - tile.width) // 2,
                              header + r * height + (cell - tile.height) // 2))
            if captions:
                draw.text((c * cell + 2, header + r * height + cell), str(captions[r][c]),
                          fill="black")
    if titles:
        for c, title in enumerate(titles):
            draw.text((c * cell + 4, 2), str(title), fill="black")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with staged_file(path) as tmp:
        grid.save(tmp, format="PNG")
    return path


def png_bytes(image: np.ndarray) -> bytes:
    """A uint8 image (H, W, 1 or 3) encoded as PNG."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(buffer, format="PNG")
    return buffer.getvalue()


def square_grid(images: np.ndarray) -> list[list[np.ndarray]]:
    """N images -> the rows of a square-ish grid (gray as RGB), for :func:`save_image_grid`."""
    images = np.asarray(images)
    if images.shape[-1] == 1:
        images = np.repeat(images, 3, axis=-1)
    columns = int(np.ceil(np.sqrt(len(images))))
    return [list(images[i:i + columns]) for i in range(0, len(images), columns)]


def plot_misclassified(images: np.ndarray, labels: np.ndarray, probabilities: np.ndarray,
                       class_names: Sequence[str], path: Path, count: int = 32,
                       columns: int = 8) -> Path | None:
    """The ``count`` most confident mistakes as a captioned grid ("true > predicted p");
    None when nothing is misclassified."""
    predicted = probabilities.argmax(1)
    wrong = np.flatnonzero(predicted != labels)
    if not len(wrong):
        return None
    wrong = wrong[np.argsort(-probabilities[wrong, predicted[wrong]])][:count]
    cells = [(images[i], f"{class_names[labels[i]][:9]}>{class_names[predicted[i]][:9]} "
                         f"{probabilities[i, predicted[i]]:.2f}") for i in wrong]
    rows = [cells[i:i + columns] for i in range(0, len(cells), columns)]
    return save_image_grid([[image for image, _ in row] for row in rows], path, cell=112,
                           captions=[[text for _, text in row] for row in rows])
