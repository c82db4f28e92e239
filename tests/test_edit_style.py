"""Style transfer by optimisation over VGG features (offline: random or local weights)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from kerastl.edit.style import StyleSettings, gram_matrix, style_transfer, stylize
from kerastl.errors import KerastlError


def stripes(height: int, width: int, period: int, colours) -> np.ndarray:
    xx = np.arange(width)[None, :].repeat(height, 0)
    index = (xx // period) % len(colours)
    return np.asarray(colours, np.uint8)[index]


def test_gram_matrix_is_the_channel_correlation_averaged_over_positions():
    features = np.random.default_rng(0).normal(size=(1, 3, 4, 2)).astype(np.float32)
    flat = features.reshape(-1, 2)
    np.testing.assert_allclose(np.asarray(gram_matrix(features))[0], flat.T @ flat / 12,
                               rtol=1e-5)


def test_style_loss_falls_and_the_output_has_the_contents_size():
    import keras

    keras.utils.set_random_seed(0)
    content = stripes(40, 56, 7, [(200, 60, 60), (60, 200, 60)])
    style = stripes(48, 48, 3, [(20, 20, 160), (240, 240, 40), (10, 10, 10)])
    settings = StyleSettings(weights="none", size=56, steps=20, tv_weight=0.0,
                             content_weight=1e-4, learning_rate=0.1)
    result = stylize(content, style, settings, progress=False)
    assert result.image.shape == content.shape and result.image.dtype == np.uint8
    first, last = result.losses[0], result.losses[-1]
    assert last["style"] < 0.95 * first["style"]
    assert last["total"] < first["total"]
    assert not np.array_equal(result.image, content)


def test_style_transfer_files_and_cli(tmp_path: Path):
    from kerastl_cli.main import cli

    Image.fromarray(stripes(60, 90, 9, [(200, 60, 60), (60, 200, 60)])).save(tmp_path / "c.png")
    Image.fromarray(stripes(50, 50, 4, [(20, 20, 160), (240, 240, 40)])).save(tmp_path / "s.jpg")
    result = style_transfer(tmp_path / "c.png", tmp_path / "s.jpg", tmp_path / "out.png",
                            weights="none", size=48, steps=3, progress=False)
    with Image.open(result.output) as written:
        assert written.size == (48, 32)  # longer side 48, the content's 3:2 aspect kept
    with pytest.raises(KerastlError, match="exists"):
        style_transfer(tmp_path / "c.png", tmp_path / "s.jpg", tmp_path / "out.png",
                       weights="none", size=48, steps=1, progress=False)
    run = CliRunner().invoke(cli, ["edit", "style", str(tmp_path / "c.png"),
                                   str(tmp_path / "s.jpg"), "--out", str(tmp_path / "cli.png"),
                                   "--weights", "none", "--size", "40", "--steps", "2",
                                   "--backbone", "vgg16"])
    assert run.exit_code == 0, run.output
    assert Image.open(tmp_path / "cli.png").size == (40, 27)


def test_style_transfer_refuses_a_non_vgg_backbone():
    with pytest.raises(KerastlError, match="vgg16 or vgg19"):
        StyleSettings(backbone="resnet50")


def test_a_portrait_photo_stored_sideways_keeps_its_upright_aspect(tmp_path: Path):
    """A phone photo: landscape pixels with EXIF orientation 6 (portrait when shown)."""
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(stripes(48, 72, 6, [(200, 60, 60), (60, 200, 60)])).save(
        tmp_path / "phone.jpg", exif=exif.tobytes())
    Image.fromarray(stripes(30, 30, 4, [(20, 20, 160), (240, 240, 40)])).save(tmp_path / "s.png")
    result = style_transfer(tmp_path / "phone.jpg", tmp_path / "s.png", tmp_path / "out.png",
                            weights="none", size=36, steps=1, progress=False)
    assert Image.open(result.output).size == (24, 36)  # upright: 24 wide, 36 tall
    with pytest.raises(KerastlError, match="inputs"):
        style_transfer(tmp_path / "phone.jpg", tmp_path / "s.png", tmp_path / "s.png",
                       overwrite=True, weights="none", size=36, steps=1, progress=False)
