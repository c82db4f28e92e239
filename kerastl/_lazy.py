"""Packages whose public names are imported on first use, so that importing the package (and
``kerastl --help``) does not start TensorFlow."""

from __future__ import annotations

import importlib


def lazy_getattr(package: str, names: dict[str, str]):
    """A module ``__getattr__`` for ``package`` that imports each of ``names`` (name ->
    module) when it is first asked for."""
    def __getattr__(name: str):
        if name in names:
            return getattr(importlib.import_module(names[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    return __getattr__
