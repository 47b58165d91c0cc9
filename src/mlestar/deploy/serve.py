"""The prediction server: a FastAPI app over a loaded bundle.

``GET /health`` says which model and version answer; ``POST /predict`` takes
one PNG or JPEG as the multipart field ``file``. Every bad request gets a
4xx JSON body ``{"error": "..."}`` and leaves the server running. Uploads
are bounded twice: the whole request body (checked as it streams in, so a
huge upload is cut off early) and the decoded pixel count (so a small file
that inflates to gigapixels is refused before it is decoded).
"""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, File, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mlestar.deploy.bundle import LoadedBundle, load_bundle

log = logging.getLogger(__name__)

DEFAULT_MAX_UPLOAD_BYTES = 10 * 2**20
DEFAULT_MAX_PIXELS = 40_000_000  # 40 MP: above any camera photo a user would send, far below a bomb
_MULTIPART_SLACK = 64 * 2**10  # boundaries and part headers around the file itself
_FORMATS = ("PNG", "JPEG")


# --------------------------------------------------------------------------- schemas


class HealthResponse(BaseModel):
    """Liveness and which model answers."""

    status: str = Field(description="'ok' while the server can predict")
    model: str = Field(description="model name from the bundle metadata")
    version: str = Field(description="bundle version string")


class ClassScore(BaseModel):
    """One class and its probability."""

    label: str
    index: int = Field(description="class index in labels.json")
    probability: float = Field(ge=0, le=1)


class PredictionResponse(BaseModel):
    """The prediction for one image."""

    label: str = Field(description="most probable class")
    index: int = Field(description="its index in labels.json")
    confidence: float = Field(ge=0, le=1, description="its probability")
    probabilities: dict[str, float] = Field(description="class name -> probability; sums to 1")
    top_k: list[ClassScore] = Field(description="up to five most probable classes, best first")
    model_version: str = Field(description="bundle version that made the prediction")


class ErrorResponse(BaseModel):
    """Why a request was refused."""

    error: str


_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "empty, truncated or corrupt image"},
    413: {"model": ErrorResponse, "description": "upload or image dimensions too large"},
    415: {"model": ErrorResponse, "description": "not a PNG or JPEG image"},
    422: {"model": ErrorResponse, "description": "no multipart field 'file'"},
}


# --------------------------------------------------------------------------- failures


class _RequestFailed(Exception):
    """Ends a request with ``status`` and ``{"error": message}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _BodyTooLarge(StarletteHTTPException):
    """Raised from ``receive`` mid-stream; an HTTPException so FastAPI passes it to our handler."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body exceeds {limit} bytes")


class _BodyLimit:
    """ASGI middleware refusing request bodies over ``max_bytes``.

    A declared ``Content-Length`` over the limit is refused before anything is
    read; a chunked body is counted as it arrives and cut off once it passes.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await _error_response(413, f"request body of {declared} bytes exceeds {self.max_bytes}")(
                scope, receive, send)
            return
        await self.app(scope, self._counting(receive), send)

    def _counting(self, receive: Receive) -> Receive:
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise _BodyTooLarge(self.max_bytes)
            return message

        return counted


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


def _error_response(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _install_error_handlers(app: FastAPI) -> None:
    """Make every refusal, FastAPI's own included, answer ``{"error": ...}``."""

    async def failed(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, _RequestFailed)
        return _error_response(exc.status, exc.message)

    async def http_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        return _error_response(exc.status_code, str(exc.detail))

    async def invalid(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        return _error_response(422, f"invalid request ({problems}); send the image as multipart field 'file'")

    app.add_exception_handler(_RequestFailed, failed)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid)


# --------------------------------------------------------------------------- decoding


def decode_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode an uploaded PNG or JPEG fully, refusing anything unsafe or broken.

    The pixel count is read from the header and checked before decoding, so
    a decompression bomb costs nothing. Raises :class:`_RequestFailed` with
    400 (empty, truncated, corrupt), 413 (too many pixels) or 415 (not PNG/JPEG).
    """
    if not data:
        raise _RequestFailed(400, "the uploaded file is empty (0 bytes)")
    try:
        # Only the two formats we serve: fewer decoders exposed to untrusted bytes.
        image = Image.open(io.BytesIO(data), formats=_FORMATS)
        width, height = image.size
        if width * height > max_pixels:
            raise _RequestFailed(413, f"image of {width}x{height} pixels exceeds the limit of {max_pixels} pixels")
        image.load()
    except UnidentifiedImageError as exc:
        raise _RequestFailed(415, "the uploaded file is not a PNG or JPEG image") from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise _RequestFailed(413, f"image refused as a decompression bomb: {exc}") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise _RequestFailed(400, f"the image is truncated or corrupt: {exc}") from exc
    return image


# --------------------------------------------------------------------------- app


def create_app(bundle: LoadedBundle, *, max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
               max_pixels: int = DEFAULT_MAX_PIXELS) -> FastAPI:
    """Build the prediction app for ``bundle``.

    Args:
        max_upload_bytes: largest accepted image file; bigger ones get 413.
        max_pixels: largest accepted ``width * height``; bigger images get 413.
    """
    app = FastAPI(title=f"mlestar: {bundle.model_name}", version=bundle.version,
                  description="Image classification served from an mlestar bundle.")
    app.add_middleware(_BodyLimit, max_bytes=max_upload_bytes + _MULTIPART_SLACK)
    _install_error_handlers(app)

    @app.get("/health", response_model=HealthResponse)
    def health() -> HealthResponse:
        """Liveness check naming the model and version being served."""
        return HealthResponse(status="ok", model=bundle.model_name, version=bundle.version)

    @app.post("/predict", response_model=PredictionResponse, responses=_ERROR_RESPONSES)
    def predict(file: Annotated[UploadFile, File(description="PNG or JPEG image")]) -> PredictionResponse:
        """Classify one image; any mode (RGBA, palette, grayscale) is converted."""
        # Sync on purpose: FastAPI runs it in a worker thread, so inference never blocks the event loop.
        data = file.file.read(max_upload_bytes + 1)
        if len(data) > max_upload_bytes:
            raise _RequestFailed(413, f"image file exceeds {max_upload_bytes} bytes")
        result = bundle.predict([decode_image(data, max_pixels=max_pixels)])[0]
        return PredictionResponse(**result, model_version=bundle.version)

    return app


def serve(bundle_dir: Path, host: str = "127.0.0.1", port: int = 8000, runtime: str = "torchscript") -> None:
    """Verify and load the bundle at ``bundle_dir``, then serve it with uvicorn until stopped.

    Raises:
        BundleError: when the bundle fails verification or cannot be loaded.
    """
    import uvicorn  # imported here: only serving needs it

    bundle = load_bundle(Path(bundle_dir), runtime=runtime)
    log.info("serving %s %s (%s) on http://%s:%d", bundle.model_name, bundle.version, runtime, host, port)
    uvicorn.run(create_app(bundle), host=host, port=port)
