"""From image file bytes to model input: the one path for training, evaluation and serving.

Every image a model sees, in training, in evaluation or through ``mlestar
serve``, goes through these steps, in this order (timm's
``create_transform`` plays the same role there):

1. :func:`open_image`: decode the bytes with PIL, fully (optionally only some
   formats and up to a pixel count, for untrusted uploads).
2. :func:`natural_pixels`: turn the image upright (EXIF orientation), then
   into uint8 ``L`` (one channel) or ``RGB`` (three), by the rules below.
3. :func:`conform`: the dataset's channel count (RGB -> gray is ITU-R 601
   luma, gray -> RGB repeats the channel), then a bilinear resize to the
   training side.
4. :func:`to_unit` and :func:`normalize_pixels`: ``pixels / 255`` in float32,
   then ``(x - mean) / std`` per channel with the dataset's
   :class:`~mlestar.data.dataset.Preprocessing`.

Training stores the uint8 result of step 3 (the decoded-image cache holds it)
and runs step 4 once per run on its device
(:func:`mlestar.training.split_to_tensors`, the same float32 arithmetic);
serving runs all four per request (:func:`preprocess_bytes`,
:func:`preprocess_image`).

Mode rules of step 2 (the natural mode):

* ``1``, ``L``: gray as is (``1`` becomes 0 or 255).
* 16-bit gray (``I;16``, ``I;16B``, ...; 16-bit PNG and TIFF): the top byte
  (``value >> 8``), as PIL itself reduces 16-bit RGB PNGs. PIL's own
  conversion to ``L`` clips at 255, which whitens every 16-bit scan.
* ``I`` (a 32-bit container; 16-bit PGM/PPM decode to it with values scaled to
  0..65535): the same top byte when every value lies in 0..65535. Wider
  values have no known bit depth, so such an image is refused
  (:class:`ImageRejected`, kind ``unsupported``) rather than clipped or
  stretched by a per-image guess. ``F`` (float pixels) likewise.
* ``LA``, ``La``: gray, alpha dropped.
* ``P``, ``PA`` (palettes, with or without transparency): the palette's exact
  RGB colours, alpha dropped.
* ``RGBA``, ``RGBa``, ``RGBX``, ``CMYK``, ``YCbCr``, ...: PIL's conversion to
  ``RGB`` (CMYK without ICC colour management; alpha dropped).

Alpha is *dropped*, not composited: the colour channels are kept as stored.
Compositing over any fixed background erases line art of that colour (black
strokes on a transparent PNG vanish over black, white logos over white);
dropping keeps every colour value, and it is what PIL's ``convert("RGB")``,
and with it the torchvision, timm and Keras loaders, do, so data prepared
elsewhere matches. The one cost: colours hidden under fully transparent
pixels (arbitrary, encoder-dependent) reach the model. Premultiplied modes
(``La``, ``RGBa``) are un-premultiplied first, so stored colours are true ones.
"""

from __future__ import annotations

import io
from typing import Sequence

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from mlestar.data.dataset import Preprocessing
from mlestar.errors import DataError

GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "F", "I;16", "I;16L", "I;16B", "I;16N"})
SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})
# Converted first, so the colours kept when alpha goes are exact: premultiplied modes are un-premultiplied,
# palettes expanded (their transparency included) to true colours.
_EXPAND_FIRST = {"La": "LA", "RGBa": "RGBA", "P": "RGBA", "PA": "RGBA"}
_CONVERT_HINT = "save the image as an 8- or 16-bit PNG or a JPEG"


class ImageRejected(DataError):
    """One image that cannot become model input.

    Attributes:
        kind: why, one of :data:`KINDS`: ``empty`` (0 bytes), ``unknown_format``
            (PIL cannot identify it, or not one of the allowed formats),
            ``too_large`` (over the pixel limit, or a decompression bomb),
            ``truncated``, ``corrupt``, ``unsupported`` (pixels with no fixed
            range, or a mode PIL cannot convert).
    """

    KINDS = ("empty", "unknown_format", "too_large", "truncated", "corrupt", "unsupported")

    def __init__(self, kind: str, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.kind = kind


# --------------------------------------------------------------------------- 1. decode


def open_image(data: bytes, *, formats: Sequence[str] | None = None, max_pixels: int | None = None) -> Image.Image:
    """Decode ``data`` fully with PIL and return the loaded image.

    Args:
        formats: PIL format names to try (``("PNG", "JPEG")``); ``None``: any
            format PIL reads. Fewer decoders means less exposed to untrusted bytes.
        max_pixels: largest ``width * height``, checked from the header before
            the pixels are decoded, so a decompression bomb costs nothing.

    Raises:
        ImageRejected: for every bad input (see its ``kind``); never anything else.
    """
    if not data:
        raise ImageRejected("empty", "the file is empty (0 bytes)", hint="send the image file's contents")
    try:
        image = Image.open(io.BytesIO(data), formats=formats)
        _check_pixel_count(image, max_pixels)
        image.load()
    except ImageRejected:
        raise
    except UnidentifiedImageError as exc:
        allowed = " or ".join(formats) if formats else ""
        raise ImageRejected("unknown_format", f"PIL cannot identify the file as {allowed or 'an image'}",
                            hint=f"send {allowed or 'an image format PIL reads (PNG, JPEG, ...)'}") from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRejected("too_large", f"refused as a decompression bomb: {exc}",
                            hint="send a smaller image") from exc
    except Exception as exc:  # noqa: BLE001 - decoders raise OSError, SyntaxError, ValueError, struct.error... on bad bytes
        kind = "truncated" if "truncated" in str(exc).lower() else "corrupt"
        raise ImageRejected(kind, f"{type(exc).__name__}: {exc}" if kind == "corrupt" else str(exc),
                            hint="re-save or re-download the file") from exc
    return image


def _check_pixel_count(image: Image.Image, max_pixels: int | None) -> None:
    width, height = image.size
    if max_pixels is not None and width * height > max_pixels:
        raise ImageRejected("too_large", f"image of {width}x{height} pixels exceeds the limit of {max_pixels} pixels",
                            hint=f"resize it to at most {max_pixels} pixels")


# --------------------------------------------------------------------------- 2. upright, natural mode


def natural_channels(mode: str) -> int:
    """1 for grayscale PIL modes, 3 for everything else (palettes count as colour)."""
    return 1 if mode in GRAY_MODES else 3


def upright(image: Image.Image) -> Image.Image:
    """``image`` turned by its EXIF orientation (itself when it has none)."""
    # exif_transpose copies the image even when there is nothing to do; a JPEG
    # without EXIF or XMP (most datasets) cannot carry an orientation, so skip it.
    if image.format == "JPEG" and "exif" not in image.info and "xmp" not in image.info:
        return image
    return ImageOps.exif_transpose(image)


def natural_pixels(image: Image.Image) -> np.ndarray:
    """``image`` upright, as uint8 ``(H, W, 1)`` for gray modes or ``(H, W, 3)`` otherwise.

    Rules per mode in the module docstring: 16-bit keeps its top byte, alpha is dropped.

    Raises:
        ImageRejected: kind ``unsupported`` for float pixels, 32-bit values
            outside 0..65535, or a mode PIL cannot convert.
    """
    image = upright(image)
    mode = image.mode
    if mode in SIXTEEN_BIT_MODES or mode == "I":
        return _top_byte(np.asarray(image), mode)[..., None]
    if mode == "F":
        raise ImageRejected("unsupported", "float pixels (PIL mode F) have no fixed range to scale to 0..255",
                            hint=_CONVERT_HINT)
    target = "L" if mode in GRAY_MODES else "RGB"
    if mode in _EXPAND_FIRST:
        image = _convert(image, _EXPAND_FIRST[mode])
    pixels = np.asarray(image if image.mode == target else _convert(image, target))
    return pixels[..., None] if target == "L" else pixels


def _top_byte(values: np.ndarray, mode: str) -> np.ndarray:
    """16-bit values -> uint8 by ``>> 8``: 0..65535 maps onto 0..255, nothing is clipped."""
    if mode == "I" and values.size and (int(values.min()) < 0 or int(values.max()) > 65535):
        raise ImageRejected("unsupported", f"32-bit pixels from {int(values.min())} to {int(values.max())} "
                                           "exceed 16 bits; their bit depth is unknown", hint=_CONVERT_HINT)
    return (values.astype(np.uint32) >> 8).astype(np.uint8)


def _convert(image: Image.Image, mode: str) -> Image.Image:
    try:
        return image.convert(mode)
    except ValueError as exc:  # PIL has no conversion for some modes (LAB, HSV to L...)
        raise ImageRejected("unsupported", f"PIL cannot convert mode {image.mode} to {mode}: {exc}",
                            hint=_CONVERT_HINT) from exc


# --------------------------------------------------------------------------- 3. channels and size


def conform(pixels: np.ndarray, side: int | None, channels: int | None) -> np.ndarray:
    """Return ``(H, W, C)`` uint8 ``pixels`` with ``channels`` channels, resized to ``side`` x ``side``.

    ``None`` leaves that property alone. RGB -> gray uses PIL's ITU-R 601
    luma; gray -> RGB repeats the channel. Resizing is PIL bilinear, only
    when the size differs, and runs on the fewer-channel side of a channel
    change (cheaper, and the two steps commute for gray -> RGB), so
    conforming in two steps (size first, channels later) equals one step.
    """
    if channels == 1 and pixels.shape[2] == 3:
        pixels = np.asarray(Image.fromarray(pixels).convert("L"))[..., None]
    if side is not None and pixels.shape[:2] != (side, side):
        pixels = _resize(pixels, side)
    if channels == 3 and pixels.shape[2] == 1:
        pixels = np.repeat(pixels, 3, axis=2)
    return pixels


def _resize(pixels: np.ndarray, side: int) -> np.ndarray:
    """Bilinear resize to ``side`` x ``side`` (aspect ratio is not kept: a square model input)."""
    depth = pixels.shape[2]
    image = Image.fromarray(pixels[..., 0] if depth == 1 else pixels)
    return np.asarray(image.resize((side, side), Image.Resampling.BILINEAR)).reshape(side, side, depth)


def input_pixels(image: Image.Image, prep: Preprocessing) -> np.ndarray:
    """Steps 2 and 3: uint8 ``(H, W, C)`` at ``prep``'s size and channel count."""
    return conform(natural_pixels(image), prep.image_size, prep.channels)


# --------------------------------------------------------------------------- 4. scale and normalize


def to_unit(pixels: np.ndarray) -> np.ndarray:
    """uint8 ``(H, W, C)`` or ``(N, H, W, C)`` -> float32 ``(C, H, W)`` or ``(N, C, H, W)``, ``pixels / 255``."""
    scaled = pixels.astype(np.float32) / np.float32(255.0)
    return np.ascontiguousarray(np.moveaxis(scaled, -1, -3))


def normalize_pixels(pixels: np.ndarray, prep: Preprocessing) -> np.ndarray:
    """``(pixels - mean) / std`` per channel, for ``(C, H, W)`` or ``(N, C, H, W)`` 0..1 pixels.

    float32 throughout, the arithmetic of :func:`mlestar.training.split_to_tensors`,
    so served inputs equal training inputs bit for bit on the CPU.
    """
    mean = np.asarray(prep.mean, dtype=np.float32).reshape(-1, 1, 1)
    std = np.asarray(prep.std, dtype=np.float32).reshape(-1, 1, 1)
    return ((pixels.astype(np.float32, copy=False) - mean) / std).astype(np.float32, copy=False)


def image_pixels(image: Image.Image, prep: Preprocessing) -> np.ndarray:
    """Steps 2 to 4 without normalizing: float32 ``(C, H, W)`` on the 0..1 scale.

    The un-normalized input the serving drift monitor compares with the training data.
    """
    return to_unit(input_pixels(image, prep))


def preprocess_image(image: Image.Image, prep: Preprocessing) -> np.ndarray:
    """Steps 2 to 4: a decoded PIL image -> normalized float32 ``(C, H, W)`` model input."""
    return normalize_pixels(image_pixels(image, prep), prep)


def preprocess_bytes(data: bytes, prep: Preprocessing, *, formats: Sequence[str] | None = None,
                     max_pixels: int | None = None) -> np.ndarray:
    """All four steps: image file bytes -> normalized float32 ``(C, H, W)`` model input.

    Raises:
        ImageRejected: the bytes are not a usable image (see :func:`open_image`, :func:`natural_pixels`).
    """
    return preprocess_image(open_image(data, formats=formats, max_pixels=max_pixels), prep)
