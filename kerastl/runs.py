"""The run directory: every training job writes ``runs/<name>/``.

Files are written to a temporary name and renamed into place, so a kill never
leaves half a file; an existing run is never overwritten silently. A run name is
one path component, so a run lands inside its runs folder and nowhere else.
``--overwrite`` replaces only a kerastl run (its ``config.json`` names a job), and
moves the old one aside until the new run has finished: a new run that fails before
its first epoch puts the old one back.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable

from kerastl.errors import KerastlError, ModelFileError, RunDirError

log = logging.getLogger("kerastl")

MODEL_FILE = "model.keras"
LABELS_FILE = "labels.txt"
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"
HISTORY_FILE = "history.csv"
LOG_FILE = "run.log"
HEADS_FILE = "heads.json"


#: The jobs kerastl trains, by the family of commands that reads their runs back.
CLASSIFIER_JOBS = ("finetune", "pretrain", "multitask", "quickstart")
GAN_JOBS = ("gan", "gan-finetune")
COLOR_JOB = "edit-color"
VAE_JOBS = ("vae", "vae-finetune")
#: What a user can do with a run of each family, for "this command does not take it" errors.
HANDLED_BY = {
    CLASSIFIER_JOBS: "use it with kerastl predict, evaluate or export "
                     "(resume it with kerastl finetune --resume)",
    GAN_JOBS: "use it with kerastl gan sample, interpolate, evaluate, finetune or kerastl "
              "export (resume it with kerastl gan resume)",
    (COLOR_JOB,): "use it with kerastl edit color or kerastl export "
                  "(resume it with kerastl edit train-color --resume)",
    VAE_JOBS: "use it with kerastl vae sample, reconstruct, interpolate, edit, evaluate, "
              "finetune or kerastl export (resume it with kerastl vae resume)",
}
#: How to continue an interrupted run of each family (None: it cannot be resumed).
RESUME_COMMAND = {CLASSIFIER_JOBS: "kerastl finetune --resume {run}",
                  GAN_JOBS: "kerastl gan resume {run}",
                  (COLOR_JOB,): "kerastl edit train-color --resume {run}",
                  VAE_JOBS: "kerastl vae resume {run}"}


def default_run_name(job: str, backbone: str) -> str:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return f"{job}-{backbone}-{stamp}"


def check_name(name: str, option: str = "--name") -> str:
    """``name`` if it is one plain path component (no separator, not ``.`` or ``..``, not
    absolute): a run or export named by a user lands inside its folder and nowhere else."""
    text = str(name)
    if (not text.strip() or text in (".", "..") or "/" in text or "\\" in text
            or os.sep in text or "\0" in text or Path(text).is_absolute()):
        raise KerastlError(f"{option} is a single folder name (no '/', not '.' or '..'). "
                           f"Received: {text!r}")
    return text


def run_path(runs_dir: str | Path, name: str | None, default: str) -> Path:
    """Where a run goes: ``runs_dir/name`` (a checked name) or ``runs_dir/default``."""
    return Path(runs_dir).expanduser() / (check_name(name) if name else default)


def family(job: str | None) -> tuple[str, ...] | None:
    """The family (a key of :data:`HANDLED_BY`) a job belongs to, if kerastl knows it."""
    return next((jobs for jobs in HANDLED_BY if job in jobs), None)


def is_kerastl_run(path: Path) -> bool:
    """Whether ``path`` is a directory that kerastl made: its ``config.json`` names a job."""
    try:
        record = json.loads((Path(path) / CONFIG_FILE).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(record, dict) and family(record.get("job")) is not None


class RunDir:
    """A run directory and atomic writes into it."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @classmethod
    @contextlib.contextmanager
    def create(cls, path: str | Path, job: str, overwrite: bool = False):
        """Make the run directory ``path`` for ``job`` while the block runs.

        An existing non-empty ``path`` needs ``overwrite`` and must be a kerastl run; it is
        moved aside, removed once the block ends well, and put back if the block fails
        before the new run has saved anything.
        """
        path = Path(path)
        aside = _move_aside(path, overwrite) if _exists(path) else None
        run = cls(path)
        try:
            run.make_folders()
        except KerastlError:
            _restore(path, aside)
            raise
        run.write_json(CONFIG_FILE, {"job": job})  # marks it as kerastl's before any work
        try:
            yield run
        except BaseException:
            if aside is not None and not run.saved_anything():
                _restore(path, aside)
            elif aside is not None:
                log.warning("the run that %s replaced is kept at %s", path, aside)
            raise
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)

    def make_folders(self) -> None:
        """The run's sub-folders (plots, checkpoints, TensorBoard logs), where missing."""
        try:
            for sub in ("plots", "checkpoints", "logs"):
                (self.path / sub).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RunDirError(f"cannot create the run directory {self.path}: "
                              f"{exc.strerror or exc}") from None

    def saved_anything(self) -> bool:
        """Whether training has saved a model or a checkpoint here."""
        return (self / MODEL_FILE).exists() or (self / "checkpoints" / "state.json").exists()

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
        set_current_run(self.path)
        handler = logging.FileHandler(self.path / LOG_FILE)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        try:
            yield handler
        finally:
            logger.removeHandler(handler)
            handler.close()


def _exists(path: Path) -> bool:
    """Whether ``path`` is taken: a non-empty folder, a file or a link."""
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        raise RunDirError(f"{path} exists and is not a run directory: pick another --name")
    return path.is_dir() and any(path.iterdir())


def _move_aside(path: Path, overwrite: bool) -> Path:
    """Rename the run at ``path`` to a hidden name beside it, for :meth:`RunDir.create`."""
    if not is_kerastl_run(path):
        raise RunDirError(f"{path} already exists and is not a kerastl run (no config.json "
                          "naming a job): kerastl never replaces what it did not write; pick "
                          "another --name")
    if not overwrite:
        raise RunDirError(f"run directory {path} already exists: pick another --name, "
                          "or pass --overwrite to replace it")
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    aside = path.with_name(f".{path.name}.replaced-{stamp}")
    os.rename(path, aside)
    return aside


def _restore(path: Path, aside: Path | None) -> None:
    """Undo :func:`_move_aside`: the new, empty-handed run goes, the old one comes back."""
    if aside is None:
        return
    shutil.rmtree(path, ignore_errors=True)
    os.rename(aside, path)


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
    """The process umask, read without setting it (``os.umask`` sets it, and TensorFlow's
    threads may be creating files at that moment)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022


def atomic_save_model(model, path: Path) -> Path:
    """``model.save`` writes in place: save to a staged ``.tmp.keras`` name, then rename."""
    with staged_file(path, ".keras") as tmp:
        model.save(tmp)
    return path


@contextlib.contextmanager
def staged_file(path: Path, suffix: str | None = None):
    """A unique temporary name beside ``path``, for writers that write in place (Keras,
    matplotlib, Pillow): it ends in ``suffix`` (default: ``path``'s), since such writers read
    the format from it. When the block ends well the file is flushed to disk and renamed to
    ``path``; otherwise it is removed. Unique names keep concurrent processes apart."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.",
                                suffix=".tmp" + (suffix if suffix is not None else path.suffix))
    os.close(fd)
    tmp = Path(name)
    try:
        os.chmod(tmp, 0o666 & ~_umask())
        yield tmp
        _fsync(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


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


# --- reading a run or a model back ---------------------------------------------------

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


def read_run_config(run_or_model: str | Path) -> dict | None:
    """The ``config.json`` of a run directory (or of the run a model file sits in); None
    where there is none (a bare model file). A file that is not a JSON object is an error."""
    path = Path(run_or_model).expanduser()
    config_file = (path if path.is_dir() else path.parent) / CONFIG_FILE
    if not config_file.is_file():
        return None
    try:
        record = json.loads(config_file.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise RunDirError(f"{config_file} is not a readable kerastl config ({exc})") from None
    if not isinstance(record, dict):
        raise RunDirError(f"{config_file} is not a kerastl config: it holds a JSON "
                          f"{type(record).__name__}, not an object")
    return record


def require_job(run_or_model: str | Path, jobs: Iterable[str], command: str) -> dict | None:
    """The run's config, after checking that ``command`` reads runs of its job: a run of
    another job is one line naming the commands that do. None for a bare model file."""
    record = read_run_config(run_or_model)
    if record is None:
        return None
    job = record.get("job")
    if job not in tuple(jobs):
        handled = HANDLED_BY.get(family(job))
        raise RunDirError(f"{run_or_model} is a {job or 'job-less'} run, which {command} does "
                          f"not take" + (f": {handled}" if handled else ""))
    return record


def require_settings(record: dict, run: str | Path) -> dict:
    """The ``settings`` of a run's config record, checked to be an object."""
    settings = record.get("settings")
    if not isinstance(settings, dict):
        raise RunDirError(f"{run}/{CONFIG_FILE} has no settings: the run stopped before it "
                          "started training, or the file is not kerastl's")
    return settings


def load_run_model(run_or_model: str | Path, jobs: Iterable[str], model_class: type,
                   what: str, train_command: str):
    """The ``model_class`` model of a run directory (of one of ``jobs``) or ``.keras`` file,
    optimizer state included; anything else is one line (``what`` names the model)."""
    require_job(run_or_model, jobs, f"this {what} command")
    model = load_keras_model(resolve_model_file(run_or_model))
    if not isinstance(model, model_class):
        raise KerastlError(f"{run_or_model} is not a kerastl {what}; train one with "
                           f"'{train_command}'")
    return model


def load_keras_model(path: str | Path, **options):
    """``keras.models.load_model`` in safe mode, with kerastl's layers registered; a file
    Keras cannot read is one :class:`ModelFileError` saying why, not a traceback."""
    from kerastl._tf import tensorflow

    tensorflow()
    import keras

    import kerastl.layers  # noqa: F401 - registers kerastl's layers for loading

    try:
        return keras.models.load_model(path, safe_mode=True, **options)
    except Exception as exc:  # noqa: BLE001 - a foreign or broken file fails in many ways
        raise ModelFileError(_load_failure(Path(path), exc)) from None


def _load_failure(path: Path, exc: Exception) -> str:
    text = str(exc)
    if "Lambda" in text or "safe_mode" in text:
        return (f"{path} holds a Lambda layer (Python code). kerastl loads models in Keras "
                "safe mode and never runs code from a model file; rebuild the model without "
                "Lambda layers (see docs/trust.md)")
    if "Could not locate class" in text:
        name = text.split("Could not locate class", 1)[1].split(".")[0].strip(" '\"")
        return (f"{path} holds a {name} model, which this command does not read (a GAN or "
                "another job's model? see 'kerastl --help')")
    if isinstance(exc, (OSError, EOFError)) or "zip" in text.lower() or "File not found" in text:
        return f"{path} is not a readable Keras file (truncated, or not a .keras archive)"
    first = (text.strip().splitlines() or [type(exc).__name__])[0][:200]
    return f"{path} could not be loaded as a Keras model ({type(exc).__name__}: {first})"


def read_labels(model_file: Path) -> list[str] | None:
    """Class names from ``labels.txt`` beside the model, if there is one."""
    labels = model_file.parent / LABELS_FILE
    if labels.exists():
        return [line for line in labels.read_text(errors="replace").splitlines() if line]
    return None


# --- files a command writes besides runs ---------------------------------------------

def check_output_file(path: str | Path, overwrite: bool, inputs: Iterable[str | Path] = (),
                      option: str = "the output") -> Path:
    """``path`` if a command may write it: never one of the command's own ``inputs`` (files,
    or every file under a folder named), and an existing file only with ``overwrite``."""
    path = Path(path).expanduser()
    target = path.resolve()
    for item in map(Path, inputs):
        item = item.expanduser()
        taken = (target.is_relative_to(item.resolve()) and target.exists()) if item.is_dir() \
            else target == item.resolve()
        if taken:
            raise KerastlError(f"{option} {path} is one of this command's inputs; kerastl never "
                               "writes over its inputs: pick another file")
    if path.is_dir():
        raise KerastlError(f"{option} {path} is a folder; give a file name")
    if path.exists() and not overwrite:
        raise KerastlError(f"{path} exists: pass --overwrite to replace it")
    return path


# --- the run this process is writing, for messages on interruption and full disks ----

_CURRENT_RUN: list[Path] = []


def set_current_run(path: Path | None) -> None:
    _CURRENT_RUN[:] = [Path(path)] if path is not None else []


def current_run() -> Path | None:
    """The run directory the job in this process last wrote (None before any)."""
    return _CURRENT_RUN[0] if _CURRENT_RUN else None


def resume_hint(run: Path) -> str:
    """How to continue the interrupted ``run``, in one sentence."""
    try:
        job = (read_run_config(run) or {}).get("job")
    except RunDirError:
        job = None
    command = RESUME_COMMAND.get(family(job))
    if command is None:
        return f"the run directory {run} is incomplete; start the run again"
    return f"continue it with: {command.format(run=run)}"


def disk_full(exc: BaseException) -> KerastlError | None:
    """A :class:`KerastlError` for an exception that means the disk is full, else None."""
    if not (getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT)
            or "No space left on device" in str(exc) or "errno = 28" in str(exc)):
        return None
    where = getattr(exc, "filename", None)
    folder = Path(where).parent if where else current_run()
    message = f"the disk is full (writing in {folder or 'the output folder'})"
    run = current_run()
    if run is not None:
        kept = "its last complete epoch is kept" if RunDir(run).saved_anything() else \
            "no epoch had finished"
        message += f"; {kept}: free space, then {resume_hint(run)}"
    return KerastlError(message)
