"""Layer attributes replaced while a model is traced or run, and put back afterwards.

int8 export rewrites a model only for the converter's trace (hard-swish, ``Rescaling``) and
records convolution inputs for its weight statistics; each sets attributes on layers for the
length of a block and must leave the model as it found it, error or not.
"""

from __future__ import annotations

import contextlib
from typing import Iterable

_ABSENT = object()


@contextlib.contextmanager
def swapped(replacements: Iterable[tuple[object, str, object]]):
    """Set each ``(obj, name, value)`` while the block runs; after it every attribute is as
    it was (one the instance did not hold itself, such as a method of its class, is deleted
    again). Yields how many were set."""
    replacements = list(replacements)
    saved = [(obj, name, vars(obj).get(name, _ABSENT)) for obj, name, _ in replacements]
    for obj, name, value in replacements:
        setattr(obj, name, value)
    try:
        yield len(replacements)
    finally:
        for obj, name, old in reversed(saved):
            if old is _ABSENT:
                delattr(obj, name)
            else:
                setattr(obj, name, old)
