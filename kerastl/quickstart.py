"""``kerastl quickstart``: real transfer, offline, in a few minutes on a CPU.

The package ships the ``sample`` data (a Fashion-MNIST subset) and a small
backbone that ``kerastl pretrain`` trained on the sample's source classes
(clothes: 0-4). The quickstart finetunes that backbone on the target classes
(5-9: sandals, shirts, sneakers, bags, ankle boots) from a few labels per class,
through freeze-then-unfreeze, and trains the same network from scratch with
the same budget for comparison.
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

    def rows(self) -> list[dict]:
        return [{"model": name, "test_accuracy": result.metrics["test"]["accuracy"],
                 "run": str(result.run_dir)}
                for name, result in (("transfer (pretrained backbone)", self.transfer),
                                     ("from scratch (same network)", self.scratch))]


#: The quickstart's settings, chosen on the sample (3 seeds, see docs/benchmarks.md).
#: The settings measured in docs/benchmarks.md (a constant rate within each phase: the
#: quickstart predates the cosine default and keeps the schedule its figures were taken with).
DEFAULTS = dict(per_class=10, frozen_epochs=10, finetune_epochs=20, lr=1e-2, finetune_lr=1e-3,
                batch_size=16, seed=0, schedule="constant")


def quickstart(runs_dir: str = "runs", per_class: int = DEFAULTS["per_class"],
               frozen_epochs: int = DEFAULTS["frozen_epochs"],
               finetune_epochs: int = DEFAULTS["finetune_epochs"], lr: float = DEFAULTS["lr"],
               finetune_lr: float = DEFAULTS["finetune_lr"],
               batch_size: int = DEFAULTS["batch_size"], seed: int = DEFAULTS["seed"],
               name: str | None = None, verbose: int | None = None) -> QuickstartResult:
    """Finetune the shipped backbone on few target labels, and train from scratch to compare.

    Both runs get the same epochs, rates and data; the from-scratch run trains
    every layer for all ``frozen_epochs + finetune_epochs`` at ``lr`` (with
    BatchNorm momentum 0.9, so its moving statistics converge).
    """
    from kerastl.transfer.finetune import finetune

    name = name or "quickstart-" + _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    common = dict(classes=TARGET_CLASSES, per_class=per_class, image_size=32, seed=seed,
                  frozen_epochs=frozen_epochs, finetune_epochs=finetune_epochs, lr=lr,
                  finetune_lr=finetune_lr, batch_size=batch_size,
                  schedule=DEFAULTS["schedule"], runs_dir=str(Path(runs_dir) / name),
                  verbose=verbose)
    transfer = finetune("sample", backbone=None, weights=str(SAMPLE_BACKBONE_DIR),
                        name="transfer", job="quickstart", **common)
    scratch = finetune("sample", backbone="kerastl_small", weights="none", name="scratch",
                       job="quickstart", **common)
    return QuickstartResult(transfer, scratch)
