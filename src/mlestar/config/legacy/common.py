"""The record every legacy section handler writes into: values, where each came from, warnings.

A handler is ``fn(tr, value, path)``: ``value`` is the legacy section or key,
``path`` its dotted location in the legacy file (``training.optimizer``).
Handlers never drop a key without :meth:`Translation.warn`, so the warnings
list exactly what the translation left out, each with its full path and why.
"""

from __future__ import annotations

import math
import re
from typing import Any, Callable

from mlestar.config.catalog import METRICS
from mlestar.config.units import UNIT_PARSERS, legacy_reading

Handler = Callable[["Translation", Any, str], None]

# The catalog units values of these targets are compared in: "<4 hours" and "4 hours" set the same limit.
_CONSTRAINT_UNITS: dict[str, str] = {
    "constraints.max_training_time": "seconds",
    "constraints.max_inference_latency": "seconds",
    "constraints.max_model_size": "bytes",
    "constraints.max_peak_memory": "bytes",
}


class Translation:
    """The mlestar config being built from one legacy file.

    Attributes:
        out: the translated config, a plain dict for :class:`~mlestar.config.schema.MlestarConfig`.
        warnings: ``"<legacy key path>: <why it was left out or changed>"``, in file order.
        origin: dotted mlestar field -> the legacy key path that set it.
        source: the file, for error messages.
        pending: ``name -> (value, path)`` decided after all sections (an unknown data set name).
        gate_paths: the legacy key path of each entry of ``out["gates"]``, in order.
    """

    def __init__(self, source: str = "config") -> None:
        self.out: dict[str, Any] = {}
        self.warnings: list[str] = []
        self.origin: dict[str, str] = {}
        self.source = source
        self.pending: dict[str, tuple[Any, str]] = {}  # values resolved once every section is read
        self.gate_paths: list[str] = []

    def warn(self, path: str, why: str) -> None:
        """Record that the legacy key at ``path`` was left out (or only partly honoured), and why."""
        self.warnings.append(f"{path}: {why}")

    def put(self, target: str, value: Any, path: str) -> bool:
        """Set the dotted mlestar field ``target`` from the legacy key at ``path``.

        The first key to set a field wins. A later key with the same value
        (after unit parsing) is honoured too and stays silent; one with a
        different value is warned, naming the key that set the field.

        A non-empty mapping is stored key by key, so a section given in
        mlestar's form and one translated from legacy keys merge field by
        field, each with its own origin.

        Returns:
            True when the value (every key of a mapping) was stored.
        """
        if isinstance(value, dict) and value:
            stored = [self.put(f"{target}.{key}", item, f"{path}.{key}") for key, item in value.items()]
            return all(stored)
        *parents, leaf = target.split(".")
        taken = self._taken(target)
        if taken is not None:
            current = self.get(taken)
            if taken != target or not same_value(target, current, value):
                self.warn(path, f"{taken} is already {current!r} from {self.origin[taken]}; {value!r} ignored")
            return False
        node = self.out
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
        self.origin[target] = path
        return True

    def _taken(self, target: str) -> str | None:
        """The field already set at, above or below ``target`` (``training`` blocks ``training.epochs``)."""
        parts = target.split(".")
        for i in range(1, len(parts) + 1):
            if ".".join(parts[:i]) in self.origin:
                return ".".join(parts[:i])
        return next((field for field in self.origin if field.startswith(f"{target}.")), None)

    def add_gate(self, gate: Any, path: str) -> None:
        """Append ``gate`` to the translated gates, remembering the legacy key ``path`` it came from."""
        self.out.setdefault("gates", []).append(gate)
        self.gate_paths.append(path)

    def default(self, target: str, value: Any, path: str) -> None:
        """Set ``target`` only when no key has: a side effect, such as a gate's matching constraint."""
        if target not in self.origin:
            self.put(target, value, path)

    def get(self, target: str, fallback: Any = None) -> Any:
        """The translated value of the dotted field ``target``, or ``fallback``."""
        node: Any = self.out
        for part in target.split("."):
            if not isinstance(node, dict) or part not in node:
                return fallback
            node = node[part]
        return node

    def remove(self, target: str) -> str | None:
        """Take ``target`` out again; returns the legacy key path that had set it."""
        *parents, leaf = target.split(".")
        node = self.get(".".join(parents)) if parents else self.out
        if isinstance(node, dict):
            node.pop(leaf, None)
        return self.origin.pop(target, None)


def same_value(target: str, a: Any, b: Any) -> bool:
    """Whether two legacy values mean the same setting of ``target`` (``0.85`` and ``"85%"`` for accuracy).

    Values are compared in their legacy reading (``50`` seconds is ``"50s"``), as they will be read.
    """
    if a == b:
        return True
    unit = _CONSTRAINT_UNITS.get(target)
    if unit is None and target.startswith("task.targets."):
        metric = METRICS.get(target.removeprefix("task.targets."))
        unit = metric.unit if metric else None
    if unit is None:
        return False
    parse = UNIT_PARSERS[unit]
    try:
        return math.isclose(parse(legacy_reading(a, unit) or a), parse(legacy_reading(b, unit) or b), rel_tol=1e-9)
    except (ValueError, TypeError):
        return False


def norm(name: Any) -> str:
    """``'CosineAnnealingLR'``, ``'cosine_annealing_lr'`` -> ``'cosineannealinglr'``: how names are matched."""
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def number(value: Any) -> float | None:
    """A float from ``1e-4`` or ``"1e-4"`` (YAML 1.1 reads exponents without a dot as strings), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(str(value).strip())
    except ValueError:
        return None


def as_mapping(tr: Translation, value: Any, path: str) -> dict[str, Any] | None:
    """``value`` when it is a mapping; otherwise warn that ``path`` was expected to be one."""
    if isinstance(value, dict):
        return value
    tr.warn(path, f"expected a mapping, got {type(value).__name__} {value!r}; ignored")
    return None


def as_list(value: Any) -> list[Any]:
    """``[a, b]`` as is, ``None`` as ``[]``, a single value as ``[value]``: legacy lists are often written bare."""
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def item_name(item: Any) -> str:
    """The name of a list entry: ``'accuracy'``, or the key of ``{top_k_accuracy: {k: 3}}``."""
    if isinstance(item, dict) and len(item) == 1:
        return str(next(iter(item)))
    return str(item)


def walk(tr: Translation, value: Any, path: str, handlers: dict[str, Handler],
         fallback: Callable[[Translation, str, Any, str], None]) -> None:
    """Dispatch each key of the mapping ``value`` to its handler, else to ``fallback(tr, key, item, path)``.

    Keys whose value is null are skipped: they set nothing, so nothing is dropped.
    """
    section = as_mapping(tr, value, path)
    for key, item in (section or {}).items():
        if item is None:
            continue
        handler = handlers.get(str(key))
        if handler is not None:
            handler(tr, item, f"{path}.{key}")
        else:
            fallback(tr, str(key), item, f"{path}.{key}")


def to(target: str, convert: Callable[[Any], Any] | None = None) -> Handler:
    """A handler that copies the value (through ``convert``) into the mlestar field ``target``."""

    def handler(tr: Translation, value: Any, path: str) -> None:
        tr.put(target, convert(value) if convert else value, path)

    return handler


def warn_with(why: dict[str, str], default: str) -> Callable[[Translation, str, Any, str], None]:
    """A ``walk`` fallback that warns with the reason ``why`` gives for the key, else ``default``."""

    def fallback(tr: Translation, key: str, item: Any, path: str) -> None:
        tr.warn(path, why.get(key, default))

    return fallback
