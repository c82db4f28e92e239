"""Shared fixtures: images generated with Pillow, Fashion-MNIST from Debian, a trained run."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
COLOURS = {"red": (220, 40, 40), "green": (40, 200, 60), "blue": (40, 60, 220)}


def make_image(colour: tuple[int, int, int], seed: int, size: int = 40) -> Image.Image:
    """A noisy image dominated by ``colour``, with a bright square: easy to tell apart."""
    rng = np.random.default_rng(seed)
    pixels = np.clip(rng.normal(colour, 30, (size, size, 3)), 0, 255).astype(np.uint8)
    x, y = rng.integers(0, size // 2, 2)
    pixels[y:y + size // 3, x:x + size // 3] = 255
    return Image.fromarray(pixels)


def write_class_folder(root: Path, per_class: int = 12, classes=("red", "green", "blue"),
                       start_seed: int = 0) -> Path:
    for c, name in enumerate(classes):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            make_image(COLOURS[name], start_seed + 1000 * c + i).save(folder / f"{name}_{i}.png")
    return root


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    """Three colour classes, 12 PNGs each."""
    return write_class_folder(tmp_path / "images")


@pytest.fixture(scope="session")
def session_folder(tmp_path_factory) -> Path:
    return write_class_folder(tmp_path_factory.mktemp("data") / "images", per_class=16)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, session_folder) -> Path:
    """A finished finetuning run of the small backbone on the colour folder."""
    import kerastl

    runs = tmp_path_factory.mktemp("runs")
    result = kerastl.finetune(str(session_folder), backbone="kerastl_small", weights="none",
                              image_size=32, frozen_epochs=1, finetune_epochs=2, batch_size=8,
                              lr=3e-3, augment="none", runs_dir=str(runs), name="colours",
                              verbose=0)
    return Path(result.run_dir)


@pytest.fixture(scope="session")
def gan_run(tmp_path_factory) -> Path:
    """A GAN trained for two short epochs on the bundled sample (gray 32 px)."""
    from kerastl.gan.train import train_gan

    runs = tmp_path_factory.mktemp("gan_runs")
    result = train_gan("sample", image_size=32, width=8, latent_dim=16, epochs=2,
                       steps_per_epoch=3, batch_size=16, runs_dir=str(runs), name="gan",
                       verbose=0)
    return Path(result.run_dir)


@pytest.fixture(scope="session")
def fashion_available() -> Path:
    """Debian's Fashion-MNIST; in CI it must be installed, elsewhere its tests skip."""
    if (FASHION_DIR / "train-images-idx3-ubyte.gz").exists():
        return FASHION_DIR
    if os.environ.get("CI"):
        pytest.fail("CI must apt-get install dataset-fashion-mnist")
    pytest.skip("apt-get install dataset-fashion-mnist to run this test")
