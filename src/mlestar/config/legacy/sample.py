"""The sample projects' workflow and results sections.

``project``, ``mle_star_workflow.stages`` (with per-stage ``quality_gates``),
``quality_gates`` keyed by stage (``stage_4_implementation: {min_val_accuracy:
0.85}``), ``performance_targets``, ``evaluation`` (targets, primary and
secondary metrics), ``error_handling`` (a list, or lists per failure kind)
and ``deployment``.
"""

from __future__ import annotations

from typing import Any

from mlestar.config.catalog import REMEDIES, normalize_metric, normalize_stage
from mlestar.config.legacy.common import (Handler, Translation, as_list, as_mapping, item_name, norm, to, walk,
                                          warn_with)
from mlestar.config.schema import DeploymentConfig, EvaluationConfig
from mlestar.errors import ConfigError

# Project kinds of the sample family that mlestar does not train (it trains image classifiers and tables).
# (Tabular sample projects never reach here: mlestar.config.legacy.tables translates them.)
_NOT_IMAGES = {"nlp", "text", "textclassification", "timeseries", "audio", "speech", "recommendation"}

# quality_gates key -> (metric, comparison, constraint it also sets)
_GATE_KEYS: dict[str, tuple[str, str, str | None]] = {
    "min_val_accuracy": ("val_accuracy", ">=", None),
    "min_validation_accuracy": ("val_accuracy", ">=", None),
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
    "inference_speed": ("constraint", "max_inference_latency"),
    "latency": ("constraint", "max_inference_latency"),
    "model_size": ("constraint", "max_model_size"),
    "training_time": ("constraint", "max_training_time"),
    "memory": ("constraint", "max_peak_memory"),
    "memory_usage": ("constraint", "max_peak_memory"),
}

_REMEDY_ALIASES = {"lower_lr": "lower_learning_rate", "reduce_learning_rate": "lower_learning_rate",
                   "early_stopping": "reduce_epochs", "data_augmentation": "add_augmentation",
                   "regularization": "add_regularization", "reduce_model_size": "simplify_model",
                   "smaller_batch_size": "reduce_batch_size"}


def translate_project(tr: Translation, value: Any, path: str) -> None:
    """``project``: name and description map; the rest is descriptive.

    Raises:
        ConfigError: the project is of a kind mlestar does not train (an NLP or tabular sample project).
    """
    section = as_mapping(tr, value, path) or {}
    for key in ("type", "category"):
        if norm(section.get(key, "")) in _NOT_IMAGES:
            raise ConfigError(
                f"{tr.source}: {path}.{key} is {section[key]!r}; mlestar trains image classifiers and table models, "
                "so it cannot run this sample project (its data is neither images nor a table)",
                hint="use the computer-vision (CIFAR-10) or tabular sample, or point the data section at images "
                     "(project.type: computer_vision) or a table (project.type: tabular)")
    walk(tr, section, path, {"name": to("project.name", str), "description": to("project.description", str),
                             "runs_dir": to("project.runs_dir", str)},
         warn_with({}, "descriptive only; kept out of the config"))


def translate_workflow(tr: Translation, value: Any, path: str) -> None:
    """``mle_star_workflow``: stage entries are descriptive, except gates and switching refinement off."""
    section = as_mapping(tr, value, path) or {}
    for key, item in section.items():
        if key != "stages":
            tr.warn(f"{path}.{key}", "descriptive only; the runner fixes the order, caching and loop-backs")
    for stage_id, body in (as_mapping(tr, section.get("stages") or {}, f"{path}.stages") or {}).items():
        try:
            name = normalize_stage(stage_id)
        except ValueError as exc:
            tr.warn(f"{path}.stages.{stage_id}", f"{exc}; ignored")
            continue
        for key, item in (body or {}).items() if isinstance(body, dict) else ():
            _stage_entry(tr, name, str(key), item, f"{path}.stages.{stage_id}.{key}")


def _stage_entry(tr: Translation, stage: str, key: str, item: Any, path: str) -> None:
    """One key of a stage entry: its quality gates map, ``enabled: false`` on refinement maps."""
    if key == "quality_gates" and isinstance(item, dict):
        for gate_key, threshold in item.items():
            _one_gate(tr, f"{path}.{gate_key}", stage, str(gate_key), threshold)
    elif key == "enabled" and stage == "refinement":
        tr.put("refinement.enabled", item, path)
    elif key == "enabled" and item is True:
        return  # every stage runs: honoured
    elif key == "config":
        tr.warn(path, "settings inside a workflow stage are not read; put them in the top-level sections "
                      "(training, data, hyperparameter_tuning, ...)")
    else:
        tr.warn(path, f"descriptive only; stage {stage!r} always runs its full set of steps")


def translate_quality_gates(tr: Translation, value: Any, path: str) -> None:
    """``quality_gates: {stage_4_implementation: {min_val_accuracy: 0.85}}`` -> ``gates``."""
    for stage_key, checks in (as_mapping(tr, value, path) or {}).items():
        try:
            stage = normalize_stage(stage_key)
        except ValueError as exc:
            tr.warn(f"{path}.{stage_key}", f"{exc}; ignored")
            continue
        for key, threshold in (as_mapping(tr, checks or {}, f"{path}.{stage_key}") or {}).items():
            _one_gate(tr, f"{path}.{stage_key}.{key}", stage, str(key), threshold)


def _one_gate(tr: Translation, path: str, stage: str, key: str, threshold: Any) -> None:
    mapping = _GATE_KEYS.get(key)
    if mapping is None:
        tr.warn(path, "no such gate in mlestar; ignored")
        return
    if isinstance(threshold, (bool, dict, list)) or threshold is None:
        tr.warn(path, f"a gate takes one threshold, not {threshold!r}; ignored")
        return
    metric, op, constraint = mapping
    tr.add_gate({"name": key, "metric": metric, "op": op, "threshold": threshold}, path)
    if constraint:
        tr.default(f"constraints.{constraint}", threshold, path)
    if stage not in ("implementation", "evaluation", "deployment", "situation_analysis"):
        tr.warn(path, f"checked where {metric!r} is produced, not at stage {stage!r}")


def translate_targets(tr: Translation, value: Any, path: str) -> None:
    """``performance_targets``: metric targets -> ``task.targets``, limits -> ``constraints``."""
    for key, target in (as_mapping(tr, value, path) or {}).items():
        _one_target(tr, f"{path}.{key}", str(key), target)


def _one_target(tr: Translation, path: str, key: str, target: Any) -> None:
    mapping = _TARGET_KEYS.get(key)
    if mapping is None:
        tr.warn(path, "no such target in mlestar; ignored")
    elif isinstance(target, (dict, list, bool)) or target is None:
        tr.warn(path, f"a target takes one value, not {target!r}; ignored")
    elif mapping[0] == "target":
        tr.put(f"task.targets.{mapping[1]}", target, path)
    else:
        tr.put(f"constraints.{mapping[1]}", target, path)


def translate_evaluation(tr: Translation, value: Any, path: str) -> None:
    """``evaluation``: targets and the primary/secondary metrics map; analysis lists are descriptive."""
    walk(tr, value, path, _EVALUATION_HANDLERS, _evaluation_key)


def _evaluation_key(tr: Translation, key: str, item: Any, path: str) -> None:
    if key in EvaluationConfig.model_fields:
        tr.put(f"evaluation.{key}", item, path)
    elif key in ("cross_validation",):
        tr.warn(path, "mlestar evaluates once on the held-out test split")
    else:
        tr.warn(path, "stage 5 always writes accuracy, macro precision/recall/F1, confusion matrices, per-class "
                      "metrics, a reliability diagram and misclassified images; ignored")


def _eval_targets(tr: Translation, value: Any, path: str) -> None:
    for name, target in (as_mapping(tr, value, path) or {}).items():
        _one_target(tr, f"{path}.{name}", str(name), target)


def _eval_metrics(tr: Translation, value: Any, path: str) -> None:
    """``metrics: [..]`` (the template's list) or ``{primary_metric, secondary_metrics}``."""
    if isinstance(value, dict):
        walk(tr, value, path, {"primary_metric": _primary, "primary_metrics": _primary,
                               "secondary_metrics": _secondary}, warn_with({}, "not read; ignored"))
    else:
        tr.warn(path, "stage 5 always reports accuracy, precision, recall and F1; list ignored")


def _primary(tr: Translation, value: Any, path: str) -> None:
    """The first metric mlestar produces becomes ``task.primary_metric``; any further one is warned."""
    for item in as_list(value):
        name = item_name(item)
        try:
            metric = normalize_metric(name)
        except ValueError as exc:
            tr.warn(f"{path}.{name}", f"{exc}; ignored")
            continue
        tr.put("task.primary_metric", metric, f"{path}.{name}" if isinstance(value, list) else path)


def _secondary(tr: Translation, value: Any, path: str) -> None:
    """Secondary metrics mlestar produces -> ``task.secondary_metrics``; others are named one by one."""
    metrics = []
    for item in as_list(value):
        name = item_name(item)
        try:
            metrics.append(normalize_metric(name))
        except ValueError as exc:
            tr.warn(f"{path}.{name}", f"{exc} (stage 5 reports macro averages); ignored")
    if metrics:
        tr.put("task.secondary_metrics", list(dict.fromkeys(metrics)), path)


def translate_error_handling(tr: Translation, value: Any, path: str) -> None:
    """A list of remedies, or ``{failure kind: [remedies]}``, -> ``remedies`` (what the runner may apply)."""
    entries = [(f"{path}.{kind}", items) for kind, items in value.items()] if isinstance(value, dict) else [
        (path, value)]
    chosen: list[str] = []
    for where, items in entries:
        for item in as_list(items):
            name = item_name(item)
            remedy = _REMEDY_ALIASES.get(name, name)
            if remedy in REMEDIES:
                chosen.append(remedy)
            else:
                tr.warn(f"{where}.{name}", "no such remedy in mlestar; ignored")
    if chosen:
        tr.put("remedies", list(dict.fromkeys(chosen)), path)


def translate_deployment(tr: Translation, value: Any, path: str) -> None:
    """``deployment``: export formats and the serving address/batch map; infrastructure is warned."""
    walk(tr, value, path, _DEPLOYMENT_HANDLERS, _deployment_key)


def _deployment_key(tr: Translation, key: str, item: Any, path: str) -> None:
    if key in DeploymentConfig.model_fields:
        tr.put(f"deployment.{key}", item, path)
    elif key == "monitoring":
        tr.warn(path, "stage 7 writes Prometheus alert rules into the bundle (deployment.alerts); ignored")
    else:
        tr.warn(path, "stage 7 builds a bundle served by `mlestar serve`; no such deployment setting")


def _add_format(tr: Translation, fmt: str, path: str) -> None:
    formats = tr.get("deployment.formats")
    if formats is None:
        tr.put("deployment.formats", [fmt], path)
    elif fmt not in formats:
        formats.append(fmt)


def _model_format(tr: Translation, value: Any, path: str) -> None:
    key = norm(value)
    fmt = "torchscript" if key in ("pytorchjit", "torchscript", "jit") else "onnx" if key == "onnx" else None
    if fmt is None:
        tr.warn(path, f"mlestar exports TorchScript and ONNX; {value!r} is not available")
    else:
        _add_format(tr, fmt, path)


def _optimization(tr: Translation, value: Any, path: str) -> None:
    """``[{quantization: false}, {onnx_export: true}, ...]``: ONNX export maps; switched-off items are honoured."""
    items = as_list(value)
    for item in items:
        name = item_name(item)
        enabled = item.get(name) if isinstance(item, dict) else True
        if name == "onnx_export" and enabled:
            _add_format(tr, "onnx", f"{path}.{name}")
        elif enabled is True and name in ("quantization", "quantize"):
            tr.warn(f"{path}.{name}", "set deployment.quantize to dynamic (TorchScript) or onnx to choose how")
        elif enabled is not False:
            tr.warn(f"{path}.{name}", "no such export optimization in mlestar; ignored")
    if tr.get("deployment.formats") is None and any(item_name(i) == "onnx_export" for i in items):
        tr.put("deployment.formats", ["torchscript"], path)  # ONNX switched off: TorchScript alone


def _serving(tr: Translation, value: Any, path: str) -> None:
    """``serving``/``api``: host, port and batch size map onto ``deployment.serve``."""
    walk(tr, value, path, {"host": to("deployment.serve.host"), "port": to("deployment.serve.port"),
                           "batch_size": to("deployment.serve.max_batch_size"),
                           "max_batch_size": to("deployment.serve.max_batch_size"), "framework": _serve_framework,
                           "enabled": _serve_enabled},
         warn_with({"timeout": "mlestar serve has no request timeout (deployment.serve.max_wait bounds batching)"},
                   "not a setting of `mlestar serve`; ignored"))


def _serve_enabled(tr: Translation, value: Any, path: str) -> None:
    """Honoured either way: stage 7 always writes the bundle, and nothing serves until `mlestar serve` runs."""


def _serve_framework(tr: Translation, value: Any, path: str) -> None:
    if norm(value) != "fastapi":
        tr.warn(path, f"`mlestar serve` is a FastAPI app; {value!r} is not used")


_EVALUATION_HANDLERS: dict[str, Handler] = {
    "targets": _eval_targets, "metrics": _eval_metrics, "primary_metrics": _primary, "primary_metric": _primary,
    "secondary_metrics": _secondary,
}

_DEPLOYMENT_HANDLERS: dict[str, Handler] = {
    "model_format": _model_format, "export_format": _model_format, "optimization": _optimization,
    "serving": _serving, "api": _serving,
}
