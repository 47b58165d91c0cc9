"""Operational files a bundle carries besides the model: alert rules and what its requirements pin.

``alerts.yml`` is a Prometheus rule file over the series ``mlestar serve``
exposes on ``/metrics`` (:mod:`mlestar.deploy.metrics`); :func:`serving_pins`
lists the packages that serve an image bundle, for its ``requirements.txt``
(:mod:`mlestar.tracking.container`).
"""

from __future__ import annotations

from dataclasses import dataclass

import yaml

from mlestar.tracking.container import WEB_PACKAGES, Pin, pins

# What the serving path imports besides mlestar (the deploy package imports torch even for ONNX
# bundles). Exact: torch and onnxruntime compute the logits, pillow decodes and resizes the image.
_EXACT_PACKAGES = ("torch", "numpy", "pillow")
_RUNTIME_PACKAGES = {"onnx": ("onnxruntime",), "torchscript": ()}
_PREDICT_ROUTES = '/predict|/predict/batch'


@dataclass(frozen=True)
class AlertThresholds:
    """When the bundle's alerts fire.

    Attributes:
        drift_score: ``mlestar_drift_score`` above this (the accuracy proxy).
        latency_p95_s: p95 of ``/predict`` latency above this many seconds.
        error_rate: share of prediction requests answered 4xx/5xx above this.
        window_s: rate window, and how long a condition must hold before firing.
    """

    drift_score: float
    latency_p95_s: float
    error_rate: float
    window_s: float


def render_alerts(model_name: str, version: str, thresholds: AlertThresholds) -> str:
    """A Prometheus rule file (YAML) with the drift, latency and error-rate alerts."""
    window = f"{max(1, round(thresholds.window_s))}s"
    rules = [_drift_rule(thresholds, window), _latency_rule(thresholds, window), _error_rule(thresholds, window)]
    for rule in rules:
        rule["labels"] = {"severity": "warning", "model": model_name, "version": version}
    header = (f"# Prometheus alert rules for {model_name} {version}, written by mlestar stage 7.\n"
              "# Load with rule_files: [alerts.yml]; thresholds come from deployment.alerts and\n"
              "# constraints.max_inference_latency in the run's config.\n")
    return header + yaml.safe_dump({"groups": [{"name": f"mlestar-{model_name}", "rules": rules}]},
                                   sort_keys=False, width=120)


def _drift_rule(t: AlertThresholds, window: str) -> dict[str, object]:
    return {"alert": "MlestarInputDrift", "expr": f"mlestar_drift_score > {t.drift_score:g}", "for": window,
            "annotations": {
                "summary": "served inputs or predictions have drifted from the training data",
                "description": "drift score {{ $value | printf \"%.2f\" }} > " + f"{t.drift_score:g}: accuracy is "
                               "likely lower than measured; compare mlestar_input_channel_mean and "
                               "mlestar_predictions_total with the bundle's reference.json"}}


def _latency_rule(t: AlertThresholds, window: str) -> dict[str, object]:
    quantile = ("histogram_quantile(0.95, sum by (le) (rate(mlestar_request_latency_seconds_bucket"
                f'{{route="/predict"}}[{window}])))')
    return {"alert": "MlestarLatencyP95", "expr": f"{quantile} > {t.latency_p95_s:g}", "for": window,
            "annotations": {"summary": f"/predict p95 latency above {t.latency_p95_s * 1000:g} ms",
                            "description": "p95 {{ $value | humanizeDuration }}; check load, "
                                           "mlestar_batch_size and the server's CPU"}}


def _error_rule(t: AlertThresholds, window: str) -> dict[str, object]:
    selector = f'route=~"{_PREDICT_ROUTES}"'
    failed = f'sum(rate(mlestar_requests_total{{{selector},status=~"[45].."}}[{window}]))'
    total = f"sum(rate(mlestar_requests_total{{{selector}}}[{window}]))"
    return {"alert": "MlestarErrorRate", "expr": f"({failed} / {total}) > {t.error_rate:g}", "for": window,
            "annotations": {"summary": f"more than {t.error_rate:.0%} of prediction requests fail",
                            "description": "error rate {{ $value | humanizePercentage }}; "
                                           "mlestar_errors_total by kind says why"}}


def serving_pins(runtimes: list[str]) -> list[Pin]:
    """The third-party packages that serve an image bundle with ``runtimes``, for its ``requirements.txt``."""
    exact = (*_EXACT_PACKAGES, *(pkg for runtime in sorted(runtimes) for pkg in _RUNTIME_PACKAGES[runtime]))
    return pins(exact, (*WEB_PACKAGES, "python-multipart"))  # multipart: image uploads
