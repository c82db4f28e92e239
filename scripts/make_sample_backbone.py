"""Remake the backbone ``kerastl quickstart`` ships, from the bundled sample.

It is ``kerastl pretrain`` on the sample's source classes (0-4: T-shirt_top,
Trouser, Pullover, Dress, Coat) with these settings; the equivalent command is::

    kerastl pretrain sample --classes 0-4 --backbone kerastl_small --image-size 32 \\
        --epochs 20 --seed 0 --name sample_backbone

after which ``runs/sample_backbone/backbone.keras`` and ``backbone.json`` are
copied to ``kerastl/assets/sample_backbone/``. Run: ``python scripts/make_sample_backbone.py``.
"""

import shutil
import tempfile
from pathlib import Path

import kerastl
from kerastl.quickstart import SAMPLE_BACKBONE_DIR, SOURCE_CLASSES

PRETRAIN_SETTINGS = dict(classes=SOURCE_CLASSES, backbone="kerastl_small", image_size=32,
                         frozen_epochs=0, finetune_epochs=20, seed=0)


def main() -> None:
    with tempfile.TemporaryDirectory() as runs:
        result = kerastl.pretrain("sample", runs_dir=runs, name="sample_backbone",
                                  **PRETRAIN_SETTINGS)
        SAMPLE_BACKBONE_DIR.mkdir(parents=True, exist_ok=True)
        for name in ("backbone.keras", "backbone.json"):
            shutil.copy(Path(result.run_dir) / name, SAMPLE_BACKBONE_DIR / name)
    print(f"source test accuracy {result.metrics['test']['accuracy']:.3f}; "
          f"wrote {SAMPLE_BACKBONE_DIR}")


if __name__ == "__main__":
    main()
