"""Typed configuration: schema, units, loading, sample-project translation, hashing.

The names below are imported from their modules when first used (PEP 562
``__getattr__``): importing a light submodule such as ``mlestar.config.catalog``
(stage names and metrics, all ``mlestar status`` needs) runs this file first,
and must not build the schema's pydantic models on the way.

The ``TYPE_CHECKING`` imports name the same modules for type checkers and for
stage code fingerprints: ``workflow/code.py`` parses every import in a file,
so a stage that imports ``from mlestar.config import load_config`` still
depends on loader.py, schema.py and overrides.py as before.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlestar.config.loader import (
        DEFAULT_CONFIG_NAME,
        LoadedConfig,
        build_config,
        config_hash,
        default_config,
        load_config,
        section_hash,
    )
    from mlestar.config.overrides import Override, parse_overrides
    from mlestar.config.schema import MlestarConfig

# public name -> the module that defines it (the same as the TYPE_CHECKING imports above)
_LAZY = {
    "DEFAULT_CONFIG_NAME": "mlestar.config.loader",
    "LoadedConfig": "mlestar.config.loader",
    "MlestarConfig": "mlestar.config.schema",
    "Override": "mlestar.config.overrides",
    "build_config": "mlestar.config.loader",
    "config_hash": "mlestar.config.loader",
    "default_config": "mlestar.config.loader",
    "load_config": "mlestar.config.loader",
    "parse_overrides": "mlestar.config.overrides",
    "section_hash": "mlestar.config.loader",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'mlestar.config' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
