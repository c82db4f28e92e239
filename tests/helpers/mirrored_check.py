"""Run in a subprocess: two logical CPU devices must exist before TensorFlow starts.

Trains the same steps on one device and under MirroredStrategy over cpu:0 and cpu:1
with the same global batch (through Keras' fit, and through kerastl's own loop), and
prints JSON with the largest weight and loss differences: for a finetuned classifier
(frozen BatchNorm, no dropout, plain SGD) and for the DCGAN's train_step (synchronized
BatchNorm, latents fed as data).
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
tf.config.experimental.enable_op_determinism()

import keras  # noqa: E402
import numpy as np  # noqa: E402

from kerastl.distribute import make_strategy  # noqa: E402
from kerastl.engine.loop import fit  # noqa: E402


def classifier_run(strategy, images, labels, own_loop=False):
    from kerastl.transfer.model import build_classifier, resolve_backbone
    from kerastl.quickstart import SAMPLE_BACKBONE_DIR

    with strategy.scope():
        keras.utils.set_random_seed(0)
        backbone = resolve_backbone(None, str(SAMPLE_BACKBONE_DIR), None)
        backbone.model.trainable = True
        for layer in backbone.model.layers:
            layer.trainable = not isinstance(layer, keras.layers.BatchNormalization)
        model = build_classifier(backbone, 3, dropout=0.0)
        model.compile(keras.optimizers.SGD(0.05), "sparse_categorical_crossentropy")
    data = tf.data.Dataset.from_tensor_slices((images, labels)).batch(8)
    with strategy.scope():
        history = fit(model, data, epochs=2, verbose=0, own_loop=own_loop)
    return model.get_weights(), history.history["loss"]


def gan_run(strategy, real, latents, own_loop=False):
    from kerastl.gan import DCGAN, build_discriminator, build_generator

    with strategy.scope():
        keras.utils.set_random_seed(0)
        gan = DCGAN(build_generator(32, 1, 16, 8, sync_bn=True),
                    build_discriminator(32, 1, 8, sync_bn=True), ema_decay=0)
        gan.discriminator.get_layer("dropout").rate = 0.0
        gan.compile(keras.optimizers.SGD(0.01), keras.optimizers.SGD(0.01))
    data = tf.data.Dataset.from_tensor_slices((real, latents)).batch(8)
    with strategy.scope():
        history = fit(gan, data, epochs=1, verbose=0, own_loop=own_loop)
    return gan.generator.get_weights() + gan.discriminator.get_weights(), \
        history.history["d_loss"] + history.history["g_loss"]


def largest_difference(a, b):
    return max(float(np.max(np.abs(np.asarray(x) - np.asarray(y)))) for x, y in zip(a, b))


def main():
    if "--finetune" in sys.argv:  # its own process: collective keys of an earlier
        return finetune_mirrored()  # MirroredStrategy in the same process clash with it
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (16, 32, 32, 3)).astype(np.float32)
    labels = rng.integers(0, 3, 16)
    real = rng.uniform(-1, 1, (16, 32, 32, 1)).astype(np.float32)
    latents = rng.standard_normal((16, 16)).astype(np.float32)
    single, mirrored = make_strategy("default"), make_strategy("mirrored", "cpu:0,cpu:1")
    report = {"replicas": mirrored.num_replicas_in_sync}
    for name, run, args in (("classifier", classifier_run, (images, labels)),
                            ("gan", gan_run, (real, latents))):
        (w1, l1), (w2, l2) = run(single, *args), run(mirrored, *args)
        w3, l3 = run(mirrored, *args, own_loop=True)  # kerastl's multi-worker loop
        report[name] = {"weights": largest_difference(w1, w2),
                        "loss": largest_difference(l1, l2),
                        "own_loop_weights": largest_difference(w1, w3),
                        "own_loop_loss": largest_difference(l1, l3),
                        "repeatable": largest_difference(w1, run(single, *args)[0]) == 0.0}
    print("RESULT " + json.dumps(report))


def finetune_mirrored():
    import kerastl

    from kerastl.quickstart import SAMPLE_BACKBONE_DIR

    result = kerastl.finetune(sys.argv[sys.argv.index("--finetune") + 1],
                              weights=str(SAMPLE_BACKBONE_DIR), image_size=32,
                              frozen_epochs=0, finetune_epochs=1, batch_size=8,
                              head_init="centroids", strategy="mirrored", devices="cpu:0,cpu:1",
                              runs_dir=sys.argv[-1], name="mirrored", verbose=0)
    print("RESULT " + json.dumps({"accuracy": result.metrics["val"]["accuracy"]}))


main()
