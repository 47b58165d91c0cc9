"""Reading a Prometheus text exposition in tests (shared by the deploy and CLI serve tests)."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


def metric(exposition: str, name: str, **labels: str) -> float:
    """The value of sample ``name`` with exactly ``labels`` in a Prometheus text exposition (0 when absent)."""
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return 0.0
