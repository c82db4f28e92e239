"""Finetuning recipes compared on the transfer task: which schedule gets most from a source?

The task of ``transfer_gain.py``: a backbone pretrained from scratch on Fashion-MNIST
classes 0-4, finetuned on classes 5-9 with ``--labels`` labels per class (validation
carved from them), tested on the 5,000 test images of classes 5-9. Every setting gets 30
epochs in all, batch 16, no early stopping:

  plain                kerastl's default shape: 10 epochs frozen at 1e-2, then 20 with the
                       whole backbone unfrozen at 1e-3, warm-up + cosine in each phase
  fine_tune            fastai's recipe (--recipe fine_tune) at fastai's base rate 2e-3:
                       1 epoch frozen, 29 unfrozen, one-cycle, rates down to 1/100 at the
                       lowest block group
  backbone_finetuning  Lightning's (--recipe backbone_finetuning) at 1e-3: unfrozen at epoch
                       10, backbone rate from 1e-4 growing 1.5x per epoch up to 1e-3
  all_unfrozen         everything trains from the first epoch, 30 epochs at 1e-3, cosine

    python benchmarks/finetune_recipes.py [--source RUN] [--labels 10,50] [--seeds 0,1]

Needs Fashion-MNIST (``apt-get install dataset-fashion-mnist``).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import kerastl  # noqa: E402
from transfer_gain import mean_std, pretrain_source  # noqa: E402

COMMON = dict(batch_size=16, patience=1000, verbose=0)
SETTINGS = {
    "plain": dict(frozen_epochs=10, finetune_epochs=20, lr=1e-2, finetune_lr=1e-3,
                  schedule="cosine"),
    "fine_tune": dict(frozen_epochs=1, finetune_epochs=29, lr=2e-3, recipe="fine_tune"),
    "backbone_finetuning": dict(frozen_epochs=10, finetune_epochs=20, lr=1e-3,
                                recipe="backbone_finetuning", schedule="constant"),
    "all_unfrozen": dict(frozen_epochs=0, finetune_epochs=30, lr=1e-3, finetune_lr=1e-3,
                         schedule="cosine"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="mobilenetv3small")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--pretrain-epochs", type=int, default=5)
    parser.add_argument("--source", help="reuse this pretrain run instead of pretraining")
    parser.add_argument("--labels", default="10,50")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--settings", default=",".join(SETTINGS))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as runs:
        source = args.source or str(pretrain_source(args, runs))
        table = []
        for labels in map(int, args.labels.split(",")):
            for name in args.settings.split(","):
                scores, seconds = [], []
                for seed in map(int, args.seeds.split(",")):
                    started = time.perf_counter()
                    result = kerastl.finetune(
                        "fashion_mnist", weights=source, backbone=None, classes="5-9",
                        per_class=labels, seed=seed, runs_dir=runs,
                        name=f"{name}-{labels}-{seed}", **COMMON, **SETTINGS[name])
                    seconds.append(time.perf_counter() - started)
                    scores.append(result.metrics["test"]["accuracy"])
                    print(f"  {labels} labels/class, {name}, seed {seed}: "
                          f"{scores[-1]:.3f} in {seconds[-1]:.0f} s", flush=True)
                table.append((labels, name, scores, seconds))
    print("\n| labels/class | setting | test accuracy | seconds per run |")
    print("| --- | --- | --- | --- |")
    for labels, name, scores, seconds in table:
        print(f"| {labels} | {name} | {mean_std(scores)} | {sum(seconds) / len(seconds):.0f} |")


if __name__ == "__main__":
    main()
