"""Where exports go: ``saved_models/<name>/<version>/`` with integer versions.

Each export takes the next integer version of its name (what TF Serving scans
for), reserved by creating a hidden ``.version-N`` file exclusively, so two exports
running at once never take the same number; a SavedModel is built in a hidden
temporary folder and renamed into place, so a server never sees half a version.
TFLite and ONNX files sit beside the version folders as
``<name>-v<version>[-<quantization>].<ext>``, with ``labels.txt``.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from kerastl.errors import KerastlError
from kerastl.runs import atomic_write_text

_VERSIONED_FILE = re.compile(r"-v(\d+)(?:-[a-z0-9]+)?\.(?:tflite|onnx)$")


_RESERVED = re.compile(r"^\.version-(\d+)$")


def existing_versions(model_dir: Path) -> set[int]:
    """Versions already used (or reserved) by folders or files under ``model_dir``."""
    if not model_dir.is_dir():
        return set()
    versions = {int(p.name) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit()}
    versions |= {int(m.group(1)) for p in model_dir.iterdir()
                 if (m := _VERSIONED_FILE.search(p.name) or _RESERVED.match(p.name))}
    return versions


@contextmanager
def reserved_version(model_dir: Path, requested: int | None):
    """The version an export writes (:func:`choose_version`), held while the block runs; the
    reservation goes when it ends (the artifact then marks the version), and with it a
    ``model_dir`` the failed export left empty."""
    created = not model_dir.exists()
    version = choose_version(model_dir, requested)
    try:
        yield version
    finally:
        (model_dir / f".version-{version}").unlink(missing_ok=True)
        if created and model_dir.is_dir() and not any(model_dir.iterdir()):
            model_dir.rmdir()


def choose_version(model_dir: Path, requested: int | None) -> int:
    """``requested``, if free; else the next integer after the highest in use. The version is
    reserved before it is returned (see the module docstring)."""
    if requested is not None and requested < 1:
        raise KerastlError(f"--version must be a positive integer. Received: {requested}")
    model_dir.mkdir(parents=True, exist_ok=True)
    while True:
        used = existing_versions(model_dir)
        version = requested if requested is not None else max(used, default=0) + 1
        if version not in used and _reserve(model_dir, version):
            return version
        if requested is not None:
            raise KerastlError(f"version {requested} of {model_dir.name} already exists in "
                               f"{model_dir.parent}: pick another --version or leave it out")


def _reserve(model_dir: Path, version: int) -> bool:
    """Create ``.version-N`` exclusively: True if this process got it."""
    try:
        os.close(os.open(model_dir / f".version-{version}", os.O_CREAT | os.O_EXCL | os.O_WRONLY,
                         0o644))
    except FileExistsError:
        return False
    return True


@contextmanager
def staged_folder(final: Path):
    """Yield a temporary folder beside ``final``; rename it to ``final`` if the block succeeds."""
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.tmp-"))
    staging.chmod(0o755)  # mkdtemp's 0700 would hide the version from a server's user
    try:
        yield staging
        os.rename(staging, final)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def write_labels(folder: Path, class_names: list[str]) -> Path:
    return atomic_write_text(folder / "labels.txt", "\n".join(class_names) + "\n")


def export_version(model, format: str, model_dir: Path, version: int | None, quantize: str,
                   savedmodel, tflite) -> tuple[Path, int, dict]:
    """Write ``model`` as a new version under ``model_dir``: ``savedmodel(model, folder)`` or
    ``tflite(model, model_dir, name, version, quantize)``; returns (path, version, report)."""
    with reserved_version(model_dir, version) as version:
        if format == "savedmodel":
            path, report = savedmodel(model, model_dir / str(version))
        else:
            path, report = tflite(model, model_dir, model_dir.name, version, quantize)
    return path, version, report


def check_plain_export(format: str, quantize: str, what: str, why_no_int8: str) -> None:
    """A model other than a classifier exports to ``savedmodel`` or ``tflite``, unquantized or
    with float weights quantized (int8 activations: ``why_no_int8``)."""
    from kerastl.errors import KerastlError

    if format not in ("savedmodel", "tflite"):
        raise KerastlError(f"a {what} exports to savedmodel or tflite. Received: {format}")
    if quantize not in ("none", "dynamic", "float16"):
        raise KerastlError(f"a {what} takes --quantize none, dynamic or float16 ({why_no_int8})")
