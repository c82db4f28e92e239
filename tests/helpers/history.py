"""A run's history.csv without its timing columns: what a seed must repeat exactly."""

from __future__ import annotations

import csv
from pathlib import Path

TIMING_COLUMNS = ("epoch_seconds", "train_seconds")


def learning_curve(run: Path) -> list[dict]:
    with (Path(run) / "history.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert rows and all(column in rows[0] for column in TIMING_COLUMNS)  # the times are there
    return [{k: v for k, v in row.items() if k not in TIMING_COLUMNS} for row in rows]
