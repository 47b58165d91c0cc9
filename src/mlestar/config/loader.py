"""Load, validate and hash ``mle_star_config.yaml``.

:func:`load_config` is the only way a config enters mlestar. It reads YAML
(syntax errors name the line), translates sample-project files, validates
against :class:`MlestarConfig`, and turns every pydantic error into one line
that names the key's full path, with "did you mean" for unknown keys.

Between reading and validating, relative paths are resolved against the
file's folder (:mod:`mlestar.config.paths`) and ``-S KEY=VALUE`` overrides
are applied (:mod:`mlestar.config.overrides`), so both are validated, saved
with the run and hashed like anything the file says.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import yaml
from pydantic import BaseModel, ValidationError

from mlestar.config.catalog import suggest
from mlestar.config.legacy import is_legacy, translate_legacy
from mlestar.config.overrides import Override, apply_overrides
from mlestar.config.paths import resolve_paths
from mlestar.config.schema import DATA_MODELS, MlestarConfig
from mlestar.config.units import BASE_UNITS
from mlestar.errors import ConfigError
from mlestar.utils.io import sha256_json

DEFAULT_CONFIG_NAME = "mle_star_config.yaml"


@dataclass(frozen=True)
class LoadedConfig:
    """A validated config with where it came from and what was translated.

    Attributes:
        config: the validated model.
        path: the file it came from, or ``None`` for the embedded default.
        warnings: keys translated or ignored (sample-project configs).
        overrides: the ``-S KEY=VALUE`` settings applied over the file, in order.
    """

    config: MlestarConfig
    path: Path | None = None
    warnings: list[str] = field(default_factory=list)
    overrides: tuple[Override, ...] = ()

    @property
    def hash(self) -> str:
        """sha256 of the validated config (not of the file's formatting)."""
        return config_hash(self.config)


def config_hash(config: MlestarConfig) -> str:
    """Hash the parsed config, so comments and key order do not matter."""
    return sha256_json(config.model_dump(mode="json"))


def section_hash(config: MlestarConfig, sections: tuple[str, ...]) -> str:
    """Hash only the named top-level sections: a stage's config fingerprint."""
    dumped = config.model_dump(mode="json")
    return sha256_json({name: dumped[name] for name in sections})


def default_config(overrides: Sequence[Override] = ()) -> LoadedConfig:
    """The embedded default: scikit-learn's digits, all seven stages, minutes on a laptop.

    ``overrides`` apply as to a file; a path they set is relative to the working directory.
    """
    raw = _overridden({"project": {"name": "digits-default"}}, overrides)
    return LoadedConfig(config=build_config(raw, source=_source("the embedded default", overrides)),
                        overrides=tuple(overrides))


def load_config(path: Path | str, overrides: Sequence[Override] = ()) -> LoadedConfig:
    """Read and validate a config file, with ``-S`` overrides applied over it.

    Relative paths in the file (``data.path``, ``data.cache_dir``, a written ``project.runs_dir``)
    resolve against the file's folder; relative paths an override sets resolve against the working
    directory, where the command was typed. The validated config holds them absolute.

    Raises:
        ConfigError: missing or unreadable file, bad YAML (with the line), a malformed override,
            or any schema violation (with the key path).
    """
    path = Path(path)
    raw = _read_yaml(path)
    warnings: list[str] = []
    if is_legacy(raw):
        raw, warnings = translate_legacy(raw, source=str(path))
    raw = _overridden(resolve_paths(raw, path.parent), overrides)
    config = build_config(raw, source=_source(str(path), overrides))
    return LoadedConfig(config=config, path=path, warnings=warnings, overrides=tuple(overrides))


def _overridden(raw: dict[str, Any], overrides: Sequence[Override]) -> dict[str, Any]:
    """Apply the overrides, then resolve the paths they set against the working directory.

    The file's own paths are absolute by now, so the second resolution leaves them alone.
    """
    if not overrides:
        return raw
    return resolve_paths(apply_overrides(raw, overrides), Path.cwd())


def _source(name: str, overrides: Sequence[Override]) -> str:
    """How errors name the config: the file, and the overrides when there are any."""
    if not overrides:
        return name
    return f"{name} with " + " ".join(f"-S {o}" for o in overrides)


def build_config(raw: dict[str, Any], *, source: str = "config", base_units: bool = False) -> MlestarConfig:
    """Validate a plain dict; errors become one :class:`ConfigError` listing every problem.

    Quantities need units (``"50ms"``, ``"50MB"``); ``base_units=True`` reads bare numbers as seconds,
    bytes and 0..1 fractions instead: only for a dict mlestar dumped itself (a run's ``config.json``).
    """
    try:
        return MlestarConfig.model_validate(raw, context={BASE_UNITS: base_units})
    except ValidationError as exc:
        lines = [_describe(error) for error in exc.errors()]
        raise ConfigError(
            f"{source} is not a valid mlestar config:\n  - " + "\n  - ".join(lines),
            hint="run `mlestar init` for a commented example of every key",
        ) from None


def _read_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping or raise a :class:`ConfigError` that says why not."""
    if not path.exists():
        raise ConfigError(f"config file {path} does not exist", hint="run `mlestar init` to write one")
    if path.is_dir():
        raise ConfigError(f"config path {path} is a folder, not a file",
                          hint=f"point at {path / DEFAULT_CONFIG_NAME}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path} is not valid YAML{where}: {problem}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must hold a mapping of sections, not a {type(raw).__name__}")
    return raw


def _describe(error: dict[str, Any]) -> str:
    """One line for one pydantic error: the dotted key path, the problem, a suggestion."""
    loc = _untag(tuple(error["loc"]))
    path = ".".join(str(part) for part in loc) or "(top level)"
    if error["type"] == "extra_forbidden":
        known = _fields_at(MlestarConfig, loc[:-1], tag=_tag(tuple(error["loc"])))
        return f"{path}: unknown key{suggest(str(loc[-1]), known)}"
    message = error["msg"].removeprefix("Value error, ")
    return f"{path}: {message}"


def _tag(loc: tuple[Any, ...]) -> str | None:
    """The union tag pydantic puts after ``data`` (``images``/``tables``), if any."""
    return str(loc[1]) if len(loc) > 1 and loc[0] == "data" and loc[1] in DATA_MODELS else None


def _untag(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """``('data', 'tables', 'foo')`` -> ``('data', 'foo')``: the path as the user wrote it."""
    return (loc[0], *loc[2:]) if _tag(loc) else loc


def _fields_at(model: type[BaseModel], loc: tuple[Any, ...], tag: str | None = None) -> list[str]:
    """Field names of the section found by walking ``loc`` down from ``model``.

    List indices and mapping keys (``search_space.<name>``) are stepped over;
    ``data`` is the section model of ``tag`` (the source's domain).
    """
    current: Any = model
    skip_key = False
    for part in loc:
        if skip_key or isinstance(part, int):
            skip_key = False
            continue
        info = current.model_fields.get(str(part)) if _is_model(current) else None
        if info is None:
            return []
        skip_key = typing.get_origin(info.annotation) is dict
        at_data = part == "data" and current is model
        current = DATA_MODELS[tag or "images"] if at_data else _model_in(info.annotation)
    return list(current.model_fields) if _is_model(current) else []


def _is_model(obj: Any) -> bool:
    return isinstance(obj, type) and issubclass(obj, BaseModel)


def _model_in(annotation: Any) -> Any:
    """Find the BaseModel inside ``X``, ``X | None``, ``list[X]`` or ``dict[str, X]``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None
