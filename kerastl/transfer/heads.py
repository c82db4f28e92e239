"""Extra classification heads for multi-task training.

A head's labels come from a mapping file over the primary classes (for example
class -> superclass): JSON ``{"Sandal": "footwear", ...}`` or a two-column CSV
``class,label``. Every primary class must be mapped.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path
from typing import Sequence

import numpy as np

from kerastl.errors import KerastlError
from kerastl.task import PRIMARY



@dataclasses.dataclass(frozen=True)
class Head:
    """An extra head: its name, class names, the lookup from primary labels, its loss weight."""

    name: str
    class_names: tuple[str, ...]
    lookup: tuple[int, ...]
    weight: float = 1.0

    def as_dict(self) -> dict:
        return {"name": self.name, "classes": list(self.class_names), "weight": self.weight}


def parse_head(option: str) -> tuple[str, Path, float]:
    """``NAME=MAPPING[:WEIGHT]`` -> (name, mapping path, weight)."""
    name, sep, rest = option.partition("=")
    if not sep or not name or not rest:
        raise KerastlError(f"--head takes NAME=MAPPING_FILE[:WEIGHT]. Received: {option!r}")
    if name == PRIMARY:
        raise KerastlError(f"'{PRIMARY}' is the primary head's name; pick another")
    path_text, colon, tail = rest.rpartition(":")
    try:
        return name, Path(path_text), float(tail)
    except ValueError:
        return name, Path(rest), 1.0


def read_mapping(path: Path) -> dict[str, str]:
    if not path.exists():
        raise KerastlError(f"no mapping file at {path}")
    if path.suffix.lower() == ".json":
        mapping = json.loads(path.read_text())
        if not isinstance(mapping, dict):
            raise KerastlError(f"{path} must hold a JSON object of class -> label")
        return {str(k): str(v) for k, v in mapping.items()}
    with path.open(newline="") as f:
        rows = [row for row in csv.reader(f) if row and not row[0].startswith("#")]
    if rows and [c.strip().lower() for c in rows[0][:2]] == ["class", "label"]:
        rows = rows[1:]
    return {row[0].strip(): row[1].strip() for row in rows if len(row) >= 2}


def make_head(name: str, path: Path, weight: float, primary_classes: Sequence[str]) -> Head:
    """A :class:`Head` whose labels map each primary class through the file at ``path``."""
    mapping = read_mapping(path)
    missing = [c for c in primary_classes if c not in mapping]
    if missing:
        raise KerastlError(f"{path} does not map these classes to a {name}: {missing}")
    class_names = tuple(sorted({mapping[c] for c in primary_classes}))
    lookup = tuple(class_names.index(mapping[c]) for c in primary_classes)
    return Head(name, class_names, lookup, weight)


def lookups(heads: Sequence[Head]) -> dict[str, np.ndarray]:
    return {head.name: np.asarray(head.lookup, dtype=np.int64) for head in heads}
