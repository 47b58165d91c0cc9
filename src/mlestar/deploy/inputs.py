"""Untrusted request bodies -> image bytes -> decoded images, refusing everything unsafe.

A request carries images either as multipart files (``file``; for batches
``files`` or repeated ``file``) or as JSON with base64 strings
(``{"image": "..."}``; for batches ``{"images": [...]}`` or a bare list).
Decoding and conversion are :mod:`mlestar.data.preprocess`, the code training
ran. Every refusal is a :class:`RequestFailed` with a 4xx status, a message that
says what to send instead, and a ``kind`` that ``/metrics`` counts.

Uploads are bounded three times: the request body (checked as it streams
in, so a huge upload is cut off early), each image file, and each image's
pixel count (read from the header, so a small file that inflates to
gigapixels is refused before it is decoded).
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import warnings
from typing import Any, Callable

import numpy as np
from fastapi import Request
from fastapi.responses import JSONResponse
from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, Field, ValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mlestar.data.dataset import Preprocessing
from mlestar.data.preprocess import ImageRejected, input_pixels, open_image

_FORMATS = ("PNG", "JPEG")
_MULTIPART_MAX_FILES = 4096  # the body limit bounds memory; the image count is checked after parsing
_DATA_URL_MARK = ";base64,"


class RequestFailed(Exception):
    """Ends a request with ``status`` and ``{"error": message, "kind": kind}``."""

    def __init__(self, status: int, message: str, kind: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind


def error_response(status: int, message: str, kind: str) -> JSONResponse:
    """The JSON body every refusal has."""
    return JSONResponse({"error": message, "kind": kind}, status_code=status)


class PredictJSON(BaseModel):
    """One image as JSON."""

    image: str = Field(description="PNG or JPEG file, base64-encoded (a data: URL is accepted too)")


class BatchPredictJSON(BaseModel):
    """Several images as JSON (a bare JSON list of base64 strings is accepted too)."""

    images: list[str] = Field(description="PNG or JPEG files, each base64-encoded")


# --------------------------------------------------------------------------- body size


class BodyTooLarge(StarletteHTTPException):
    """Raised from ``receive`` mid-stream; an HTTPException so FastAPI passes it to the app's handler."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body exceeds {limit} bytes")


class BodyLimit:
    """ASGI middleware refusing request bodies over ``limit(path)`` bytes.

    A declared ``Content-Length`` over the limit is refused before anything is
    read (and ``on_refused("body_too_large")`` is called); a chunked body is
    counted as it arrives and cut off with :class:`BodyTooLarge` once it passes.
    """

    def __init__(self, app: ASGIApp, limit: Callable[[str], int], on_refused: Callable[[str], None]) -> None:
        self.app = app
        self.limit = limit
        self.on_refused = on_refused

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit(scope["path"])
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            self.on_refused("body_too_large")
            await error_response(413, f"request body of {declared} bytes exceeds {limit}", "body_too_large")(
                scope, receive, send)
            return
        await self.app(scope, _counting(receive, limit), send)


def _counting(receive: Receive, limit: int) -> Receive:
    seen = 0

    async def counted() -> Message:
        nonlocal seen
        message = await receive()
        seen += len(message.get("body", b""))
        if seen > limit:
            raise BodyTooLarge(limit)
        return message

    return counted


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


# --------------------------------------------------------------------------- reading requests


async def read_images(request: Request, *, many: bool, max_images: int, max_file_bytes: int) -> list[bytes]:
    """The raw image files a request carries, by its content type.

    Args:
        many: True for ``/predict/batch`` (one or more images), False for ``/predict`` (exactly one).
        max_images: most images a batch may carry.
        max_file_bytes: largest accepted image file.

    Raises:
        RequestFailed: 415 for another content type; 400 for malformed JSON,
            base64 or multipart; 413 for too many or too large images; 422
            for a well-formed body without the expected field.
    """
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        files = await _form_files(request, many)
    elif content_type == "application/json" or content_type.endswith("+json"):
        files = _json_files(await request.body(), many)
    else:
        raise RequestFailed(415, f"content type {content_type or '(none)'!r} is not accepted; send "
                                 "multipart/form-data with the image as field 'file', or application/json "
                                 "{\"image\": \"<base64>\"}", "unsupported_media_type")
    _check_count(len(files), many, max_images)
    return [_bounded(data, max_file_bytes, index if many else None) for index, data in enumerate(files)]


async def _form_files(request: Request, many: bool) -> list[bytes]:
    form = await request.form(max_files=_MULTIPART_MAX_FILES, max_fields=_MULTIPART_MAX_FILES)
    try:
        parts = [*form.getlist("files"), *form.getlist("file")] if many else form.getlist("file")
        if not parts or not all(isinstance(part, UploadFile) for part in parts):
            field = "files' (repeated) or 'file" if many else "file"
            raise RequestFailed(422, f"invalid request: no image file in multipart field '{field}'; "
                                     f"send the image as multipart field '{field}'", "invalid_request")
        return [await part.read() for part in parts if isinstance(part, UploadFile)]
    finally:
        await form.close()  # large parts are spooled to temporary files: remove them now


def _json_files(body: bytes, many: bool) -> list[bytes]:
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestFailed(400, f"malformed JSON body: {exc}", "malformed_json") from exc
    strings = _json_strings(payload, many)
    return [decode_base64(text, index if many else None) for index, text in enumerate(strings)]


def _json_strings(payload: Any, many: bool) -> list[str]:
    if many and isinstance(payload, list):
        payload = {"images": payload}
    try:
        if many:
            return BatchPredictJSON.model_validate(payload).images
        return [PredictJSON.model_validate(payload).image]
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors())
        shape = '{"images": ["<base64>", ...]} or a list' if many else '{"image": "<base64>"}'
        raise RequestFailed(422, f"invalid request ({problems}); send {shape}", "invalid_request") from exc


def decode_base64(text: str, index: int | None = None) -> bytes:
    """Strict base64 (a ``data:...;base64,`` prefix is dropped); 400 ``malformed_base64`` otherwise."""
    if _DATA_URL_MARK in text[:100]:
        text = text.split(_DATA_URL_MARK, 1)[1]
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise RequestFailed(400, f"{_which(index)}is not valid base64: {exc}", "malformed_base64") from exc


def _check_count(count: int, many: bool, max_images: int) -> None:
    if not many and count != 1:
        raise RequestFailed(422, f"invalid request: {count} images sent to /predict; send exactly one in "
                                 "multipart field 'file', or use /predict/batch", "invalid_request")
    if many and count == 0:
        raise RequestFailed(422, "invalid request: the batch holds no images", "invalid_request")
    if count > max_images:
        raise RequestFailed(413, f"the batch holds {count} images, more than the limit of {max_images}",
                            "too_many_images")


def _bounded(data: bytes, max_bytes: int, index: int | None) -> bytes:
    if len(data) > max_bytes:
        raise RequestFailed(413, f"{_which(index)}image file exceeds {max_bytes} bytes", "file_too_large")
    return data


def _which(index: int | None) -> str:
    return "" if index is None else f"image {index}: "


# --------------------------------------------------------------------------- decoding


def quiet_pil_bomb_warning() -> None:
    """Stop PIL warning about images over its 89 MP default while it reads their header.

    :func:`decode_image` refuses any image over ``max_pixels`` right after
    the header is read, so the warning only repeats that refusal in the
    logs. The filter is process-wide (a ``catch_warnings`` block per decode
    would race between the decoding threads), so the app installs it when
    it is created rather than this module at import.
    """
    warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


def pixel_count(data: bytes) -> int | None:
    """``width * height`` from the image header (nothing is decoded); None when it is not a PNG or JPEG."""
    try:
        with Image.open(io.BytesIO(data), formats=_FORMATS) as image:
            return image.size[0] * image.size[1]
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError):
        return None


# ImageRejected.kind -> (HTTP status, error kind counted on /metrics, the answer; {detail} is the reason)
_REFUSALS = {
    "empty": (400, "empty_file", "the uploaded file is empty (0 bytes)"),
    "unknown_format": (415, "not_an_image", "the uploaded file is not a PNG or JPEG image"),
    "too_large": (413, "image_too_large", "{detail}"),
    "truncated": (400, "corrupt_image", "the image is truncated or corrupt: {detail}"),
    "corrupt": (400, "corrupt_image", "the image is truncated or corrupt: {detail}"),
    "unsupported": (415, "not_an_image", "the image's pixels cannot be used: {detail}"),
}


def decode_image(data: bytes, *, max_pixels: int) -> Image.Image:
    """Decode an uploaded PNG or JPEG fully, refusing anything unsafe or broken.

    :func:`mlestar.data.preprocess.open_image` limited to the two formats we
    serve (fewer decoders exposed to untrusted bytes); the pixel count is read
    from the header and checked before decoding, so a decompression bomb costs nothing.

    Raises:
        RequestFailed: 400 ``empty_file`` or ``corrupt_image`` (truncated,
            corrupt), 413 ``image_too_large`` (too many pixels), 415
            ``not_an_image`` (not PNG or JPEG).
    """
    try:
        return open_image(data, formats=_FORMATS, max_pixels=max_pixels)
    except ImageRejected as exc:
        raise _refused(exc) from exc


def model_pixels(data: bytes, prep: Preprocessing, *, max_pixels: int) -> np.ndarray:
    """An uploaded image as uint8 ``(H, W, C)`` at the model's size and channel count.

    :func:`decode_image`, then :func:`mlestar.data.preprocess.input_pixels`:
    the steps training ran on its images, so the model sees what it was trained on.

    Raises:
        RequestFailed: as :func:`decode_image`; 415 ``not_an_image`` for pixels
            without a fixed range (float, wider than 16 bits).
    """
    image = decode_image(data, max_pixels=max_pixels)
    try:
        return input_pixels(image, prep)
    except ImageRejected as exc:
        raise _refused(exc) from exc


def _refused(exc: ImageRejected) -> RequestFailed:
    status, kind, answer = _REFUSALS[exc.kind]
    return RequestFailed(status, answer.format(detail=exc.message), kind)
