"""Run as one worker of a two-worker cluster on 127.0.0.1 (``TF_CONFIG`` from the environment).

``python multiworker_check.py DATA RUNS_DIR``: every worker runs a finetuning, a GAN and a
colour-correction job under MultiWorkerMirroredStrategy (kerastl's own loop) and prints JSON:
per job a digest of its final weights and its run directory (which must be gone after the job
on every worker but the chief).
"""

import hashlib
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def digest(weights) -> str:
    import numpy as np

    hasher = hashlib.sha256()
    for array in weights:
        hasher.update(np.ascontiguousarray(array).tobytes())
    return hasher.hexdigest()


def finetune(data, runs_dir):
    import kerastl

    from kerastl.quickstart import SAMPLE_BACKBONE_DIR

    result = kerastl.finetune(data, weights=str(SAMPLE_BACKBONE_DIR), image_size=32,
                              frozen_epochs=0, finetune_epochs=2, batch_size=8,
                              augment="none", head_init="centroids", strategy="multiworker",
                              runs_dir=runs_dir, name="finetune", verbose=0)
    return result.run_dir, result.model.get_weights()


def gan(data, runs_dir):
    from kerastl.gan.train import train_gan

    result = train_gan(data, image_size=32, width=8, latent_dim=16, epochs=2, batch_size=8,
                       min_epoch_images=0,
                       strategy="multiworker", runs_dir=runs_dir, name="gan", verbose=0)
    return result.run_dir, result.gan.generator.get_weights() + \
        result.gan.discriminator.get_weights()


def color(data, runs_dir):
    from kerastl.edit.color_train import train_color

    result = train_color(data, backbone="kerastl_small", weights="none", image_size=32,
                         copies=2, batch_size=8, frozen_epochs=0, finetune_epochs=1,
                         strategy="multiworker", runs_dir=runs_dir, name="color", verbose=0)
    return result.run_dir, result.model.get_weights()


def main():
    data, runs_dir = sys.argv[1:3]
    report = {"task": json.loads(os.environ["TF_CONFIG"])["task"]}
    for job in (finetune, gan, color):  # one strategy per process serves all three
        run_dir, weights = job(data, runs_dir)
        report[job.__name__] = {"digest": digest(weights), "run_dir": str(run_dir)}
    print("RESULT " + json.dumps(report), flush=True)


main()
