"""``-S KEY=VALUE``: change one setting of a config from the command line.

An override is applied to the raw config dict before validation, so it is
checked exactly like the file: an unknown key gets its key path and a "did you
mean", a bad value the field's own message. ``KEY`` is a dotted path in
mlestar's format (``training.epochs``, ``gates.0.threshold``), also for a
sample-project config, whose file is translated first. ``VALUE`` is read as
YAML, so ``3`` is a number, ``true`` a boolean, ``[a, b]`` a list and ``90%``
stays a string for the unit parsers.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Sequence

import yaml

from mlestar.errors import ConfigError

_HINT = "write -S KEY=VALUE with KEY a dotted config path, e.g. -S training.epochs=3 or -S data.val_fraction=0.2"


@dataclass(frozen=True)
class Override:
    """One ``-S`` setting.

    Attributes:
        key: the dotted key path, e.g. ``training.epochs``.
        value: ``VALUE`` parsed as YAML.
        text: ``VALUE`` as typed (what the audit trail records).
    """

    key: str
    value: Any
    text: str

    def __str__(self) -> str:
        return f"{self.key}={self.text}"


def parse_override(arg: str) -> Override:
    """Parse ``KEY=VALUE`` (split at the first ``=``).

    Raises:
        ConfigError: no ``=``, an empty key segment, or a VALUE that is not YAML.
    """
    key, sep, text = arg.partition("=")
    key = key.strip()
    if not sep or not key or any(not part.strip() for part in key.split(".")):
        raise ConfigError(f"-S {arg!r} is not KEY=VALUE", hint=_HINT)
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"-S {arg!r}: the value is not valid YAML: {problem}",
                          hint="quote the value for the shell, e.g. -S 'task.targets={test_accuracy: 90%}'") from None
    return Override(key=key, value=value, text=text)


def parse_overrides(args: Sequence[str] | None) -> tuple[Override, ...]:
    """Parse every ``-S`` argument, in the order given (a later one wins over an earlier one)."""
    return tuple(parse_override(arg) for arg in args or ())


def apply_overrides(raw: dict[str, Any], overrides: Sequence[Override]) -> dict[str, Any]:
    """A copy of ``raw`` with each override set at its key path; missing sections are created.

    Raises:
        ConfigError: the path runs through a value that is not a section (``seed.x``), or a list
            index that is not a number or out of range.
    """
    out = copy.deepcopy(raw)
    for override in overrides:
        _set(out, override)
    return out


def _set(raw: dict[str, Any], override: Override) -> None:
    parts = override.key.split(".")
    node: Any = raw
    for depth, part in enumerate(parts[:-1]):
        node = _child(node, part, override, ".".join(parts[: depth + 1]))
    _store(node, parts[-1], override)


def _child(node: Any, part: str, override: Override, where: str) -> Any:
    """The section at ``part`` under ``node``, created empty when the file does not have it."""
    if isinstance(node, list):
        return node[_index(node, part, override)]
    if node.get(part) is None:
        node[part] = {}
    child = node[part]
    if not isinstance(child, (dict, list)):
        raise ConfigError(f"-S {override}: {where} is a value ({child!r}), not a section with keys",
                          hint=f"set {where} itself, e.g. -S {where}=...")
    return child


def _store(node: Any, part: str, override: Override) -> None:
    if isinstance(node, list):
        node[_index(node, part, override)] = override.value
    else:
        node[part] = override.value


def _index(items: list[Any], part: str, override: Override) -> int:
    """A list position in a key path (``gates.0.threshold``), checked against the list's length."""
    if not part.isdigit() or int(part) >= len(items):
        raise ConfigError(f"-S {override}: {part!r} is not a position in a list of {len(items)} item(s)",
                          hint="count from 0: -S gates.0.threshold=0.9 sets the first gate's threshold")
    return int(part)
