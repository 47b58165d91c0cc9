"""Prometheus metrics of one serving app, in a registry of its own.

Each app owns a :class:`prometheus_client.CollectorRegistry` (never the
process-global one), so tests can build many apps and each ``/metrics``
shows only its own traffic. Exposed series:

| series | type | labels | meaning |
|---|---|---|---|
| ``mlestar_requests_total`` | counter | route, status | HTTP requests answered |
| ``mlestar_request_latency_seconds`` | histogram | route | time from request to response |
| ``mlestar_batch_size`` | histogram | | images per model call |
| ``mlestar_queue_depth`` | gauge | | requests waiting for a model call: queued, or gathering a batch |
| ``mlestar_errors_total`` | counter | kind | refused or failed requests (kinds: :data:`ERROR_KINDS`) |
| ``mlestar_predictions_total`` | counter | label | predicted classes |
| ``mlestar_drift_score`` | gauge | | drift score (``NaN`` until it can be computed) |
| ``mlestar_input_channel_mean`` | gauge | channel | running mean of served pixels, 0..1 |
| ``mlestar_ready`` | gauge | | 1 once the model is loaded and warmed up |
| ``mlestar_model_info`` | gauge | model, version, runtime, precision | always 1 |

``route`` is the matched route's path (``/predict``), or ``unmatched`` for
unknown paths, so scanning random URLs cannot grow the label set.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from mlestar.deploy.monitor import DriftMonitor

ERROR_KINDS = (
    "empty_file", "not_an_image", "corrupt_image", "image_too_large", "file_too_large", "body_too_large",
    "too_many_images", "unsupported_media_type", "malformed_json", "malformed_base64", "malformed_multipart",
    "invalid_request", "not_found", "method_not_allowed", "not_ready", "overloaded", "inference", "internal",
)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
EXPOSITION_TYPE = CONTENT_TYPE_LATEST
UNMATCHED_ROUTE = "unmatched"


class ServeMetrics:
    """The metrics of one app (see the module docstring for the series)."""

    def __init__(self, monitor: DriftMonitor, *, model: str, version: str, runtime: str, precision: str,
                 channels: int) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self.requests = Counter("mlestar_requests", "HTTP requests answered", ["route", "status"], registry=registry)
        self.latency = Histogram("mlestar_request_latency_seconds", "time from request to response, seconds",
                                 ["route"], buckets=LATENCY_BUCKETS, registry=registry)
        self.batch_size = Histogram("mlestar_batch_size", "images per model call", buckets=BATCH_BUCKETS,
                                    registry=registry)
        self.errors = Counter("mlestar_errors", "requests refused or failed, by kind", ["kind"], registry=registry)
        self.predictions = Counter("mlestar_predictions", "predicted classes", ["label"], registry=registry)
        self.ready = Gauge("mlestar_ready", "1 once the model is loaded and warmed up", registry=registry)
        # Rising depth warns of overload before max_queue turns requests away with 503.
        self.queue_depth = Gauge("mlestar_queue_depth", "requests waiting for a model call", registry=registry)
        self._gauges(monitor, model, version, runtime, precision, channels)
        for kind in ERROR_KINDS:
            self.errors.labels(kind)  # every kind exists at 0, so rate() sees its first error

    def _gauges(self, monitor: DriftMonitor, model: str, version: str, runtime: str, precision: str,
                channels: int) -> None:
        drift = Gauge("mlestar_drift_score", "input and prediction drift against the training data "
                      "(mean |z-shift| of channel means + class-frequency TV distance)", registry=self.registry)
        drift.set_function(monitor.score)  # computed when scraped, never stale
        means = Gauge("mlestar_input_channel_mean", "running mean of served pixels (0..1) per channel",
                      ["channel"], registry=self.registry)
        for channel in range(channels):
            means.labels(str(channel)).set_function(lambda c=channel: _channel_mean(monitor, c))
        info = Gauge("mlestar_model_info", "the model being served", ["model", "version", "runtime", "precision"],
                     registry=self.registry)
        info.labels(model, version, runtime, precision).set(1)

    def observe_request(self, route: str, status: int, seconds: float) -> None:
        self.requests.labels(route, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def count_error(self, kind: str) -> None:
        self.errors.labels(kind).inc()

    def count_predictions(self, labels: list[str]) -> None:
        for label in labels:
            self.predictions.labels(label).inc()

    def exposition(self) -> bytes:
        """The registry in Prometheus text format (serve with :data:`EXPOSITION_TYPE`)."""
        return generate_latest(self.registry)


def _channel_mean(monitor: DriftMonitor, channel: int) -> float:
    means = monitor.snapshot()["channel_mean"]
    return float(means[channel]) if means else float("nan")
