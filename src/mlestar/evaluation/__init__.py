"""Evaluation: classification metrics and calibration, report figures, efficiency measurements."""

from mlestar.evaluation.efficiency import (
    EfficiencySample,
    batch_throughput,
    count_flops,
    efficiency_report,
    measure_latency,
    measure_throughput,
    model_size_bytes,
    num_params,
    peak_memory_bytes,
    probed_latency,
)
from mlestar.evaluation.metrics import classification_metrics, expected_calibration_error, most_confused_pairs
from mlestar.evaluation.plots import (
    plot_class_distribution,
    plot_confusion_matrix,
    plot_misclassified,
    plot_reliability_diagram,
    plot_sample_grid,
    plot_training_curves,
)

__all__ = [
    "EfficiencySample",
    "batch_throughput",
    "classification_metrics",
    "count_flops",
    "efficiency_report",
    "expected_calibration_error",
    "measure_latency",
    "measure_throughput",
    "model_size_bytes",
    "most_confused_pairs",
    "num_params",
    "peak_memory_bytes",
    "probed_latency",
    "plot_class_distribution",
    "plot_confusion_matrix",
    "plot_misclassified",
    "plot_reliability_diagram",
    "plot_sample_grid",
    "plot_training_curves",
]
