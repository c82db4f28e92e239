"""Images decoded from their files when a batch needs them: folders too large to hold decoded.

A folder whose decoded images would take more than :data:`STREAM_ABOVE_BYTES` is not
decoded up front: its :class:`~kerastl.data.ImageSet` holds a :class:`FileImages`, and the
training pipeline decodes each batch as it goes (the same Pillow decode and resize as the
in-memory path, so both give the same pixels). 10,000 JPEGs at 224 px would be 1.4 GiB
decoded; streamed, memory holds a few batches.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import logging
import os
from pathlib import Path

import numpy as np

from kerastl.data.images import BadImage, load_image

log = logging.getLogger("kerastl")

#: Folders larger than this decoded (uint8) are streamed from their files.
STREAM_ABOVE_BYTES = 2**30

_POOL = concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2)


class FileImages:
    """An array-like stack (N, H, W, 3) of uint8 images decoded from ``paths`` on access.

    ``len``, ``shape`` and ``dtype`` as an array's; an integer index decodes one image, a
    slice or index array gives a lazy subset, :meth:`read` and ``np.asarray`` decode.
    Every file decoded once at loading (:func:`check_file`); one that fails later (changed
    on disk since) comes back black, with a warning naming it.
    """

    ndim = 4
    dtype = np.dtype(np.uint8)

    def __init__(self, paths, size: tuple[int, int]):
        self.paths = np.asarray([str(p) for p in paths], dtype=object)
        self.size = (int(size[0]), int(size[1]))

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self), *self.size, 3)

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape))

    def __getitem__(self, key):
        if isinstance(key, (int, np.integer)):
            return self.read([key])[0]
        return FileImages(self.paths[key], self.size)

    def __array__(self, dtype=None, copy=None):
        images = self.read(np.arange(len(self)))
        return images if dtype is None else images.astype(dtype)

    def astype(self, dtype) -> np.ndarray:
        return np.asarray(self, dtype=dtype)

    def read(self, indices) -> np.ndarray:
        """Decode the images at ``indices``, in parallel threads (Pillow releases the GIL)."""
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        out = np.zeros((len(indices), *self.size, 3), np.uint8)
        paths = [self.paths[i] for i in indices]
        for k, image in enumerate(_POOL.map(self._decode, paths)):
            out[k] = image
        return out

    def fingerprint_bytes(self) -> bytes:
        """What identifies the data without decoding it: paths, sizes and times."""
        digest = hashlib.blake2b(digest_size=16)
        for path in self.paths:
            stat = os.stat(path)
            digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        return digest.digest()

    def _decode(self, path: str) -> np.ndarray:
        try:
            return load_image(path, self.size)
        except BadImage as bad:
            log.warning("%s could not be decoded (%s): used as a black image", path, bad)
            return np.zeros((*self.size, 3), np.uint8)


def check_file(path: Path) -> BadImage | None:
    """Decode ``path`` once at loading time (not kept), through the same checks as the
    in-memory path, so that a bad file is skipped and counted there, not met mid-training."""
    try:
        load_image(path)
    except BadImage as bad:
        return bad
    return None
