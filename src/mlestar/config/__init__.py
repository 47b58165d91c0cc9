"""Typed configuration: schema, units, loading, sample-project translation, hashing."""

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

__all__ = [
    "DEFAULT_CONFIG_NAME",
    "LoadedConfig",
    "MlestarConfig",
    "Override",
    "build_config",
    "config_hash",
    "default_config",
    "load_config",
    "parse_overrides",
    "section_hash",
]
