"""Bare numbers in a legacy file keep the reading the sample projects gave them, with a warning.

An mlestar config must write units (``50ms``, ``50MB``, ``90%``), but a sample project's
``inference_time: 50`` meant 50 seconds, ``model_size_limit: 1000`` 1000 bytes, ``accuracy: 85``
85%, and ``memory_limit: 8G`` 8 GiB. After every section is translated, each such value is
rewritten in its explicit form (``'50s'``), and a warning names the legacy key, the mlestar key
and the unit assumed, so the reading is never silent.
"""

from __future__ import annotations

from typing import Any

from mlestar.config.catalog import METRICS, normalize_metric
from mlestar.config.keys import CATALOG_UNIT, unit_keys
from mlestar.config.legacy.common import Translation
from mlestar.config.units import legacy_reading

_ASSUMED = {"seconds": "seconds", "bytes": "bytes", "fraction": "percent"}


def read_legacy_units(tr: Translation) -> None:
    """Rewrite every unit-less quantity in ``tr.out`` in its legacy reading, warning once for each."""
    for key in unit_keys():
        if key.unit in CATALOG_UNIT and "[]" not in key.path and "*" not in key.path:
            _rewrite(tr, key.path, key.path, CATALOG_UNIT[key.unit])
    for metric in list(tr.get("task.targets") or {}):
        unit = _metric_unit(metric)
        if unit:
            _rewrite(tr, f"task.targets.{metric}", f"task.targets.{metric}", unit)
    for index, gate in enumerate(tr.out.get("gates") or []):
        unit = _metric_unit(gate.get("metric")) if isinstance(gate, dict) else None
        if unit and "threshold" in gate:
            where = tr.gate_paths[index] if index < len(tr.gate_paths) else f"gates[{index}]"
            new = legacy_reading(gate["threshold"], unit)
            if new is not None:
                _warn(tr, where, f"gates[{index}].threshold", gate["threshold"], new, unit)
                gate["threshold"] = new


def _metric_unit(metric: Any) -> str | None:
    """The catalog unit of a metric named in the legacy file, or None when no stage produces it."""
    try:
        return METRICS[normalize_metric(str(metric))].unit
    except ValueError:
        return None  # the schema reports the unknown metric


def _rewrite(tr: Translation, target: str, field: str, unit: str) -> None:
    value = tr.get(target)
    new = legacy_reading(value, unit) if value is not None else None
    if new is None:
        return
    *parents, leaf = target.split(".")
    tr.get(".".join(parents))[leaf] = new
    _warn(tr, tr.origin.get(target, target), field, value, new, unit)


def _warn(tr: Translation, where: str, field: str, value: Any, new: str, unit: str) -> None:
    kind = "binary (2^10 steps)" if isinstance(value, str) and unit == "bytes" else _ASSUMED[unit]
    tr.warn(where, f"{value!r} has no unit mlestar accepts; read as {new!r} ({kind}, the sample projects' "
                   f"reading) for {field}; write the unit to keep this reading")
