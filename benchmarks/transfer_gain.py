"""How much transfer buys: pretrain on Fashion-MNIST classes 0-4, finetune on 5-9 with few labels.

Source: the full training split of classes 0-4 (30,000 images; 5% held out for
validation), trained from scratch with ``kerastl pretrain`` (BatchNorm momentum 0.9).
Target: classes 5-9 with 10, 50 and 100 labels per class, drawn with each seed;
validation for model selection is carved from those labels (``--val-fraction`` of
them: at 10 labels, 2 per class validate and 8 train), never from the test split.
Test: the full test split of classes 5-9 (5,000 images). Baseline: the same
architecture from scratch with the same epochs and data, at its own rate
(``--scratch-lr``, Adam's usual 1e-3: at the transfer head's 1e-2 MobileNetV3Small
from scratch sat at chance, which would flatter transfer).

    python benchmarks/transfer_gain.py [--backbone mobilenetv3small] [--seeds 0,1,2]
    python benchmarks/transfer_gain.py --backbone efficientnetlite0 --weights imagenet \
        --image-size 64          # transfer from ImageNet instead of classes 0-4
    python benchmarks/transfer_gain.py --backbone efficientnetlite0 --weights imagenet \
        --image-size 224 --labels 10 --head-init centroids --frozen-epochs 0 \
        --finetune-epochs 0 --arms transfer   # the imprinted head alone

Epoch 0 kept means the imprinted head validated at least as well as every trained epoch.

Needs Fashion-MNIST (``apt-get install dataset-fashion-mnist``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import kerastl  # noqa: E402


def schedule(args) -> dict:
    return dict(frozen_epochs=args.frozen_epochs, finetune_epochs=args.finetune_epochs,
                lr=args.lr, finetune_lr=args.finetune_lr, batch_size=args.batch_size,
                image_size=args.image_size, val_fraction=args.val_fraction,
                patience=args.patience, schedule=args.schedule, select=args.select,
                head_init=args.head_init, verbose=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="mobilenetv3small")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--labels", default="10,50,100")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--pretrain-epochs", type=int, default=5)
    parser.add_argument("--scratch-lr", type=float, default=1e-3)
    parser.add_argument("--runs", help="keep the runs here (default: a temporary folder)")
    parser.add_argument("--source", help="reuse this pretrain run instead of pretraining")
    parser.add_argument("--weights", choices=["source", "imagenet"], default="source",
                        help="transfer from the Fashion-MNIST 0-4 source, or from ImageNet")
    parser.add_argument("--patience", type=int, default=1000,
                        help="early stopping patience (default: off, so both get the same "
                             "budget; from scratch, validation sits at chance for the first "
                             "epochs and patience 5 stopped it there)")
    parser.add_argument("--frozen-epochs", type=int, default=10)
    parser.add_argument("--finetune-epochs", type=int, default=20)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--finetune-lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--schedule", default="constant",
                        help="rate within each phase (the recorded figures: constant)")
    parser.add_argument("--val-fraction", type=float, default=0.2)
    parser.add_argument("--select", choices=["accuracy", "loss"], default="accuracy",
                        help="the epoch kept: best validation accuracy or loss")
    parser.add_argument("--head-init", choices=["random", "centroids"], default="random",
                        help="how the transfer arm's classification layer starts (centroids: "
                             "imprinted, and kept unless an epoch validates better; the scratch "
                             "arm's is random)")
    parser.add_argument("--arms", default="transfer,scratch", choices=[
        "transfer,scratch", "transfer", "scratch"], help="which runs to make per seed")
    args = parser.parse_args()
    started = time.time()
    with tempfile.TemporaryDirectory() as scratch_space:
        runs = args.runs or scratch_space
        arms = {name: None for name in args.arms.split(",")}
        if "transfer" in arms and args.weights == "imagenet":
            arms["transfer"] = dict(backbone=args.backbone, weights="imagenet")
        elif "transfer" in arms:
            source_dir = args.source or str(pretrain_source(args, runs))
            arms["transfer"] = dict(backbone=None, weights=source_dir)
        if "scratch" in arms:
            arms["scratch"] = dict(backbone=args.backbone, weights="none", lr=args.scratch_lr,
                                   head_init="random")  # random features: nothing to imprint
        rows = []
        for labels in map(int, args.labels.split(",")):
            scores = {name: [] for name in arms}
            for seed in map(int, args.seeds.split(",")):
                common = dict(classes="5-9", per_class=labels, seed=seed, runs_dir=runs,
                              **schedule(args))
                kept = []
                for name, arm in arms.items():
                    result = kerastl.finetune("fashion_mnist", name=f"{name[0]}{labels}-{seed}",
                                              **{**common, **arm})
                    scores[name].append(result.metrics["test"]["accuracy"])
                    kept.append(f"{name} {scores[name][-1]:.3f} (epoch "
                                f"{result.metrics['best_epoch']} kept)")
                print(f"  {labels} labels/class, seed {seed}: {', '.join(kept)}", flush=True)
            rows.append((labels, scores))
    print(f"\n{'labels/class':>12} " + " ".join(f"{name:>15}" for name in arms) +
          (f" {'gain (points)':>14}" if len(arms) == 2 else ""))
    for labels, scores in rows:
        line = f"{labels:>12} " + " ".join(f"{mean_std(v):>15}" for v in scores.values())
        if len(arms) == 2:
            t, s = scores["transfer"], scores["scratch"]
            line += f" {100 * (statistics.mean(t) - statistics.mean(s)):>+14.1f}"
        print(line)
    print(f"\nfrom {args.weights}; schedule: {schedule(args)}, scratch lr {args.scratch_lr}; "
          f"total {time.time() - started:.0f} s")


def pretrain_source(args, runs: str):
    source = kerastl.pretrain("fashion_mnist", classes="0-4", backbone=args.backbone,
                              image_size=args.image_size, frozen_epochs=0,
                              finetune_epochs=args.pretrain_epochs,
                              val_fraction=0.05, runs_dir=runs, name="source", verbose=0)
    print(f"source: {args.backbone} at {args.image_size} px, {args.pretrain_epochs} epochs, "
          f"test accuracy on classes 0-4 {source.metrics['test']['accuracy']:.3f}", flush=True)
    return source.run_dir


def mean_std(values: list[float]) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f}±{spread:.3f}"


if __name__ == "__main__":
    main()
