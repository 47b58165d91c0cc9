"""Decoding single files: orientation, modes, bad bytes, and the pool keeping order."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from image_trees import encode, pixels, rgb_jpeg, rgb_png
from mlestar.data.decode import Target, decode_all, decode_image, is_image_name
from mlestar.data.preprocess import conform


def test_exif_orientation_is_applied_before_anything_else() -> None:
    image = Image.fromarray(pixels(1, height=10, width=20))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    decoded = decode_image("p.jpg", _jpeg_with_exif(image, exif))
    assert decoded.size == (10, 20) and decoded.pixels is not None and decoded.pixels.shape == (20, 10, 3)


def _jpeg_with_exif(image: Image.Image, exif: Image.Exif) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=exif.tobytes())
    return buffer.getvalue()


@pytest.mark.parametrize(("mode", "channels"), [("RGB", 3), ("RGBA", 3), ("P", 3), ("L", 1), ("LA", 1), ("1", 1)])
def test_modes_map_to_their_natural_channels(mode: str, channels: int) -> None:
    image = Image.fromarray(pixels(2)).convert(mode)
    decoded = decode_image("x.png", encode(image, "PNG"))
    assert decoded.mode == mode and decoded.pixels is not None and decoded.pixels.shape == (12, 12, channels)


def test_rgba_drops_alpha_and_keeps_colours() -> None:
    rgba = pixels(3, channels=4)
    decoded = decode_image("x.png", encode(Image.fromarray(rgba, "RGBA"), "PNG"))
    np.testing.assert_array_equal(decoded.pixels, rgba[..., :3])


def test_sixteen_bit_gray_keeps_its_range() -> None:
    wide = np.array([[0, 256, 65535]], dtype=np.uint16)
    decoded = decode_image("x.png", encode(Image.fromarray(wide), "PNG"))
    assert decoded.pixels is not None and decoded.pixels[..., 0].tolist() == [[0, 1, 255]]


@pytest.mark.parametrize(("data", "reason"), [
    (rgb_png(4)[:200], "truncated"),
    (rgb_jpeg(5)[:-40], "truncated"),
    (b"plain text", "unreadable"),
    (b"BM" + bytes(60), "unreadable"),  # a BMP signature with a nonsense header
])
def test_bad_bytes_come_back_with_a_reason(data: bytes, reason: str) -> None:
    decoded = decode_image("bad.png", data)
    assert decoded.pixels is None and decoded.reason == reason and decoded.detail


def test_an_unreadable_path_is_unreadable(tmp_path: Path) -> None:
    decoded = decode_image("gone.png", str(tmp_path / "gone.png"))
    assert decoded.reason == "unreadable" and "cannot read" in decoded.detail


def test_conform_resizes_bilinear_and_converts_channels() -> None:
    rgb = pixels(7, height=16, width=20)
    gray = conform(rgb, 8, 1)
    expected = np.asarray(Image.fromarray(rgb).convert("L").resize((8, 8), Image.BILINEAR))
    np.testing.assert_array_equal(gray[..., 0], expected)
    assert conform(gray, 8, 3).shape == (8, 8, 3)
    assert conform(rgb, 20, None) is not rgb and conform(rgb, None, None) is rgb


def test_a_known_target_is_applied_in_the_worker() -> None:
    decoded = decode_image("x.png", rgb_png(8, height=16, width=20), Target(side=8, channels=1))
    assert decoded.size == (20, 16) and decoded.pixels is not None and decoded.pixels.shape == (8, 8, 1)


def test_decode_all_keeps_order_on_the_pool() -> None:
    items = [(f"{i}.png", rgb_png(i)) for i in range(9)] + [("bad.png", b"nope")]
    pooled = decode_all(items, workers=2, chunk=2)
    serial = decode_all(items, workers=1)
    assert [d.name for d in pooled] == [name for name, _ in items]
    assert pooled[-1].reason == "unreadable"
    for a, b in zip(pooled[:-1], serial[:-1]):
        np.testing.assert_array_equal(a.pixels, b.pixels)


def test_image_names() -> None:
    assert is_image_name("a/b/C.JPG") and is_image_name("x.webp")
    assert not is_image_name("a/._c.jpg") and not is_image_name(".DS_Store") and not is_image_name("a/b.txt")
