"""The prediction server: a FastAPI app over a loaded bundle.

Routes:

- ``POST /predict``: one image (multipart field ``file``, or JSON
  ``{"image": "<base64>"}``) -> class probabilities, top-k, model version.
- ``POST /predict/batch``: several images (multipart ``files``/``file``,
  or JSON ``{"images": [...]}`` or a bare list) -> one answer per image.
- ``GET /health``: liveness, the model, readiness and drift (always 200).
- ``GET /ready``: 200 once the model is loaded and warmed up, 503 before.
- ``GET /metrics``: Prometheus exposition (:mod:`mlestar.deploy.metrics`).
- ``GET /docs``, ``GET /openapi.json``: the interactive docs and schema.

Every bad request gets a 4xx JSON body ``{"error": ..., "kind": ...}``,
counted by kind on ``/metrics``, and leaves the server answering.
Predictions go through the micro-batcher (:mod:`mlestar.deploy.batching`):
images are decoded in worker threads, concurrent requests share model calls,
and the event loop is never blocked by decoding or inference.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, AsyncIterator

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mlestar.data.preprocess import normalize_pixels, to_unit
from mlestar.deploy.batching import MicroBatcher, NotRunning, Overloaded
from mlestar.deploy.bundle import LoadedBundle, load_bundle
from mlestar.deploy.inputs import (BatchPredictJSON, BodyLimit, BodyTooLarge, PredictJSON, RequestFailed,
                                   error_response, model_pixels, pixel_count, quiet_pil_bomb_warning, read_images)
from mlestar.deploy.metrics import EXPOSITION_TYPE, UNMATCHED_ROUTE, ServeMetrics
from mlestar.deploy.monitor import DriftMonitor

log = logging.getLogger(__name__)

DEFAULT_MAX_UPLOAD_BYTES = 10 * 2**20
DEFAULT_MAX_PIXELS = 40_000_000  # 40 MP: above any camera photo a user would send, far below a bomb
_MULTIPART_SLACK = 64 * 2**10  # boundaries and part headers around the file itself
_BATCH_BODY_CAP = 64 * 2**20  # a batch body never needs more, whatever the per-image limit
_WARMUP_CALLS = 3  # TorchScript's profiling executor optimizes a shape after its first calls
# Images up to this many pixels are decoded on the event loop: for a CIFAR-sized PNG the hop to a
# worker thread costs more than the decoding (tens of microseconds). Larger ones go to a thread.
_INLINE_DECODE_PIXELS = 128 * 128


# ServeSettings field -> the deployment.serve key a bundle's metadata stores it under.
_SERVING_INTS = {"max_upload_bytes": "max_upload_size", "max_pixels": "max_pixels", "max_batch_size": "max_batch_size",
                 "max_queue": "max_queue", "max_batch_images": "max_batch_images", "top_k": "top_k"}


@dataclass(frozen=True)
class ServeSettings:
    """Limits and batching of one app; ``deployment.serve`` in the config sets the bundle's defaults.

    Attributes:
        max_upload_bytes: largest accepted image file; bigger ones get 413.
        max_pixels: largest accepted ``width * height``; bigger images get 413.
        max_batch_size: most images per model call; 1 turns batching off.
        max_wait_ms: longest a request waits for others to share its model call.
        max_queue: most requests waiting for the model; beyond it requests get 503.
        max_batch_images: most images in one ``/predict/batch`` request.
        top_k: classes listed in each answer, best first.
        ready_timeout_s: how long a prediction waits for warm-up before 503.
    """

    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_batch_size: int = 32
    max_wait_ms: float = 5.0
    max_queue: int = 1024
    max_batch_images: int = 64
    top_k: int = 5
    ready_timeout_s: float = 30.0

    @classmethod
    def from_serving(cls, serving: dict[str, Any] | None) -> ServeSettings:
        """Settings from a bundle's ``metadata["serving"]`` (``ServeConfig`` fields); absent keys keep defaults."""
        serving = serving or {}
        values: dict[str, Any] = {field: int(serving[key]) for field, key in _SERVING_INTS.items()
                                  if serving.get(key) is not None}
        if serving.get("max_wait") is not None:
            values["max_wait_ms"] = float(serving["max_wait"]) * 1000  # the config keeps seconds
        return cls(**values)

    def body_limit(self, path: str) -> int:
        """Largest request body for ``path``: one image (base64 inflates by 4/3), or a batch of them."""
        single = self.max_upload_bytes * 4 // 3 + _MULTIPART_SLACK
        if path == "/predict/batch":
            return max(single, min(single * self.max_batch_images, _BATCH_BODY_CAP))
        return single


# --------------------------------------------------------------------------- schemas


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
    top_k: list[ClassScore] = Field(description="the most probable classes, best first")
    model_version: str = Field(description="bundle version that made the prediction")


class BatchPredictionResponse(BaseModel):
    """One prediction per image, in the order sent."""

    predictions: list[PredictionResponse]
    model_version: str


class DriftStatus(BaseModel):
    """Served inputs and predictions against the training data (formula: mlestar.deploy.monitor)."""

    images: int = Field(description="images observed since start")
    predictions: int
    channel_mean: list[float] = Field(description="running mean of served pixels per channel, 0..1")
    channel_std: list[float]
    class_frequencies: list[float] = Field(description="share of predictions per class, label order")
    input_shift: float | None = Field(description="mean over channels of |mean - training mean| / training std")
    class_shift: float | None = Field(description="total variation distance to training class frequencies")
    score: float | None = Field(description="input_shift + class_shift; null without a reference or data")


class HealthResponse(BaseModel):
    """Liveness, which model answers, and drift."""

    status: str = Field(description="'ok' while the server is up")
    model: str = Field(description="model name from the bundle metadata")
    version: str = Field(description="bundle version string")
    runtime: str = Field(description="torchscript or onnx")
    precision: str = Field(description="fp32 or int8")
    ready: bool = Field(description="the model is loaded and warmed up")
    drift: DriftStatus


class ReadyResponse(BaseModel):
    """Readiness: the model is loaded and warmed up."""

    ready: bool


class ErrorResponse(BaseModel):
    """Why a request was refused."""

    error: str = Field(description="what was wrong and what to send instead")
    kind: str = Field(description="error kind, as counted by mlestar_errors_total")


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    described = {400: "empty, truncated or corrupt image; malformed JSON, base64 or multipart",
                 413: "body, file, image dimensions or image count too large",
                 415: "not a PNG or JPEG image, or a content type other than multipart or JSON",
                 422: "no image in the expected field", 503: "warming up or overloaded",
                 500: "the model failed"}
    return {status: {"model": ErrorResponse, "description": described[status]} for status in statuses}


def _request_body(model: type[BaseModel], multipart_field: str, many: bool) -> dict[str, Any]:
    """OpenAPI ``requestBody`` for a route that parses the body itself (multipart or JSON)."""
    file_schema: dict[str, Any] = {"type": "string", "format": "binary"}
    part = {"type": "array", "items": file_schema} if many else file_schema
    json_schema = model.model_json_schema()
    if many:
        json_schema = {"anyOf": [json_schema, {"type": "array", "items": {"type": "string"}}]}
    return {"requestBody": {"required": True, "content": {
        "multipart/form-data": {"schema": {"type": "object", "properties": {multipart_field: part},
                                           "required": [multipart_field]}},
        "application/json": {"schema": json_schema}}}}


# --------------------------------------------------------------------------- the server


class _Server:
    """Everything a running app holds: the bundle, batcher, monitor, metrics and readiness."""

    def __init__(self, bundle: LoadedBundle, settings: ServeSettings) -> None:
        self.bundle, self.settings = bundle, settings
        prep = bundle.preprocessing
        self.monitor = DriftMonitor(prep.channels, len(bundle.class_names), bundle.reference)
        self.metrics = ServeMetrics(self.monitor, model=bundle.model_name, version=bundle.version,
                                    runtime=bundle.runtime, precision=bundle.precision, channels=prep.channels)
        self.batcher = MicroBatcher(bundle.runner, max_batch_size=settings.max_batch_size,
                                    max_wait_s=settings.max_wait_ms / 1000, max_queue=settings.max_queue,
                                    on_batch=self.metrics.batch_size.observe)
        self.metrics.queue_depth.set_function(lambda: self.batcher.waiting)  # read when scraped
        self._ready: asyncio.Event | None = None
        self._warm_up_task: asyncio.Task[None] | None = None
        self.failure: str | None = None

    @property
    def ready(self) -> bool:
        return self._ready is not None and self._ready.is_set()

    async def start(self) -> None:
        """Start the batcher and warm the model up in the background; ``/ready`` turns 200 when done."""
        self._ready = asyncio.Event()
        await self.batcher.start()
        self._warm_up_task = asyncio.get_running_loop().create_task(self._warm_up(), name="mlestar-warm-up")

    async def stop(self) -> None:
        if self._warm_up_task is not None:
            self._warm_up_task.cancel()
            await asyncio.gather(self._warm_up_task, return_exceptions=True)
        await self.batcher.stop()

    async def _warm_up(self) -> None:
        prep = self.bundle.preprocessing
        try:
            for size in sorted({1, self.settings.max_batch_size}):
                blank = np.zeros((size, prep.channels, prep.image_size, prep.image_size), dtype=np.float32)
                for _ in range(_WARMUP_CALLS):
                    await self.batcher.run_blocking(blank)
        except Exception as exc:  # noqa: BLE001  (reported by /ready and every prediction)
            log.exception("warm-up of %s failed", self.bundle.model_name)
            self.failure = f"the model failed during warm-up: {exc}"
            return
        assert self._ready is not None
        self._ready.set()
        self.metrics.ready.set(1)

    async def predict(self, files: list[bytes], many: bool) -> list[dict[str, Any]]:
        """Answers for raw image files, in order, through the micro-batcher.

        Raises:
            RequestFailed: bad images (4xx), not ready or overloaded (503), a model failure (500).
        """
        await self._wait_ready()
        if all((pixel_count(data) or 0) <= _INLINE_DECODE_PIXELS for data in files):
            pixels = self._pixels(files, many)
        else:
            pixels = await run_in_threadpool(self._pixels, files, many)
        try:
            logits = await self.batcher.infer(normalize_pixels(pixels, self.bundle.preprocessing))
        except Overloaded as exc:
            raise RequestFailed(503, f"the server is overloaded ({exc}); retry shortly", "overloaded") from exc
        except NotRunning as exc:
            raise RequestFailed(503, f"the model is not serving: {exc}", "not_ready") from exc
        except Exception as exc:  # noqa: BLE001  (the model's own failure; the server keeps running)
            raise RequestFailed(500, f"the model failed on this input: {exc}", "inference") from exc
        answers = self.bundle.describe(logits, self.settings.top_k)
        self.monitor.observe_predictions([answer["index"] for answer in answers])
        self.metrics.count_predictions([answer["label"] for answer in answers])
        return [{**answer, "model_version": self.bundle.version} for answer in answers]

    async def _wait_ready(self) -> None:
        if self.failure:
            raise RequestFailed(503, self.failure, "not_ready")
        if self._ready is None:
            raise RequestFailed(503, "the server has not started", "not_ready")
        try:
            await asyncio.wait_for(self._ready.wait(), self.settings.ready_timeout_s)
        except asyncio.TimeoutError as exc:
            raise RequestFailed(503, "the model is still warming up; retry shortly", "not_ready") from exc

    def _pixels(self, files: list[bytes], many: bool) -> np.ndarray:
        """Every file as float32 ``(N, C, H, W)`` 0..1 pixels, recorded for drift monitoring.

        Steps 1 to 3 of :mod:`mlestar.data.preprocess` per file, then its
        ``pixels / 255``; :meth:`predict` normalizes them.

        Thread-safe: large images are decoded in a worker thread.
        """
        arrays = []
        for index, data in enumerate(files):
            try:
                arrays.append(model_pixels(data, self.bundle.preprocessing, max_pixels=self.settings.max_pixels))
            except RequestFailed as exc:
                if many:
                    raise RequestFailed(exc.status, f"image {index}: {exc.message}", exc.kind) from exc
                raise
        pixels = to_unit(np.stack(arrays))
        self.monitor.observe_inputs(pixels)
        return pixels

    def health(self) -> HealthResponse:
        return HealthResponse(status="ok", model=self.bundle.model_name, version=self.bundle.version,
                              runtime=self.bundle.runtime, precision=self.bundle.precision, ready=self.ready,
                              drift=DriftStatus(**self.monitor.snapshot()))


def _server(request: Request) -> _Server:
    server: _Server = request.app.state.server
    return server


# --------------------------------------------------------------------------- middleware and errors


class _RequestMetrics:
    """ASGI middleware counting every response by route and status, and timing it.

    The route label is the app's route path, also for requests refused
    before routing (a body over the limit); any other path is ``unmatched``.
    """

    def __init__(self, app: ASGIApp, metrics: ServeMetrics, routes: frozenset[str]) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status = time.perf_counter(), 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            path = scope.get("path", "")
            label = path if path in self.routes and status != 404 else UNMATCHED_ROUTE
            self.metrics.observe_request(label, status, time.perf_counter() - start)


_HTTP_KINDS = {400: "malformed_multipart", 404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}


def _install_error_handlers(app: FastAPI) -> None:
    """Make every refusal, FastAPI's own included, answer ``{"error", "kind"}`` and count it."""

    async def failed(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestFailed)
        return _refuse(request, exc.status, exc.message, exc.kind)

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        kind = _HTTP_KINDS.get(exc.status_code, "invalid_request")
        kind = "body_too_large" if isinstance(exc, BodyTooLarge) else kind
        return _refuse(request, exc.status_code, str(exc.detail), kind)

    async def invalid(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        return _refuse(request, 422, f"invalid request ({problems})", "invalid_request")

    async def crashed(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error on %s", request.url.path, exc_info=exc)
        return _refuse(request, 500, "internal server error", "internal")

    app.add_exception_handler(RequestFailed, failed)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(Exception, crashed)


def _refuse(request: Request, status: int, message: str, kind: str) -> JSONResponse:
    server = getattr(request.app.state, "server", None)
    if server is not None:
        server.metrics.count_error(kind)
    return error_response(status, message, kind)


# --------------------------------------------------------------------------- the app


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    server: _Server | None = getattr(app.state, "server", None)
    if server is None:  # a schema-only app (openapi_document)
        yield
        return
    await server.start()
    try:
        yield
    finally:
        await server.stop()


def _build_app(model_name: str, version: str, settings: ServeSettings) -> FastAPI:
    """The app's routes and schema; routes find the running :class:`_Server` on ``app.state``."""
    app = FastAPI(title=f"mlestar: {model_name}", version=version, lifespan=_lifespan,
                  description="Image classification served from an mlestar bundle. Concurrent requests are "
                              f"micro-batched (up to {settings.max_batch_size} images per model call).")
    _install_error_handlers(app)
    _add_prediction_routes(app)
    _add_status_routes(app)
    return app


def _add_prediction_routes(app: FastAPI) -> None:
    @app.post("/predict", response_model=PredictionResponse, responses=_errors(400, 413, 415, 422, 500, 503),
              openapi_extra=_request_body(PredictJSON, "file", many=False))
    async def predict(request: Request) -> JSONResponse:
        """Classify one image (PNG or JPEG, any mode: RGBA, palette and grayscale are converted)."""
        server = _server(request)
        files = await read_images(request, many=False, max_images=1,
                                  max_file_bytes=server.settings.max_upload_bytes)
        # A response object skips FastAPI's re-validation of an answer built to the schema by describe().
        return JSONResponse((await server.predict(files, many=False))[0])

    @app.post("/predict/batch", response_model=BatchPredictionResponse,
              responses=_errors(400, 413, 415, 422, 500, 503),
              openapi_extra=_request_body(BatchPredictJSON, "files", many=True))
    async def predict_batch(request: Request) -> JSONResponse:
        """Classify several images; one bad image refuses the whole request, naming its index."""
        server = _server(request)
        files = await read_images(request, many=True, max_images=server.settings.max_batch_images,
                                  max_file_bytes=server.settings.max_upload_bytes)
        answers = await server.predict(files, many=True)
        return JSONResponse({"predictions": answers, "model_version": server.bundle.version})


def _add_status_routes(app: FastAPI) -> None:
    @app.get("/health", response_model=HealthResponse)
    async def health(request: Request) -> HealthResponse:
        """Liveness (always 200 while the process runs), the model, readiness and drift."""
        return _server(request).health()

    @app.get("/ready", response_model=ReadyResponse, responses=_errors(503))
    async def ready(request: Request) -> Any:
        """200 once the model is loaded and warmed up; 503 before (or when warm-up failed)."""
        server = _server(request)
        if server.ready:
            return ReadyResponse(ready=True)
        return error_response(503, server.failure or "the model is still warming up", "not_ready")

    @app.get("/metrics", response_class=Response, responses={200: {"content": {EXPOSITION_TYPE: {}}}})
    async def metrics(request: Request) -> Response:
        """Prometheus metrics: requests, latency, batch sizes, errors by kind, predictions, drift."""
        return Response(_server(request).metrics.exposition(), media_type=EXPOSITION_TYPE)


def create_app(bundle: LoadedBundle, settings: ServeSettings | None = None) -> FastAPI:
    """Build the prediction app for ``bundle``.

    The model is warmed up when the app starts (its lifespan), in the
    background: ``/health`` answers at once, ``/ready`` turns 200 when the
    warm-up is done, and predictions sent before then wait for it.

    Args:
        settings: limits and batching; default: the bundle's serving defaults.
    """
    settings = settings or ServeSettings.from_serving(bundle.metadata.get("serving"))
    quiet_pil_bomb_warning()
    app = _build_app(bundle.model_name, bundle.version, settings)
    server = _Server(bundle, settings)
    app.state.server = server
    app.add_middleware(BodyLimit, limit=settings.body_limit, on_refused=server.metrics.count_error)
    routes = frozenset(str(getattr(route, "path", "")) for route in app.routes)
    app.add_middleware(_RequestMetrics, metrics=server.metrics, routes=routes)  # outermost: counts every answer
    return app


def openapi_document(model_name: str, version: str, settings: ServeSettings | None = None) -> dict[str, Any]:
    """The OpenAPI schema :func:`create_app` serves for a bundle of this model and version."""
    return _build_app(model_name, version, settings or ServeSettings()).openapi()


def serve(bundle_dir: Path, host: str | None = None, port: int | None = None, runtime: str | None = None,
          max_batch_size: int | None = None, max_wait_ms: float | None = None) -> None:
    """Verify and load the bundle at ``bundle_dir``, then serve it with uvicorn until stopped.

    Every ``None`` argument takes the bundle's serving default (``deployment.serve``
    when stage 7 wrote it), else the built-in one (127.0.0.1:8000).

    Raises:
        BundleError: when the bundle fails verification or cannot be loaded.
    """
    import uvicorn  # imported here: only serving needs it

    bundle = load_bundle(Path(bundle_dir), runtime=runtime)
    serving = bundle.metadata.get("serving") or {}
    overrides = {"max_batch_size": max_batch_size, "max_wait_ms": max_wait_ms}
    settings = replace(ServeSettings.from_serving(serving), **{k: v for k, v in overrides.items() if v is not None})
    host = host or serving.get("host") or "127.0.0.1"
    port = port if port is not None else int(serving.get("port", 8000))
    log.info("serving %s %s (%s, %s) on http://%s:%d, batches up to %d", bundle.model_name, bundle.version,
             bundle.runtime, bundle.precision, host, port, settings.max_batch_size)
    # No access log: /metrics counts every request, and a log line per request costs throughput.
    uvicorn.run(create_app(bundle, settings), host=host, port=port, access_log=False)
