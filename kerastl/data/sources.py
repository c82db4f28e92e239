"""Data specs: one string names a dataset everywhere.

=====================  ==========================================================
spec                   source
=====================  ==========================================================
``PATH``               a folder with one sub-folder per class, or with ``train/``,
                       ``val/`` (and ``test/``) folders that each hold class folders
``tfds:NAME[:SPLIT]``  a TensorFlow Datasets dataset (downloaded where online)
``fashion_mnist``      Fashion-MNIST from the Keras cache, Debian's
                       ``dataset-fashion-mnist`` package, or a Keras download
``sample``             a class-balanced Fashion-MNIST subset shipped with kerastl
=====================  ==========================================================

Each loader returns named splits of :class:`ImageSet` at one image size.
"""

from __future__ import annotations

import concurrent.futures
import gzip
import logging
import os
from pathlib import Path

import numpy as np

from kerastl.data.images import BadImage, SkippedFiles, load_image, resize_array
from kerastl.data.file_images import STREAM_ABOVE_BYTES, FileImages, check_file
from kerastl.data.imageset import ImageSet
from kerastl.errors import DataError

log = logging.getLogger(__name__)

FASHION_MNIST_CLASSES = ["T-shirt_top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle_boot"]
FASHION_MNIST_DIRS = (
    Path("~/.keras/datasets/fashion-mnist").expanduser(),
    Path("/usr/share/datasets/fashion-mnist"),
)
SAMPLE_PATH = Path(__file__).resolve().parent.parent / "assets" / "sample.npz"
UNLABELLED = "image"
SPLIT_NAMES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}

#: Decoded images kept in memory at most (uint8 at the model's size).
MAX_IN_MEMORY_BYTES = 8 * 2**30

Splits = dict[str, ImageSet]


def load_splits(spec: str, size: tuple[int, int], skipped: SkippedFiles, *,
                resize: bool = True) -> Splits:
    """Read the data named by ``spec`` as {"train": ..., ["val": ...], ["test": ...]}.

    With ``resize=False`` the bundled sample and Fashion-MNIST come at their own size (28 px
    grey), so that a selection of them is resized alone (:func:`at_size`): 60,000 images at
    224 px would not fit in memory, the 50 of a few-shot run do."""
    spec = str(spec)
    if spec == "sample":
        return _load_npz(SAMPLE_PATH, size if resize else None)
    if spec in ("fashion_mnist", "fashion-mnist"):
        return _load_fashion_mnist(size if resize else None)
    if spec.startswith("tfds:"):
        return _load_tfds(spec, size)
    return load_folder(Path(spec).expanduser(), size, skipped)


# --- folders ------------------------------------------------------------------------

def load_folder(root: Path, size: tuple[int, int], skipped: SkippedFiles) -> Splits:
    """A class-per-sub-folder tree, or one already split into train/val/test."""
    if not root.exists():
        raise DataError(f"no such file or folder: {root} (a data spec is a folder, "
                        "'sample', 'fashion_mnist' or 'tfds:NAME')")
    if not root.is_dir():
        raise DataError(f"{root} is a file; a data spec names a folder of class sub-folders")
    split_dirs = {SPLIT_NAMES[d.name.lower()]: d for d in _subfolders(root)
                  if d.name.lower() in SPLIT_NAMES}
    if "train" in split_dirs:
        class_names = _class_names(split_dirs["train"])
        splits = {split: _read_class_folders(folder, class_names, size, skipped)
                  for split, folder in split_dirs.items()}
    else:
        splits = {"train": _read_class_folders(root, _class_names(root), size, skipped)}
    _warn_empty_classes(root, splits["train"])
    return splits


def _warn_empty_classes(root: Path, train: ImageSet) -> None:
    empty = [name for name, count in train.counts().items() if count == 0]
    if empty:
        log.warning("%s: class folder(s) %s hold no readable image (empty, unreadable, or every "
                    "file skipped): the model keeps them as classes it never sees", root,
                    ", ".join(empty))


def load_unlabelled_splits(spec: str, size: tuple[int, int], skipped: SkippedFiles, *,
                           resize: bool = True) -> Splits:
    """Like :func:`load_splits`, with every image under a folder in one class, ``image``."""
    path = Path(str(spec)).expanduser()
    if not path.is_dir():
        return {name: ImageSet(part.images, np.zeros(len(part), np.int64), [UNLABELLED])
                for name, part in load_splits(spec, size, skipped, resize=resize).items()}
    split_dirs = {SPLIT_NAMES[d.name.lower()]: d for d in _subfolders(path)
                  if d.name.lower() in SPLIT_NAMES}
    if "train" not in split_dirs:
        split_dirs = {"train": path}
    return {split: _read_files(_files_under(folder), np.zeros(0, np.int64), [UNLABELLED], size,
                               skipped, folder)
            for split, folder in split_dirs.items()}


def _files_under(root: Path) -> list[Path]:
    return [p for p in sorted(root.rglob("*"))
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)]


def _subfolders(root: Path) -> list[Path]:
    """Visible sub-folders of ``root``; a link to a folder inside the same tree (``loop -> .``)
    is skipped, since it would make a class of copies of other classes' images."""
    folders = []
    for path in sorted(root.iterdir()):
        if not path.is_dir() or path.name.startswith("."):
            continue
        if path.is_symlink() and _inside(path.resolve(), root):
            log.warning("skipped %s: a link to a folder inside the same tree", path)
            continue
        folders.append(path)
    return folders


def _inside(target: Path, root: Path) -> bool:
    """Whether ``target`` is ``root``, a folder under it, or a folder above it."""
    root = root.resolve()
    return target.is_relative_to(root) or root.is_relative_to(target)


def _class_names(root: Path) -> list[str]:
    names = [p.name for p in _subfolders(root)]
    if not names:
        raise DataError(f"{root} has no class sub-folders: put each class's images "
                        "in a folder of its own (root/cat/*.jpg, root/dog/*.jpg)")
    return names


def _read_class_folders(root: Path, class_names: list[str], size: tuple[int, int],
                        skipped: SkippedFiles) -> ImageSet:
    files, labels = [], []
    for label, name in enumerate(class_names):
        folder = root / name
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*")):
            if path.is_file() and not path.name.startswith("."):
                files.append(path)
                labels.append(label)
    return _read_files(files, np.asarray(labels, dtype=np.int64), class_names, size, skipped, root)


def _read_files(files: list[Path], labels: np.ndarray, class_names: list[str],
                size: tuple[int, int], skipped: SkippedFiles, root: Path) -> ImageSet:
    """Decode ``files`` in parallel; unreadable ones are counted in ``skipped``, not fatal.

    An empty ``labels`` means every file is class 0.
    """
    labels = labels if len(labels) else np.zeros(len(files), np.int64)
    if len(files) * size[0] * size[1] * 3 > STREAM_ABOVE_BYTES:
        return _stream_files(files, labels, class_names, size, skipped, root)
    images = np.zeros((len(files), size[0], size[1], 3), dtype=np.uint8)
    ok = np.zeros(len(files), dtype=bool)
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        for i, result in enumerate(pool.map(lambda p: _try_load(p, size), files)):
            if isinstance(result, BadImage):
                skipped.add(files[i], result.reason)
            else:
                images[i], ok[i] = result, True
    data = ImageSet(images[ok], labels[ok], class_names)
    if len(data) == 0:
        raise DataError(f"no readable images under {root}")
    return data


def _stream_files(files: list[Path], labels: np.ndarray, class_names: list[str],
                  size: tuple[int, int], skipped: SkippedFiles, root: Path) -> ImageSet:
    """Check every file now (decoded once, not kept); decode batch by batch while training."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        problems = list(pool.map(check_file, files))
    for path, bad in zip(files, problems):
        if bad is not None:
            skipped.add(path, bad.reason)
    ok = np.array([bad is None for bad in problems], dtype=bool)
    if not ok.any():
        raise DataError(f"no readable images under {root}")
    kept = [path for path, good in zip(files, ok) if good]
    log.info("%d images under %s would take %.1f GiB decoded at %dx%d: decoding them batch by "
             "batch from their files", len(kept), root,
             len(kept) * size[0] * size[1] * 3 / 2**30, *size)
    return ImageSet(FileImages(kept, size), labels[ok], class_names)


def _try_load(path: Path, size: tuple[int, int]):
    try:
        return load_image(path, size)
    except BadImage as bad:
        return bad


def _check_fits_in_memory(n_images: int, size: tuple[int, int]) -> None:
    needed = n_images * size[0] * size[1] * 3
    if needed > MAX_IN_MEMORY_BYTES:
        raise DataError(f"{n_images} images at {size[0]}x{size[1]} need {needed / 2**30:.1f} GiB "
                        f"in memory (limit {MAX_IN_MEMORY_BYTES / 2**30:.0f} GiB): "
                        "use a smaller --image-size or a subset")


# --- arrays: sample, Fashion-MNIST, TFDS ----------------------------------------------

def from_arrays(images: np.ndarray, labels: np.ndarray, class_names: list[str],
                size: tuple[int, int] | None) -> ImageSet:
    """Resize raw uint8 arrays (N,H,W[,C]) to RGB at ``size`` through the file path's resize
    (``size`` None: as they are, to be resized by :func:`at_size` once selected)."""
    if size is None:
        return ImageSet(images, labels, class_names)
    _check_fits_in_memory(len(images), size)
    if images.shape[1:3] == tuple(size) and images.ndim == 4 and images.shape[3] == 3:
        resized = images.astype(np.uint8, copy=False)
    else:
        resized = np.stack([resize_array(img, size) for img in images]) if len(images) else \
            np.zeros((0, size[0], size[1], 3), np.uint8)
    return ImageSet(resized, labels, class_names)


def at_size(data: ImageSet, size: tuple[int, int]) -> ImageSet:
    """``data`` as RGB images at ``size`` (a set from ``load_splits(..., resize=False)``)."""
    if tuple(data.images.shape[1:]) == (*size, 3):
        return data  # a folder's images are read at size
    return from_arrays(data.images, data.labels, data.class_names, size)


def _load_npz(path: Path, size: tuple[int, int] | None) -> Splits:
    if not path.exists():
        raise DataError(f"the bundled sample is missing from the install: {path}")
    with np.load(path) as npz:
        names = [str(n) for n in npz["class_names"]]
        return {"train": from_arrays(npz["x_train"], npz["y_train"], names, size),
                "test": from_arrays(npz["x_test"], npz["y_test"], names, size)}


def fashion_mnist_arrays() -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """((x_train, y_train), (x_test, y_test)) as uint8 28x28 arrays, offline first."""
    for folder in FASHION_MNIST_DIRS:
        if (folder / "train-images-idx3-ubyte.gz").exists():
            return ((_read_idx(folder / "train-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28),
                     _read_idx(folder / "train-labels-idx1-ubyte.gz", 8)),
                    (_read_idx(folder / "t10k-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28),
                     _read_idx(folder / "t10k-labels-idx1-ubyte.gz", 8)))
    try:
        from kerastl._tf import quiet_tensorflow
        quiet_tensorflow()
        import keras
        return keras.datasets.fashion_mnist.load_data()
    except Exception as exc:  # noqa: BLE001 - any download failure is one line for the user
        raise DataError("Fashion-MNIST is not on this machine and could not be downloaded "
                        f"({type(exc).__name__}). Install it offline with "
                        "'apt-get install dataset-fashion-mnist', or use 'sample'") from None


def _read_idx(path: Path, header_bytes: int) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        return np.frombuffer(f.read(), dtype=np.uint8, offset=header_bytes)


def _load_fashion_mnist(size: tuple[int, int] | None) -> Splits:
    (x_train, y_train), (x_test, y_test) = fashion_mnist_arrays()
    return {"train": from_arrays(x_train, y_train, FASHION_MNIST_CLASSES, size),
            "test": from_arrays(x_test, y_test, FASHION_MNIST_CLASSES, size)}


def _load_tfds(spec: str, size: tuple[int, int]) -> Splits:
    _, name, *rest = spec.split(":")
    if not name:
        raise DataError(f"a TFDS spec is tfds:NAME[:SPLIT]. Received: {spec!r}")
    split = rest[0] if rest else None
    try:
        from kerastl._tf import quiet_tensorflow
        quiet_tensorflow()
        import tensorflow_datasets as tfds

        builder = tfds.builder(name)
        _check_tfds_split(spec, split, list(builder.info.splits))  # known before a download
        builder.download_and_prepare()
        _check_tfds_split(spec, split, list(builder.info.splits))
        label_feature = builder.info.features["label"]
        splits = {split: split} if split else {s: s for s in builder.info.splits}
        loaded = {SPLIT_NAMES.get(key, key): builder.as_dataset(split=value, as_supervised=True)
                  for key, value in splits.items()}
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - offline downloads fail in many ways
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        unchecked = f"; the split {split!r} could not be checked either" if split else ""
        raise DataError(f"could not load {spec} ({type(exc).__name__}: {first_line}){unchecked}. "
                        "TFDS downloads need the internet; offline, use a folder, "
                        "'fashion_mnist' or 'sample'") from None
    result = {}
    for split_name, dataset in loaded.items():
        pairs = list(tfds.as_numpy(dataset))
        images = [resize_array(np.squeeze(x) if x.shape[-1] == 1 else x, size) for x, _ in pairs]
        result[split_name] = ImageSet(
            np.stack(images) if images else np.zeros((0, *size, 3), np.uint8),
            np.array([y for _, y in pairs], dtype=np.int64), list(label_feature.names))
    if "train" not in result:
        result["train"] = result.pop(next(iter(result)))
    return result


def _check_tfds_split(spec: str, split: str | None, known: list[str]) -> None:
    """A split expression (``train``, ``train[:10%]``, ``train+test``) naming only splits the
    dataset has; nothing to check while the dataset's splits are unknown (not yet downloaded)."""
    if not split or not known:
        return
    names = [part.split("[")[0].strip() for part in split.split("+")]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise DataError(f"{spec}: the dataset has no split {', '.join(map(repr, unknown))}; "
                        f"it has {', '.join(known)}")
