"""The run directory: every training job writes ``runs/<name>/``.

Files are written to a temporary name and renamed into place, so a kill never
leaves half a file; an existing run is never overwritten silently.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from kerastl.errors import RunDirError

MODEL_FILE = "model.keras"
LABELS_FILE = "labels.txt"
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"
HISTORY_FILE = "history.csv"
LOG_FILE = "run.log"
HEADS_FILE = "heads.json"


def default_run_name(job: str, backbone: str) -> str:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return f"{job}-{backbone}-{stamp}"


class RunDir:
    """A run directory and atomic writes into it."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @classmethod
    def create(cls, path: str | Path, overwrite: bool = False) -> "RunDir":
        """Make a new run directory; an existing non-empty one needs ``overwrite``."""
        path = Path(path)
        if path.exists() and any(path.iterdir()):
            if not overwrite:
                raise RunDirError(f"run directory {path} already exists: pick another --name, "
                                  "or pass --overwrite to replace it")
            shutil.rmtree(path)
        for sub in ("plots", "checkpoints", "logs"):
            (path / sub).mkdir(parents=True, exist_ok=True)
        return cls(path)

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    def write_text(self, name: str, text: str) -> Path:
        return atomic_write_text(self.path / name, text)

    def write_json(self, name: str, data: Any) -> Path:
        return self.write_text(name, json.dumps(data, indent=2, default=_json_default) + "\n")

    def save_model(self, model, name: str = MODEL_FILE) -> Path:
        return atomic_save_model(model, self.path / name)

    @contextlib.contextmanager
    def capture_log(self, logger: logging.Logger):
        """Copy ``logger``'s records to ``run.log`` in this run while the block runs."""
        handler = logging.FileHandler(self.path / LOG_FILE)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        try:
            yield handler
        finally:
            logger.removeHandler(handler)
            handler.close()


def atomic_write_text(path: Path, text: str) -> Path:
    """Write ``text`` to a temporary file beside ``path`` and rename it into place."""
    return atomic_write(path, text.encode())


def atomic_write(path: Path, data: bytes) -> Path:
    """Write ``data`` to a temporary file beside ``path``, flush it, rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_save_model(model, path: Path) -> Path:
    """``model.save`` writes in place: save to ``x.tmp.keras`` (Keras wants the suffix), rename."""
    tmp = path.with_name(f".{path.stem}.tmp.keras")
    try:
        model.save(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def versions() -> dict[str, str]:
    """The versions that decide a run's numbers, for ``config.json``."""
    import platform

    import keras
    import numpy as np
    import tensorflow as tf

    from kerastl import __version__

    return {"kerastl": __version__, "tensorflow": tf.__version__, "keras": keras.__version__,
            "numpy": np.__version__, "python": platform.python_version()}


def _json_default(value: Any):
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


# --- reading a model back -------------------------------------------------------------

def resolve_model_file(run_or_model: str | Path) -> Path:
    """``runs/NAME`` -> ``runs/NAME/model.keras``; a ``.keras`` file stays itself."""
    path = Path(run_or_model).expanduser()
    if path.is_dir():
        model_file = path / MODEL_FILE
        if not model_file.exists():
            raise RunDirError(f"{path} has no {MODEL_FILE}: not a finished kerastl run")
        return model_file
    if path.is_file() and path.suffix == ".keras":
        return path
    raise RunDirError(f"{path} is neither a kerastl run directory nor a .keras model file")


def read_labels(model_file: Path) -> list[str] | None:
    """Class names from ``labels.txt`` beside the model, if there is one."""
    labels = model_file.parent / LABELS_FILE
    if labels.exists():
        return [line for line in labels.read_text().splitlines() if line]
    return None
