"""Every key the config schema has, as dotted paths, with its unit: the schema walked once.

``mlestar init``'s starter is tested against this list (each key present, with a comment), the
legacy translation finds the unit-bearing keys here, and docs/config.md documents them.

Paths are written as in YAML: ``constraints.max_inference_latency``; a list's items add ``[]``
(``gates[].threshold``); a mapping of sections adds ``*`` (``refinement.search_space.*.low``).
``data`` has two variants, told apart by ``data.source``: its keys carry the variant.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from mlestar.config.schema import DATA_MODELS, MlestarConfig

# The unit of a unit-bearing key, by the parser its validator runs (config/units.py).
_UNITS = {"parse_duration": "duration", "parse_latency": "latency", "parse_size": "size",
          "parse_fraction": "fraction"}
# Keys whose unit is the unit of the metric they refer to (config/catalog.py).
METRIC_UNIT_KEYS = ("task.targets", "gates[].threshold")
# The catalog's unit names (what units.UNIT_PARSERS is keyed by) for each key unit.
CATALOG_UNIT = {"duration": "seconds", "latency": "seconds", "size": "bytes", "fraction": "fraction"}


@dataclass(frozen=True)
class SchemaKey:
    """One key of the schema.

    Attributes:
        path: dotted path as written in YAML (``gates[].metric``, ``refinement.search_space.*.type``).
        unit: ``duration``, ``latency``, ``size``, ``fraction``, ``metric`` (the unit of the metric it
            names: gate thresholds, targets) or ``None`` (a plain value).
        description: the field's description from the schema ('' when it has none).
        section: True for a key that holds a section (a mapping or list of further keys).
        variant: ``images`` or ``tables`` for keys of one ``data`` variant, else ``None``.
    """

    path: str
    unit: str | None
    description: str
    section: bool = False
    variant: str | None = None


def schema_keys() -> list[SchemaKey]:
    """Every key of :class:`MlestarConfig`, sections before their keys, in declaration order."""
    keys: list[SchemaKey] = []
    for name, info in MlestarConfig.model_fields.items():
        if name == "data":
            keys.append(SchemaKey("data", None, info.description or "", section=True))
            for variant, model in DATA_MODELS.items():
                keys += _walk(model, "data.", variant)
        else:
            keys += _field_keys(name, info, None)
    return keys


def unit_keys() -> list[SchemaKey]:
    """The keys that take a unit (or the unit of their metric), each once, data variants merged."""
    seen: dict[str, SchemaKey] = {}
    for key in schema_keys():
        if key.unit is not None:
            seen.setdefault(key.path, key)
    return list(seen.values())


def _walk(model: type[BaseModel], prefix: str, variant: str | None) -> list[SchemaKey]:
    keys: list[SchemaKey] = []
    for name, info in model.model_fields.items():
        keys += _field_keys(f"{prefix}{name}", info, variant)
    return keys


def _field_keys(path: str, info: FieldInfo, variant: str | None) -> list[SchemaKey]:
    """The key at ``path`` and, when it holds sections, every key below it."""
    nested, step = _nested(info.annotation)
    unit = "metric" if path in METRIC_UNIT_KEYS else _unit(info)
    key = SchemaKey(path, unit, info.description or "", section=nested is not None, variant=variant)
    if nested is None:
        return [key]
    return [key, *_walk(nested, f"{path}{step}.", variant)]


def _nested(annotation: Any) -> tuple[type[BaseModel] | None, str]:
    """The section model inside ``X``, ``X | None``, ``list[X]`` or ``dict[str, X]``, and the path step."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, ""
    origin = typing.get_origin(annotation)
    for arg in typing.get_args(annotation):
        found, step = _nested(arg)
        if found is not None:
            return found, {list: "[]", dict: ".*"}.get(origin, "") + step  # type: ignore[call-overload]
    return None, ""


def _unit(info: FieldInfo) -> str | None:
    """The unit of a field whose validator is one of config.units' parsers (inside ``X | None`` too)."""
    for item in [*info.metadata, *_annotated_metadata(info.annotation)]:
        parser = getattr(getattr(item, "func", None), "parser", None)
        if parser is not None:
            return _UNITS.get(parser.__name__)
    return None


def _annotated_metadata(annotation: Any) -> list[Any]:
    """Metadata of every ``Annotated[...]`` inside ``annotation`` (pydantic keeps ``X | None``'s there)."""
    found = list(getattr(annotation, "__metadata__", ()))
    for arg in typing.get_args(annotation):
        found += _annotated_metadata(arg)
    return found
