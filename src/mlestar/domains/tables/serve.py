"""The table prediction server: a FastAPI app over a verified table bundle.

Routes:

- ``POST /predict``: JSON ``{"rows": [{column: value, ...}, ...]}``, ``{"row": {...}}``, a bare row
  object or a bare list of rows -> ``{"predictions": [...], "runtime", "run_id"}``, one answer per
  row: ``prediction`` (class name or value) and, for classes, ``probabilities`` per class.
- ``GET /health`` (always 200), ``GET /ready`` (200 once loaded), ``GET /schema`` (the input schema).
- ``GET /metrics``: Prometheus text: requests by route and outcome, rows and predicted classes,
  latency, and ``mlestar_feature_psi{feature=...}``: each column's PSI over the last served rows
  (:class:`~mlestar.domains.tables.drift.RollingDrift`) against the training bins in the schema.

Every bad row is a 422 whose body names the column (:class:`~.schema.RowError`); a body that is not
JSON is a 400. The model runs on onnxruntime by default, on the joblib model when the bundle has
no ONNX graph. No batching across requests: a table row costs microseconds.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import Request  # at module level: FastAPI resolves the route's annotations from these globals
from fastapi.responses import JSONResponse, Response

from mlestar.domains.tables.bundle import TableBundle, load_table_bundle
from mlestar.domains.tables.drift import DEFAULT_WINDOW, RollingDrift
from mlestar.domains.tables.export import onnx_feeds
from mlestar.domains.tables.schema import RowError, rows_to_frame, schema_inputs

log = logging.getLogger(__name__)
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


@dataclass(frozen=True)
class TableServeSettings:
    """What the table server accepts.

    Attributes:
        allow_unknown_categories: pass a category never seen in training on to the model (which
            treats it as unknown: all one-hot columns zero, ordinal code -1) instead of refusing it.
        drift_window: served rows the PSI gauges are computed over.
        max_rows: most rows in one request (more: 422).
    """

    allow_unknown_categories: bool = False
    drift_window: int = DEFAULT_WINDOW
    max_rows: int = 10_000


class _Metrics:
    """The app's Prometheus series, in a registry of its own (tests build many apps)."""

    def __init__(self, bundle: TableBundle, drift: RollingDrift) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = registry = CollectorRegistry()
        self.requests = Counter("mlestar_requests", "HTTP requests answered, by outcome (ok, invalid, error)",
                                ["route", "outcome"], registry=registry)
        self.latency = Histogram("mlestar_request_latency_seconds", "time from request to response, seconds",
                                 ["route"], buckets=LATENCY_BUCKETS, registry=registry)
        self.rows = Counter("mlestar_rows", "rows predicted", registry=registry)
        self.predictions = Counter("mlestar_predictions", "predicted classes", ["label"], registry=registry)
        psi = Gauge("mlestar_feature_psi", "PSI of the column over the last served rows against training "
                    "(NaN before any row)", ["feature"], registry=registry)
        for column in drift.references:
            psi.labels(column).set_function(lambda c=column: drift.psi(c))  # computed when scraped
        Gauge("mlestar_drift_window_rows", "served rows the PSI is computed over",
              registry=registry).set_function(drift.rows)
        info = Gauge("mlestar_model_info", "the model being served", ["run_id", "runtime", "task"], registry=registry)
        info.labels(str(bundle.metadata.get("run_id", "")), bundle.runtime, bundle.task).set(1)
        for outcome in ("ok", "invalid", "error"):
            self.requests.labels("/predict", outcome)  # present at 0, so rate() sees the first one


def create_table_app(bundle_dir: Path, settings: TableServeSettings | None = None,
                     runtime: str | None = None) -> Any:
    """A FastAPI app serving the table bundle at ``bundle_dir`` (checksums verified first).

    Raises:
        BundleError: the bundle fails verification or cannot be loaded.
    """
    from fastapi import FastAPI

    settings = settings or TableServeSettings()
    bundle = load_table_bundle(Path(bundle_dir), runtime=runtime)
    references = {c["name"]: c["psi"] for c in bundle.schema["columns"] if "psi" in c}
    drift = RollingDrift(references, settings.drift_window)
    metrics = _Metrics(bundle, drift)
    app = FastAPI(title="mlestar table model", version=str(bundle.metadata.get("run_id", "")))
    app.state.bundle, app.state.drift, app.state.metrics = bundle, drift, metrics
    _routes(app, bundle, drift, metrics, settings)
    return app


def _routes(app: Any, bundle: TableBundle, drift: RollingDrift, metrics: _Metrics,
            settings: TableServeSettings) -> None:
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    @app.post("/predict")
    async def predict(request: Request) -> JSONResponse:
        started = time.perf_counter()
        status, body = _answer(await request.body(), bundle, drift, metrics, settings)
        outcome = "ok" if status == 200 else ("invalid" if status < 500 else "error")
        metrics.requests.labels("/predict", outcome).inc()
        metrics.latency.labels("/predict").observe(time.perf_counter() - started)
        return JSONResponse(body, status_code=status)

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "runtime": bundle.runtime, "task": bundle.task,
                "run_id": bundle.metadata.get("run_id"), "drift_rows": drift.rows()}

    @app.get("/ready")
    def ready() -> dict[str, Any]:
        return {"ready": True}  # the bundle is loaded before the app exists

    @app.get("/schema")
    def schema() -> dict[str, Any]:
        return bundle.schema

    @app.get("/metrics")
    def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)


def _answer(raw: bytes, bundle: TableBundle, drift: RollingDrift, metrics: _Metrics,
            settings: TableServeSettings) -> tuple[int, dict[str, Any]]:
    """``(status, body)`` for one ``/predict`` body."""
    try:
        rows = request_rows(json.loads(raw or b"null"))
    except ValueError as exc:
        return 400, {"error": f"the body is not JSON: {exc}", "kind": "malformed_json"}
    except RowError as exc:
        return 422, _refusal(exc)
    if len(rows) > settings.max_rows:
        return 422, {"error": f"{len(rows)} rows in one request; at most {settings.max_rows}", "kind": "too_many_rows"}
    try:
        frame = rows_to_frame(rows, bundle.schema, allow_unknown_categories=settings.allow_unknown_categories)
        answers = bundle.answers(frame) if rows else []
    except RowError as exc:
        return 422, _refusal(exc)
    except Exception as exc:  # a model failure must not take the server down
        log.exception("prediction failed")
        return 500, {"error": f"prediction failed: {type(exc).__name__}: {exc}", "kind": "inference"}
    _observe(frame, answers, bundle, drift, metrics)
    return 200, {"predictions": answers, "runtime": bundle.runtime, "run_id": bundle.metadata.get("run_id")}


def _refusal(exc: RowError) -> dict[str, Any]:
    return {"error": exc.message, "kind": "invalid_input", "column": exc.column, "row": exc.row}


def _observe(frame: Any, answers: list[dict[str, Any]], bundle: TableBundle, drift: RollingDrift,
             metrics: _Metrics) -> None:
    """Served values into the drift window (as the model reads them), rows and classes into counters."""
    if not answers:
        return
    inputs = schema_inputs(bundle.schema)
    feeds = onnx_feeds(frame, inputs)
    drift.add({i.column: feeds[i.name].ravel().tolist() for i in inputs})
    metrics.rows.inc(len(answers))
    if bundle.task != "regression":
        for answer in answers:
            metrics.predictions.labels(answer["prediction"]).inc()


def request_rows(body: Any) -> list[Any]:
    """The rows of a request body: ``{"rows": [...]}``, ``{"row": {...}}``, a bare list or a bare row.

    Raises:
        RowError: the body is none of these.
    """
    if isinstance(body, dict) and set(body) == {"rows"}:
        body = body["rows"]
    elif isinstance(body, dict) and set(body) == {"row"}:
        body = [body["row"]]
    elif isinstance(body, dict):
        body = [body]
    if not isinstance(body, list):
        raise RowError('send {"rows": [{column: value, ...}, ...]}, {"row": {...}}, a row or a list of rows; '
                       f"got {type(body).__name__}")
    return body


def serve_table(bundle_dir: Path, *, host: str | None = None, port: int | None = None, runtime: str | None = None,
                allow_unknown_categories: bool = False) -> None:
    """Verify and load the table bundle, then serve it with uvicorn until stopped (127.0.0.1:8000 by default)."""
    import uvicorn

    app = create_table_app(Path(bundle_dir), TableServeSettings(allow_unknown_categories=allow_unknown_categories),
                           runtime=runtime)
    host, port = host or "127.0.0.1", 8000 if port is None else port
    log.info("serving table bundle %s (%s) on http://%s:%d", bundle_dir, app.state.bundle.runtime, host, port)
    uvicorn.run(app, host=host, port=port, access_log=False)
