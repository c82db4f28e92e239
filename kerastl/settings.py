"""Checking a job's settings before any work: names, types and ranges.

Every trainer's config is a dataclass. Settings reach it from the CLI, from Python and
from a ``config.json`` a user hands to ``--config`` or that ``--resume`` reads back; all
three pass through here, so a typo, a string where a number belongs or a negative rate is
one :class:`~kerastl.errors.KerastlError` naming the setting, raised before a run
directory exists. No TensorFlow is imported.
"""

from __future__ import annotations

import dataclasses
import math
import os
import types
import typing
from typing import Any, TypeVar

from kerastl.errors import KerastlError
from kerastl.runs import check_name

Config = TypeVar("Config")


@dataclasses.dataclass(kw_only=True)
class DataSelection:
    """Which images of a data spec a job reads: the same on every command that reads one
    (``--classes``, ``--per-class``, ``--limit``)."""

    classes: str | list[str | int] | None = None
    per_class: int | None = None
    limit: int | None = None


@dataclasses.dataclass(kw_only=True)
class RunSettings:
    """Where a run is written and how it repeats: every trainer's config has these."""

    seed: int = 0
    deterministic: bool = True
    runs_dir: str = "runs"
    name: str | None = None
    overwrite: bool = False
    verbose: int | None = None


#: (setting, low, high, low is open) of the fields above; each config checks them too.
SELECTION_RANGES = [("per_class", 1, None, False), ("limit", 1, None, False)]


def check_settings(config, ranges) -> None:
    """The types of every field of ``config``, then the ``ranges`` (``(setting, low, high,
    low is open)``), the data selection's among them, then the run name."""
    check_types(config)
    for name, low, high, low_open in [*SELECTION_RANGES, *ranges]:
        check_range(config, name, low, high, low_open)
    if getattr(config, "name", None):
        check_name(config.name)


def from_settings(cls: type[Config], settings: Any, source: str, **overrides) -> Config:
    """``cls(**settings, **overrides)`` after checking that ``settings`` is an object whose
    keys are all fields of ``cls``; the type and range checks run in ``cls``'s own
    ``__post_init__`` (see :func:`check_types`)."""
    if not isinstance(settings, dict):
        raise KerastlError(f"{source}: the settings must be a JSON object, not a "
                           f"{_json_type(settings)}")
    names = {field.name for field in dataclasses.fields(cls)}
    unknown = sorted(set(settings) - names)
    if unknown:
        raise KerastlError(f"{source}: unknown setting(s) {', '.join(map(repr, unknown))}; "
                           f"the settings are {', '.join(sorted(names))}")
    try:
        return cls(**{**settings, **overrides})
    except (TypeError, KerastlError) as exc:  # a missing, mistyped or out-of-range setting
        raise KerastlError(f"{source}: {exc}") from None


def check_types(config) -> None:
    """Each field of the dataclass instance ``config`` holds a value of its annotated type
    (an int is a float too; a path is a str)."""
    hints = typing.get_type_hints(type(config))
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if not _matches(value, hints[field.name]):
            raise KerastlError(f"{_option(field.name)} takes {_describe(hints[field.name])}. "
                               f"Received: {value!r}")


def check_range(config, name: str, low: float | None = None, high: float | None = None,
                low_open: bool = False) -> None:
    """``config.<name>`` (when not None) lies in ``[low, high]`` (``(low, high]`` with
    ``low_open``) and is finite."""
    value = getattr(config, name)
    if value is None:
        return
    below = low is not None and (value <= low if low_open else value < low)
    if not math.isfinite(value) or below or (high is not None and value > high):
        bounds = [f"> {low}" if low_open else f">= {low}"] if low is not None else []
        bounds += [f"<= {high}"] if high is not None else []
        raise KerastlError(f"{_option(name)} must be {' and '.join(bounds) or 'finite'}. "
                           f"Received: {value!r}")


def check_choice(config, name: str, choices) -> None:
    """``config.<name>`` is one of ``choices``."""
    value = getattr(config, name)
    if value not in tuple(choices):
        shown = ", ".join(str(c) for c in choices if c is not None)
        raise KerastlError(f"{_option(name)} takes {shown}. Received: {value!r}")


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


def _matches(value, hint) -> bool:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is typing.Any:
        return True
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, (str, os.PathLike))
    if origin in (list, tuple):
        (item,) = typing.get_args(hint)[:1] or (typing.Any,)
        return isinstance(value, (list, tuple)) and all(_matches(v, item) for v in value)
    return True


def _describe(hint) -> str:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(arg) for arg in typing.get_args(hint))
    if origin in (list, tuple):
        return f"a list of ({_describe(typing.get_args(hint)[0])})"
    return {type(None): "null", bool: "true/false", int: "a whole number", float: "a number",
            str: "text"}.get(hint, getattr(hint, "__name__", str(hint)))


def _json_type(value) -> str:
    return {list: "list", str: "string", int: "number", float: "number", bool: "boolean",
            type(None): "null"}.get(type(value), type(value).__name__)
