"""The one preprocessing path: mode rules, 16-bit scaling, alpha, refusals, scaling and normalization."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from image_trees import encode, pixels
from mlestar.data.dataset import ImageSplit, Preprocessing
from mlestar.data.decode import decode_image
from mlestar.data.preprocess import (ImageRejected, conform, input_pixels, natural_pixels, normalize_pixels,
                                     open_image, preprocess_bytes, to_unit)
from mlestar.errors import MlestarError
from mlestar.training import split_to_tensors

WIDE = np.array([[0, 255, 256, 1000, 20000, 40000, 65535]], dtype=np.uint16)  # 16-bit values, most above 255


def _pgm16(values: np.ndarray) -> bytes:
    """A binary 16-bit PGM (maxval 65535); PIL decodes it to mode ``I``."""
    height, width = values.shape
    return f"P5\n{width} {height}\n65535\n".encode() + values.astype(">u2").tobytes()


# --------------------------------------------------------------------------- 16-bit


@pytest.mark.parametrize(("data", "mode"), [(encode(Image.fromarray(WIDE), "PNG"), "I;16"),
                                            (encode(Image.fromarray(WIDE), "TIFF"), "I;16"),
                                            (_pgm16(WIDE), "I")], ids=["png", "tiff", "pgm"])
def test_sixteen_bit_values_are_scaled_not_clipped(data: bytes, mode: str) -> None:
    image = open_image(data)
    assert image.mode == mode
    got = natural_pixels(image)[0, :, 0]
    assert got.tolist() == [0, 0, 1, 3, 78, 156, 255]  # value >> 8
    above_255 = got[2:]  # 256 .. 65535: PIL's convert("L") makes every one of them 255
    assert len(set(above_255.tolist())) == len(above_255)


def test_sixteen_bit_values_stay_distinct_through_to_the_model_input() -> None:
    prep = Preprocessing(image_size=7, channels=3, mean=(0.5,) * 3, std=(0.25,) * 3)
    wide = np.repeat(WIDE, 7, axis=0)  # 7x7, each column one value
    model_input = preprocess_bytes(encode(Image.fromarray(wide), "PNG"), prep)
    row = model_input[0, 0]
    assert len(set(row[2:].tolist())) == 5 and np.all(np.diff(row) >= 0)
    np.testing.assert_array_equal(model_input[0], model_input[2])  # gray -> RGB repeats the channel


def test_wider_than_sixteen_bit_and_float_pixels_are_refused_not_guessed() -> None:
    with pytest.raises(ImageRejected, match="exceed 16 bits") as wide:
        natural_pixels(Image.fromarray(np.array([[0, 70000]], dtype=np.int32)))
    with pytest.raises(ImageRejected, match="mode F") as floats:
        natural_pixels(Image.fromarray(np.array([[0.0, 0.5]], dtype=np.float32)))
    assert wide.value.kind == floats.value.kind == "unsupported" and isinstance(wide.value, MlestarError)
    assert "16-bit PNG" in str(floats.value.hint)
    skipped = decode_image("depth.tif", encode(Image.fromarray(np.array([[0.0, 0.5]], dtype=np.float32)), "TIFF"))
    assert skipped.pixels is None and skipped.reason == "unreadable" and "mode F" in skipped.detail


# --------------------------------------------------------------------------- palettes, alpha, CMYK


def test_palette_with_transparency_gives_its_exact_colours_alpha_dropped() -> None:
    rgb = pixels(3, height=6, width=6)
    palette = Image.fromarray(rgb).quantize(colors=8)
    transparent = int(np.asarray(palette)[0, 0])
    image = open_image(_png(palette, transparency=transparent))
    assert image.mode == "P" and image.info["transparency"] == transparent
    expected = np.asarray(palette.convert("RGB"))  # the palette entry of every pixel, transparent one included
    np.testing.assert_array_equal(natural_pixels(image), expected)


def _png(image: Image.Image, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG", **options)
    return buffer.getvalue()


@pytest.mark.parametrize(("mode", "stored", "expected"), [
    ("RGBA", (200, 40, 10, 0), [200, 40, 10]),  # fully transparent: the stored colour, not a background
    ("LA", (90, 30), [90]),
    ("RGBa", (100, 50, 0, 128), [199, 99, 0]),  # premultiplied: un-premultiplied first (PIL rounds)
])
def test_alpha_is_dropped_and_colours_kept(mode: str, stored: tuple[int, ...], expected: list[int]) -> None:
    got = natural_pixels(Image.new(mode, (3, 3), stored))
    assert got[1, 1].tolist() == expected


def test_cmyk_jpeg_becomes_rgb() -> None:
    image = open_image(encode(Image.new("CMYK", (8, 8), (0, 255, 255, 0)), "JPEG"))  # pure red in CMYK
    assert image.mode == "CMYK"
    red, green, blue = natural_pixels(image)[4, 4].tolist()
    assert red > 240 and green < 15 and blue < 15


def test_exif_rotation_happens_before_resizing() -> None:
    stored = pixels(4, height=4, width=8)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    buffer = io.BytesIO()
    Image.fromarray(stored).save(buffer, "PNG", exif=exif.tobytes())
    upright = natural_pixels(open_image(buffer.getvalue()))
    np.testing.assert_array_equal(upright, np.rot90(stored, k=-1))  # lossless PNG: exact


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(("data", "kind"), [
    (b"", "empty"),
    (b"plain text", "unknown_format"),
    (encode(Image.fromarray(pixels(5)), "PNG")[:120], "truncated"),
])
def test_bad_bytes_are_rejected_with_a_kind(data: bytes, kind: str) -> None:
    with pytest.raises(ImageRejected) as caught:
        open_image(data)
    assert caught.value.kind == kind and caught.value.hint


def test_format_and_pixel_limits_are_checked_before_decoding() -> None:
    with pytest.raises(ImageRejected, match="as PNG or JPEG") as caught:
        open_image(encode(Image.fromarray(pixels(6)), "BMP"), formats=("PNG", "JPEG"))
    assert caught.value.kind == "unknown_format"
    with pytest.raises(ImageRejected, match="12x12 pixels exceeds the limit of 100") as caught:
        open_image(encode(Image.fromarray(pixels(6)), "PNG"), max_pixels=100)
    assert caught.value.kind == "too_large"


# --------------------------------------------------------------------------- scaling and normalization


def test_conform_then_scale_and_normalize() -> None:
    prep = Preprocessing(image_size=4, channels=3, mean=(0.0, 0.5, 1.0), std=(1.0, 0.5, 0.25))
    image = Image.new("RGB", (30, 30), (255, 51, 0))
    uint8 = input_pixels(image, prep)
    assert uint8.shape == (4, 4, 3) and uint8.dtype == np.uint8
    unit = to_unit(uint8)
    assert unit.shape == (3, 4, 4) and unit.dtype == np.float32 and np.allclose(unit[:, 0, 0], [1.0, 0.2, 0.0])
    batch = normalize_pixels(to_unit(np.stack([uint8, uint8])), prep)
    assert batch.shape == (2, 3, 4, 4) and np.allclose(batch[1, :, 0, 0], [1.0, -0.6, -4.0])


def test_serving_arithmetic_equals_the_training_tensors_bit_for_bit() -> None:
    """``to_unit`` + ``normalize_pixels`` (serving) against ``split_to_tensors`` (training, evaluation)."""
    images = np.stack([conform(pixels(seed, height=9, width=9), 8, 3) for seed in range(6)])
    prep = Preprocessing(image_size=8, channels=3, mean=(0.4914, 0.4822, 0.4465), std=(0.247, 0.2435, 0.2616))
    trained, _ = split_to_tensors(ImageSplit(images, np.zeros(6, dtype=np.int64)), prep, torch.device("cpu"))
    np.testing.assert_array_equal(normalize_pixels(to_unit(images), prep), trained.numpy())
