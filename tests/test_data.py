"""Data specs: folders, bad files, splits, class selection, Fashion-MNIST, sample."""

import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kerastl.data import load_data, parse_classes
from kerastl.data.sources import FASHION_MNIST_CLASSES, fashion_mnist_arrays
from kerastl.errors import DataError
from tests.conftest import COLOURS, make_image, write_class_folder


def test_folder_loads_classes_in_order(image_folder):
    bundle = load_data(str(image_folder), 16, val_fraction=0.25, seed=0)
    assert bundle.class_names == ["blue", "green", "red"]
    assert len(bundle.train) + len(bundle.val) == 36
    assert bundle.train.images.shape[1:] == (16, 16, 3)
    assert bundle.train.images.dtype == np.uint8
    assert bundle.test is None


def test_split_is_stratified_and_reproducible(image_folder):
    first = load_data(str(image_folder), 8, val_fraction=0.25, seed=3)
    again = load_data(str(image_folder), 8, val_fraction=0.25, seed=3)
    other = load_data(str(image_folder), 8, val_fraction=0.25, seed=4)
    assert first.val.counts() == {"blue": 3, "green": 3, "red": 3}
    assert first.fingerprint() == again.fingerprint()
    assert first.fingerprint() != other.fingerprint()


def stream_every_folder(monkeypatch):
    monkeypatch.setattr("kerastl.data.sources.STREAM_ABOVE_BYTES", 0)


@pytest.mark.parametrize("streamed", [False, True])
def test_bad_files_are_skipped_and_counted(image_folder, caplog, monkeypatch, streamed):
    monkeypatch.setattr(logging.getLogger("kerastl"), "propagate", True)  # the CLI turns it off
    if streamed:
        stream_every_folder(monkeypatch)
    red = image_folder / "red"
    (red / "empty.jpg").write_bytes(b"")
    (red / "notes.txt").write_text("not an image")
    (red / "cut.png").write_bytes((red / "red_0.png").read_bytes()[:60])
    Image.new("RGB", (8, 8)).save(red / "png_named.jpg", format="PNG")
    bundle = load_data(str(image_folder), 8, val_fraction=0.25)
    assert bundle.skipped.by_reason == {"empty file": 1, "not an image": 1,
                                        "unreadable or truncated": 1}
    assert bundle.train.counts()["red"] + bundle.val.counts()["red"] == 13
    assert "skipped 3 bad file(s)" in caplog.text


def test_a_streamed_folder_gives_the_pixels_of_the_in_memory_one(image_folder, monkeypatch):
    """Above the size limit a folder is decoded batch by batch from its files, through the
    same decode and resize: the same split, fingerprint-stable, the same batches."""
    from kerastl.data.file_images import FileImages
    from kerastl.data.pipeline import make_dataset

    in_memory = load_data(str(image_folder), 24, val_fraction=0.25, seed=3)
    stream_every_folder(monkeypatch)
    streamed = load_data(str(image_folder), 24, val_fraction=0.25, seed=3)
    assert isinstance(streamed.train.images, FileImages)
    assert streamed.train.images.shape == in_memory.train.images.shape
    np.testing.assert_array_equal(np.asarray(streamed.train.images), in_memory.train.images)
    np.testing.assert_array_equal(streamed.val.labels, in_memory.val.labels)
    again = load_data(str(image_folder), 24, val_fraction=0.25, seed=3)  # streamed again
    before = streamed.train.fingerprint()
    assert before == again.train.fingerprint()
    for (a, la), (b, lb) in zip(make_dataset(streamed.train, 5, training=True, seed=1),
                                make_dataset(in_memory.train, 5, training=True, seed=1)):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
        np.testing.assert_array_equal(la.numpy(), lb.numpy())
    changed = Path(streamed.train.images.paths[0])
    Image.open(changed).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(changed)
    after = load_data(str(image_folder), 24, val_fraction=0.25, seed=3)
    assert after.train.fingerprint() != before  # one changed file shows


def test_pre_split_folder_is_respected(tmp_path):
    for split, seed in (("train", 0), ("val", 100), ("test", 200)):
        write_class_folder(tmp_path / split, per_class=4, classes=("red", "blue"),
                           start_seed=seed)
    bundle = load_data(str(tmp_path), 8)
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (8, 8, 8)


def test_pre_split_without_val_carves_it_from_train(tmp_path):
    write_class_folder(tmp_path / "train", per_class=10, classes=("red", "blue"))
    write_class_folder(tmp_path / "test", per_class=2, classes=("red", "blue"))
    bundle = load_data(str(tmp_path), 8, val_fraction=0.2)
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (16, 4, 4)


def test_classes_and_per_class(image_folder):
    bundle = load_data(str(image_folder), 8, classes=["red", "0"], per_class=5, seed=1)
    assert bundle.class_names == ["red", "blue"]
    assert bundle.train.counts() == {"red": 4, "blue": 4}  # validation comes from the 5 labels
    assert bundle.val.counts() == {"red": 1, "blue": 1}
    red_mean = bundle.train.images[bundle.train.labels == 0][..., 0].mean()
    assert red_mean > 150  # label 0 now means red


def test_parse_classes():
    assert parse_classes("0-2,cat") == ["0", "1", "2", "cat"]
    assert parse_classes(None) is None


@pytest.mark.parametrize("setup,message", [
    (lambda root: None, "no such file or folder"),
    (lambda root: root.mkdir(), "no class sub-folders"),
    (lambda root: write_class_folder(root, classes=("red",)), "at least 2 classes"),
    (lambda root: (root / "a").mkdir(parents=True) or (root / "b").mkdir(), "no readable"),
])
def test_clear_errors(tmp_path, setup, message):
    root = tmp_path / "data"
    setup(root)
    with pytest.raises(DataError, match=message):
        load_data(str(root), 8)


def test_unknown_class_is_an_error(image_folder):
    with pytest.raises(DataError, match="unknown class 'purple'"):
        load_data(str(image_folder), 8, classes=["purple"])


def test_tfds_offline_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError) as error:
        load_data("tfds:no_such_dataset_kerastl", 8)
    assert "tfds:no_such_dataset_kerastl" in str(error.value)
    assert "\n" not in str(error.value)


def test_sample_is_balanced_fashion_mnist():
    bundle = load_data("sample", 28, classes="5-9")
    assert bundle.class_names == FASHION_MNIST_CLASSES[5:]
    assert set(bundle.test.counts().values()) == {100}
    assert len(bundle.train) + len(bundle.val) == 5 * 300


def test_fashion_mnist_from_debian(fashion_available):
    (x_train, y_train), (x_test, y_test) = fashion_mnist_arrays()
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert np.bincount(y_test).tolist() == [1000] * 10


def test_only_the_selected_images_are_resized(fashion_available, monkeypatch):
    """Fashion-MNIST 5-9 at 10 labels per class fits where all 60,000 images would not
    (at 224 px: 8.4 GiB); what is kept is the selection's pixels, resized."""
    from kerastl.data.images import resize_array

    monkeypatch.setattr("kerastl.data.sources.MAX_IN_MEMORY_BYTES", 40 * 2**20)
    with pytest.raises(DataError, match="images at 32x32 need"):
        load_data("fashion_mnist", 32)
    few = load_data("fashion_mnist", 32, classes="5-9", per_class=10, seed=3)
    assert few.train.images.shape == (40, 32, 32, 3) and len(few.test) == 5000
    (x_train, y_train), _ = fashion_mnist_arrays()
    at_28 = load_data("fashion_mnist", 28, classes="5-9", per_class=10, seed=3)
    np.testing.assert_array_equal(at_28.train.labels, few.train.labels)
    rows = [np.flatnonzero((x_train == image[..., 0]).all(axis=(1, 2)))[0]
            for image in at_28.train.images[:3]]
    expected = np.stack([resize_array(x_train[row], (32, 32)) for row in rows])
    np.testing.assert_array_equal(few.train.images[:3], expected)


def test_colour_fixture_is_what_the_tests_think(tmp_path):
    pixels = np.asarray(make_image(COLOURS["green"], 0))
    assert pixels[..., 1].mean() > pixels[..., 0].mean()


def test_few_shot_selection_is_exact_and_reproducible():
    first = load_data("sample", 8, classes="5-9", per_class=10, seed=7)
    again = load_data("sample", 8, classes="5-9", per_class=10, seed=7)
    other = load_data("sample", 8, classes="5-9", per_class=10, seed=8)
    assert set(first.train.counts().values()) == {8} and set(first.val.counts().values()) == {2}
    assert first.fingerprint() == again.fingerprint() != other.fingerprint()
    assert set(first.test.counts().values()) == {100}  # the test split is never cut


def test_every_consumer_of_a_split_works_on_a_streamed_one(image_folder, monkeypatch,
                                                           trained_run, tmp_path):
    """A folder too large for memory is decoded batch by batch by every consumer: mirror TTA,
    GAN training and colour training (which decoded the whole folder into memory)."""
    from kerastl.data.file_images import FileImages
    from kerastl.edit.color_train import train_color
    from kerastl.gan.train import train_gan
    from kerastl.inference import evaluate

    in_memory = evaluate(trained_run, str(image_folder), tta=True)
    stream_every_folder(monkeypatch)
    reads: list[int] = []
    original = FileImages.read
    monkeypatch.setattr(FileImages, "read",
                        lambda self, indices: reads.append(len(indices)) or original(self,
                                                                                   indices))
    streamed = evaluate(trained_run, str(image_folder), tta=True)
    assert streamed["accuracy"] == in_memory["accuracy"] and streamed["tta"]
    assert reads and max(reads) <= 64  # decoded per batch, not as one array

    reads.clear()
    gan = train_gan(str(image_folder), image_size=32, width=8, latent_dim=16, epochs=1,
                    batch_size=8, min_epoch_images=0, runs_dir=str(tmp_path), name="gan", verbose=0)
    assert len(gan.history) == 1 and reads.count(8) >= 4  # 36 images: 4 whole batches

    reads.clear()
    color = train_color(str(image_folder), backbone="kerastl_small", weights="none",
                        image_size=32, frozen_epochs=0, finetune_epochs=1, copies=1,
                        batch_size=8, runs_dir=str(tmp_path), name="color", verbose=0)
    assert "val" in color.metrics and max(reads) <= 8  # never the whole folder at once


def test_every_command_that_reads_a_data_spec_takes_the_same_data_options():
    from kerastl_cli.main import cli

    commands = [("finetune",), ("pretrain",), ("multitask",), ("lr-find",), ("evaluate",),
                ("gan", "train"), ("gan", "finetune"), ("gan", "evaluate"),
                ("edit", "train-color")]
    for path in commands:
        command = cli
        for name in path:
            command = command.commands[name]
        options = {opt for param in command.params for opt in getattr(param, "opts", [])}
        assert {"--classes", "--per-class", "--limit"} <= options, path


def test_limit_and_per_class_cut_labelled_and_unlabelled_data_alike(image_folder, trained_run):
    from kerastl.data.bundle import load_images
    from kerastl.inference import evaluate

    limited = load_data(str(image_folder), 8, val_fraction=0.25, seed=3, limit=20)
    assert len(limited.train) + len(limited.val) == 20
    few = load_images(str(image_folder), 8, val_fraction=0.0, seed=3, per_class=2)
    assert len(few.train) == 6 and few.class_names == ["image"]  # 2 of each of 3 folders
    report = evaluate(trained_run, str(image_folder), classes="red,blue", per_class=4)
    assert report["n"] == 8 and set(report["per_class"]) == {"blue", "green", "red"}
    assert report["per_class"]["green"]["support"] == 0
