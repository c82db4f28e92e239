"""Decoding: every odd image becomes 8-bit RGB; bad files raise BadImage with a reason."""

import io

import numpy as np
import pytest
from PIL import Image

from kerastl.data import images
from kerastl.data.images import BadImage, load_image


def save(image: Image.Image, path, **kwargs):
    image.save(path, **kwargs)
    return path


@pytest.mark.parametrize("mode,fmt", [("L", "PNG"), ("P", "PNG"), ("RGBA", "PNG"),
                                      ("CMYK", "JPEG"), ("RGB", "BMP"), ("RGB", "WEBP"),
                                      ("LA", "PNG")])
def test_odd_modes_become_uint8_rgb(tmp_path, mode, fmt):
    path = save(Image.new(mode, (20, 10)), tmp_path / f"x.{fmt.lower()}", format=fmt)
    pixels = load_image(path, (8, 16))
    assert pixels.shape == (8, 16, 3) and pixels.dtype == np.uint8


def test_16_bit_png_is_scaled_to_8_bit(tmp_path):
    array = np.full((4, 4), 65535, dtype=np.uint16)
    path = save(Image.fromarray(array), tmp_path / "deep.png")
    assert load_image(path).max() == 255


def test_gif_first_frame(tmp_path):
    frames = [Image.new("RGB", (8, 8), (255, 0, 0)), Image.new("RGB", (8, 8), (0, 0, 255))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    pixels = load_image(path)
    assert pixels[..., 0].mean() > 200 and pixels[..., 2].mean() < 50


def test_exif_orientation_is_applied(tmp_path):
    image = Image.new("RGB", (30, 10), (0, 255, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    path = save(image, tmp_path / "rotated.jpg", exif=exif)
    assert load_image(path).shape == (30, 10, 3)


def test_transparent_pixels_become_white(tmp_path):
    path = save(Image.new("RGBA", (4, 4), (255, 0, 0, 0)), tmp_path / "clear.png")
    assert (load_image(path) == 255).all()


def test_wrong_extension_still_reads(tmp_path):
    path = save(Image.new("RGB", (5, 5), (1, 2, 3)), tmp_path / "really_png.jpg", format="PNG")
    assert load_image(path)[0, 0].tolist() == [1, 2, 3]


@pytest.mark.parametrize("content,reason", [
    (b"", "empty file"),
    (b"hello, not an image", "not an image"),
])
def test_bad_bytes(tmp_path, content, reason):
    path = tmp_path / "bad.jpg"
    path.write_bytes(content)
    with pytest.raises(BadImage) as error:
        load_image(path)
    assert error.value.reason == reason


def test_truncated_file(tmp_path):
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)).save(
        buffer, format="PNG")
    path = tmp_path / "cut.png"
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(BadImage) as error:
        load_image(path)
    assert error.value.reason == "unreadable or truncated"


def test_pixel_cap_refuses_before_decoding(tmp_path, monkeypatch):
    path = save(Image.new("RGB", (100, 100)), tmp_path / "big.png")
    monkeypatch.setattr(images, "MAX_PIXELS", 5000)
    with pytest.raises(BadImage) as error:
        load_image(path)
    assert error.value.reason == "too many pixels"


def test_resize_antialiases_like_pillow(tmp_path):
    stripes = np.zeros((64, 64, 3), np.uint8)
    stripes[:, ::2] = 255
    path = save(Image.fromarray(stripes), tmp_path / "stripes.png")
    small = load_image(path, (16, 16)).astype(float)
    assert abs(small.mean() - 127.5) < 10 and small.std() < 20
