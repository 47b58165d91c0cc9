"""Translate configs written for the original MLE-Star sample projects.

Two shapes come from that family (NovaCron's ``mle-star-samples`` and its
``mle-star`` project template):

* the sample projects' ``mle_star_config.yaml``: ``mle_star_workflow.stages``,
  ``quality_gates`` keyed by stage, ``performance_targets``,
  ``evaluation.targets``, ``error_handling``, and a nested ``training``
  section (``optimizer: {type: Adam, ...}``, ``scheduler: {type:
  CosineAnnealingLR, T_max: 100}``, ``hyperparameters``, ``hardware``);
* the older template: ``experiment``, ``model``, ``training`` (flat),
  ``hyperparameter_tuning``, ``paths``, ``environment``.

What maps onto :class:`~mlestar.config.schema.MlestarConfig` is moved there;
every other key is named in a warning with its full path and why, so nothing
is dropped silently. Keys that are already mlestar's (``training.schedule``,
a ``refinement`` section) pass through. The tabular sample project becomes a
``data.source: table`` config (:mod:`.tables`); one that is neither images nor
tables (the NLP one) is refused rather than run on other data.

Quantities keep the legacy reading: a bare ``inference_time: 50`` was 50 seconds, and still is,
with a warning naming the key and the unit assumed (:mod:`.units`); mlestar's own configs must
write the unit.
"""

from __future__ import annotations

from typing import Any

from mlestar.config.legacy.common import Handler, Translation
from mlestar.config.legacy.data import finish_data, translate_augmentation, translate_data, translate_paths
from mlestar.config.legacy.sample import (translate_deployment, translate_error_handling, translate_evaluation,
                                          translate_project, translate_quality_gates, translate_targets,
                                          translate_workflow)
from mlestar.config.legacy.tables import finish_tables, is_tabular, translate_tabular_section
from mlestar.config.legacy.template import translate_environment, translate_experiment, translate_tuning
from mlestar.config.legacy.training import translate_model, translate_training
from mlestar.config.legacy.units import read_legacy_units

__all__ = ["LEGACY_MARKERS", "is_legacy", "translate_legacy"]

# Top-level keys only these shapes have; an mlestar config has none of them.
LEGACY_MARKERS = ("mle_star_workflow", "quality_gates", "performance_targets", "error_handling",
                  "experiment", "hyperparameter_tuning", "paths", "environment")

_HANDLERS: dict[str, Handler] = {
    "project": translate_project, "experiment": translate_experiment, "mle_star_workflow": translate_workflow,
    "quality_gates": translate_quality_gates, "performance_targets": translate_targets,
    "evaluation": translate_evaluation, "error_handling": translate_error_handling, "training": translate_training,
    "model": translate_model, "dataset": translate_data, "data": translate_data, "paths": translate_paths,
    "hyperparameter_tuning": translate_tuning, "environment": translate_environment,
    "deployment": translate_deployment, "augmentation": translate_augmentation,
}

_LOGS = "mlestar records every run in its run folder (logs, TensorBoard, audit trail, lineage database)"
_TOP_WHY = {
    "logging": _LOGS, "monitoring": _LOGS,
    "visualization": "stage 5 draws its own plots (confusion matrices, reliability diagram, misclassified images)",
    "preprocessing": "mlestar preprocesses images itself (decode, convert, resize, normalize)",
    "resources": "mlestar runs on the machine that runs it (training.device, training.processes)",
    "cost_management": "mlestar has no cost accounting", "security": "mlestar has no access-control settings",
}


def is_legacy(raw: dict[str, Any]) -> bool:
    """True when ``raw`` uses a sample-project or template layout."""
    return any(key in raw for key in LEGACY_MARKERS)


def translate_legacy(raw: dict[str, Any], *, source: str = "config") -> tuple[dict[str, Any], list[str]]:
    """Return ``(config_dict, warnings)`` for a sample-project or template config.

    The result still goes through the strict schema, so a value that maps
    but is malformed is reported there with its new path.

    Raises:
        ConfigError: the file describes a project mlestar cannot run (not images), or
            names a data set it has no source for without a path to the images.
    """
    tr = Translation(source)
    tabular = is_tabular(raw)
    for key, value in raw.items():
        if value is None or (tabular and translate_tabular_section(tr, str(key), value)):
            continue
        handler = _HANDLERS.get(str(key))
        if handler is not None:
            handler(tr, value, str(key))
        elif str(key) in _NATIVE:
            _native(tr, str(key), value)
        else:
            tr.warn(str(key), _TOP_WHY.get(str(key), "not supported by mlestar; ignored"))
    finish_tables(tr) if tabular else finish_data(tr)
    read_legacy_units(tr)
    return tr.out, tr.warnings


_NATIVE = ("seed", "deterministic", "task", "constraints", "gates", "remedies", "refinement")


def _native(tr: Translation, key: str, value: Any) -> None:
    """A section already in mlestar's form: each field passes through (gates are added to translated ones)."""
    if key == "gates" and isinstance(value, list):
        for index, gate in enumerate(value):
            tr.add_gate(gate, f"gates[{index}]")
    elif isinstance(value, dict) and key not in ("seed", "deterministic", "remedies"):
        for field, item in value.items():
            tr.put(f"{key}.{field}", item, f"{key}.{field}")
    else:
        tr.put(key, value, key)
