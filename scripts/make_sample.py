"""Make ``kerastl/assets/sample.npz``: a class-balanced Fashion-MNIST subset.

The first TRAIN_PER_CLASS training and TEST_PER_CLASS test images of each
class, as 28x28 uint8, so that ``sample`` (and ``kerastl quickstart``) works
offline. Needs Fashion-MNIST (``apt-get install dataset-fashion-mnist``)::

    python scripts/make_sample.py
"""

from pathlib import Path

import numpy as np

from kerastl.data.sources import FASHION_MNIST_CLASSES, SAMPLE_PATH, fashion_mnist_arrays

TRAIN_PER_CLASS = 300
TEST_PER_CLASS = 100


def first_per_class(images: np.ndarray, labels: np.ndarray, n: int):
    keep = np.sort(np.concatenate([np.flatnonzero(labels == c)[:n] for c in range(10)]))
    return images[keep], labels[keep].astype(np.int64)


def main(path: Path = SAMPLE_PATH) -> None:
    (x_train, y_train), (x_test, y_test) = fashion_mnist_arrays()
    x_train, y_train = first_per_class(x_train, y_train, TRAIN_PER_CLASS)
    x_test, y_test = first_per_class(x_test, y_test, TEST_PER_CLASS)
    np.savez_compressed(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
                        class_names=np.array(FASHION_MNIST_CLASSES))
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB): "
          f"{len(x_train)} train, {len(x_test)} test images")


if __name__ == "__main__":
    main()
