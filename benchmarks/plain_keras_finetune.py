"""The script a user would write without kerastl: the keras.io transfer-learning guide.

``image_dataset_from_directory`` with its validation split, ``prefetch``, flip and rotation
augmentation in the model, the base called with ``training=False`` under a pooling/dropout/
dense head; ``fit`` with the base frozen at Adam 1e-3, then unfrozen and recompiled at 1e-4,
validation every epoch; the model saved as ``.keras``. The backbone is the network kerastl
builds (a Keras Application, or EfficientNet-Lite), loaded from the same weights file, with
the same preprocessing, so both sides train the same network.

Prints one JSON line: seconds spent loading, in each phase's ``fit`` (and its training steps
alone, validation excluded), saving, and in the whole process.

    python benchmarks/plain_keras_finetune.py FOLDER --backbone mobilenetv3small \\
        --weights FILE.weights.h5 --size 224 --out model.keras
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from kerastl.backbones import build_backbone, get_spec  # noqa: E402
from kerastl.layers import Preprocess  # noqa: E402


class TrainTime(keras.callbacks.Callback):
    """Seconds of the training steps alone: each epoch's start to its validation's start."""

    def __init__(self):
        super().__init__()
        self.seconds, self._started = 0.0, None

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()

    def on_test_begin(self, logs=None):
        if self._started is not None:
            self.seconds += time.perf_counter() - self._started
            self._started = None


def build(args, n_classes: int):
    base = build_backbone(args.backbone, args.size, weights=args.weights)
    base.trainable = False
    inputs = keras.Input((args.size, args.size, 3))
    x = keras.layers.RandomFlip("horizontal")(inputs)
    x = keras.layers.RandomRotation(0.1)(x)
    x = Preprocess(get_spec(args.backbone).preprocessing)(x)
    x = base(x, training=False)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(0.2)(x)
    outputs = keras.layers.Dense(n_classes, activation="softmax")(x)
    return keras.Model(inputs, outputs), base


def fit(model, lr: float, train_ds, val_ds, epochs: int) -> tuple[float, float]:
    model.compile(keras.optimizers.Adam(lr), "sparse_categorical_crossentropy",
                  metrics=["accuracy"], jit_compile=False)
    timer = TrainTime()
    start = time.perf_counter()
    model.fit(train_ds, validation_data=val_ds, epochs=epochs, callbacks=[timer], verbose=0)
    return time.perf_counter() - start, timer.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder")
    parser.add_argument("--backbone", required=True)
    parser.add_argument("--weights", required=True)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--frozen-epochs", type=int, default=2)
    parser.add_argument("--finetune-epochs", type=int, default=3)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    keras.utils.set_random_seed(0)
    times = {"import": time.perf_counter() - STARTED}
    start = time.perf_counter()
    train_ds, val_ds = keras.utils.image_dataset_from_directory(
        args.folder, validation_split=0.2, subset="both", seed=1337,
        image_size=(args.size, args.size), batch_size=args.batch_size, verbose=False)
    n_train = len(train_ds.file_paths)
    n_classes = len(train_ds.class_names)
    train_ds = train_ds.prefetch(tf.data.AUTOTUNE)
    val_ds = val_ds.prefetch(tf.data.AUTOTUNE)
    model, base = build(args, n_classes)
    times["load_and_build"] = time.perf_counter() - start
    times["frozen_fit"], times["frozen_train"] = fit(model, 1e-3, train_ds, val_ds,
                                                     args.frozen_epochs)
    base.trainable = True
    times["unfrozen_fit"], times["unfrozen_train"] = fit(model, 1e-4, train_ds, val_ds,
                                                         args.finetune_epochs)
    start = time.perf_counter()
    model.save(args.out)
    times["save"] = time.perf_counter() - start
    times["process"] = time.perf_counter() - STARTED
    print(json.dumps({"n_train": n_train, "seconds": times}))


if __name__ == "__main__":
    main()
