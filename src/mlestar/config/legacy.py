"""Translate configs written for the original MLE-Star sample projects.

Those files carry a ``mle_star_workflow.stages`` mapping, ``quality_gates``
keyed by stage (``stage_4_implementation: {min_val_accuracy: 0.85}``),
``performance_targets``, ``evaluation.targets`` and an ``error_handling``
list. What maps onto :class:`~mlestar.config.schema.MlestarConfig` is moved
there; every other key is named in a warning, so nothing is dropped silently.
"""

from __future__ import annotations

from typing import Any

from mlestar.config.catalog import REMEDIES, normalize_stage

LEGACY_MARKERS = ("mle_star_workflow", "quality_gates", "performance_targets", "error_handling")

# quality_gates key -> (metric, comparison, constraint it also sets)
_GATE_KEYS: dict[str, tuple[str, str, str | None]] = {
    "min_val_accuracy": ("val_accuracy", ">=", None),
    "min_train_accuracy": ("train_accuracy", ">=", None),
    "max_training_time": ("training_time", "<=", "max_training_time"),
    "min_test_accuracy": ("test_accuracy", ">=", None),
    "min_accuracy": ("test_accuracy", ">=", None),
    "min_f1_score": ("macro_f1", ">=", None),
    "min_precision": ("macro_precision", ">=", None),
    "min_recall": ("macro_recall", ">=", None),
    "max_inference_time": ("latency_p95", "<=", "max_inference_latency"),
    "max_latency": ("latency_p95", "<=", "max_inference_latency"),
    "model_size_limit": ("model_size", "<=", "max_model_size"),
    "max_model_size": ("model_size", "<=", "max_model_size"),
    "memory_limit": ("peak_memory", "<=", "max_peak_memory"),
}

# performance_targets key -> ("target", metric) or ("constraint", constraint key)
_TARGET_KEYS: dict[str, tuple[str, str]] = {
    "accuracy": ("target", "test_accuracy"),
    "test_accuracy": ("target", "test_accuracy"),
    "val_accuracy": ("target", "val_accuracy"),
    "f1_score": ("target", "macro_f1"),
    "precision": ("target", "macro_precision"),
    "recall": ("target", "macro_recall"),
    "inference_time": ("constraint", "max_inference_latency"),
    "latency": ("constraint", "max_inference_latency"),
    "model_size": ("constraint", "max_model_size"),
    "training_time": ("constraint", "max_training_time"),
    "memory": ("constraint", "max_peak_memory"),
    "memory_usage": ("constraint", "max_peak_memory"),
}

_REMEDY_ALIASES = {"lower_lr": "lower_learning_rate", "reduce_learning_rate": "lower_learning_rate",
                   "early_stopping": "reduce_epochs", "data_augmentation": "add_augmentation",
                   "regularization": "add_regularization", "reduce_model_size": "simplify_model"}

_TRAINING_KEYS = {"epochs", "batch_size", "learning_rate", "optimizer", "weight_decay", "momentum",
                  "label_smoothing", "model"}

_DATA_SOURCES = {"cifar10": "cifar10", "cifar-10": "cifar10", "digits": "digits"}


def is_legacy(raw: dict[str, Any]) -> bool:
    """True when ``raw`` uses the sample-project layout."""
    return any(key in raw for key in LEGACY_MARKERS)


class _Translation:
    """Accumulates the translated config and the warnings for one file."""

    def __init__(self) -> None:
        self.out: dict[str, Any] = {}
        self.warnings: list[str] = []

    def section(self, name: str) -> dict[str, Any]:
        return self.out.setdefault(name, {})

    def warn(self, path: str, why: str) -> None:
        self.warnings.append(f"{path}: {why}")


def translate_legacy(raw: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Return ``(config_dict, warnings)`` for a sample-project config.

    The result still goes through the strict schema, so a value that maps
    but is malformed is reported there with its new path.
    """
    tr = _Translation()
    handlers = {
        "project": _project, "mle_star_workflow": _workflow, "quality_gates": _quality_gates,
        "performance_targets": _performance_targets, "evaluation": _evaluation,
        "error_handling": _error_handling, "training": _training, "dataset": _dataset, "data": _dataset,
        "seed": lambda t, v: t.out.__setitem__("seed", v),
    }
    for key, value in raw.items():
        handler = handlers.get(key)
        if handler is None:
            tr.warn(key, "not supported by mlestar; ignored")
        else:
            handler(tr, value)
    return tr.out, tr.warnings


def _project(tr: _Translation, value: Any) -> None:
    if not isinstance(value, dict):
        tr.warn("project", "expected a mapping; ignored")
        return
    for key, item in value.items():
        if key in ("name", "description"):
            tr.section("project")[key] = str(item)
        else:
            tr.warn(f"project.{key}", "descriptive only; kept out of the config")


def _workflow(tr: _Translation, value: Any) -> None:
    stages = value.get("stages", {}) if isinstance(value, dict) else {}
    for key in (value or {}):
        if key != "stages":
            tr.warn(f"mle_star_workflow.{key}", "descriptive only; ignored")
    for stage_id, body in (stages or {}).items():
        try:
            name = normalize_stage(stage_id)
        except ValueError as exc:
            tr.warn(f"mle_star_workflow.stages.{stage_id}", f"{exc}; ignored")
            continue
        for key in (body or {}) if isinstance(body, dict) else ():
            tr.warn(f"mle_star_workflow.stages.{stage_id}.{key}",
                    f"descriptive only; stage {name!r} always runs its full set of steps")


def _quality_gates(tr: _Translation, value: Any) -> None:
    for stage_key, checks in (value or {}).items():
        try:
            stage = normalize_stage(stage_key)
        except ValueError as exc:
            tr.warn(f"quality_gates.{stage_key}", f"{exc}; ignored")
            continue
        for key, threshold in (checks or {}).items():
            _one_gate(tr, f"quality_gates.{stage_key}.{key}", stage, key, threshold)


def _one_gate(tr: _Translation, path: str, stage: str, key: str, threshold: Any) -> None:
    mapping = _GATE_KEYS.get(key)
    if mapping is None:
        tr.warn(path, "no such gate in mlestar; ignored")
        return
    metric, op, constraint = mapping
    tr.out.setdefault("gates", []).append({"name": key, "metric": metric, "op": op, "threshold": threshold})
    if constraint:
        tr.section("constraints").setdefault(constraint, threshold)
    if stage not in ("implementation", "evaluation", "deployment", "situation_analysis"):
        tr.warn(path, f"checked where {metric!r} is produced, not at stage {stage!r}")


def _performance_targets(tr: _Translation, value: Any) -> None:
    for key, target in (value or {}).items():
        _one_target(tr, f"performance_targets.{key}", key, target)


def _one_target(tr: _Translation, path: str, key: str, target: Any) -> None:
    mapping = _TARGET_KEYS.get(key)
    if mapping is None:
        tr.warn(path, "no such target in mlestar; ignored")
    elif mapping[0] == "target":
        tr.section("task").setdefault("targets", {})[mapping[1]] = target
    else:
        tr.section("constraints").setdefault(mapping[1], target)


def _evaluation(tr: _Translation, value: Any) -> None:
    for key, item in (value or {}).items():
        if key == "targets" and isinstance(item, dict):
            for name, target in item.items():
                _one_target(tr, f"evaluation.targets.{name}", name, target)
        elif key == "metrics" and isinstance(item, list):
            tr.warn("evaluation.metrics", "stage 5 always reports accuracy, precision, recall and F1; list ignored")
        else:
            tr.warn(f"evaluation.{key}", "not supported by mlestar; ignored")


def _error_handling(tr: _Translation, value: Any) -> None:
    items = value if isinstance(value, list) else list((value or {}).keys())
    chosen: list[str] = []
    for item in items:
        name = item if isinstance(item, str) else next(iter(item), "") if isinstance(item, dict) else str(item)
        name = _REMEDY_ALIASES.get(name, name)
        if name in REMEDIES:
            chosen.append(name)
        else:
            tr.warn(f"error_handling.{name}", "no such remedy in mlestar; ignored")
    if chosen:
        tr.out["remedies"] = chosen


def _training(tr: _Translation, value: Any) -> None:
    for key, item in (value or {}).items():
        if key in _TRAINING_KEYS:
            tr.section("training")[key] = item
        else:
            tr.warn(f"training.{key}", "not supported by mlestar; ignored")


def _dataset(tr: _Translation, value: Any) -> None:
    for key, item in (value or {}).items():
        if key in ("name", "source") and str(item).lower() in _DATA_SOURCES:
            tr.section("data")["source"] = _DATA_SOURCES[str(item).lower()]
        elif key in ("path", "data_dir"):
            tr.section("data")["path"] = item
        else:
            tr.warn(f"dataset.{key}", "descriptive only; ignored")
