"""Parse quantities the way people write them in configs, and write them back.

Durations (``90s``, ``45 minutes``, ``4h``, ``<4 hours``), sizes (``50MB``,
``42 MiB``), latencies (``50ms``, ``<50ms per sample``) and fractions
(``0.9``, ``90%``, ``> 85%``) all become plain floats in base units:
seconds, bytes, seconds, and a 0..1 fraction. A leading comparison sign and
trailing words such as "per sample" are accepted and dropped, since sample
project configs write limits that way.

Nothing ambiguous is guessed (docs/config.md lists every key):

* a duration, latency or size written as a bare number (``50``) is refused:
  50 ms or 50 s? 50 bytes or 50 MB?
* a size with a one-letter suffix (``50M``) is refused: 50 MB or 50 MiB?
* a fraction written as a bare number above 1 (``1.5``) is refused: 1.5% or
  150%? A bare number in 0..1 is a fraction (``0.9`` is 90%).

Two callers may read bare numbers all the same: a config mlestar saved itself
(``config.json`` holds base units; validated with :data:`BASE_UNITS` in the
pydantic context) and a legacy sample-project file, whose translation turns a
bare number into its legacy reading with :func:`legacy_reading` and warns.

Each ``format_*`` function is the inverse of its parser: ``parse_size(format_size(x)) == x``
(to 12 significant digits), so ``mlestar validate`` shows what was read in the
form it can be written.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Protocol

from pydantic import BeforeValidator, ValidationInfo

_NUMBER = r"(?P<num>[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"
_QUANTITY = re.compile(
    r"^\s*(?:[<>]=?|~|≤|≥)?\s*" + _NUMBER + r"\s*(?P<unit>[A-Za-zµ%]*)\s*(?:per\s+\w+|/\s*\w+)?\s*$"
)

# The pydantic context key that says bare numbers are already in base units (a saved config.json).
BASE_UNITS = "mlestar_base_units"

_SECONDS = {
    "s": 1.0, "sec": 1.0, "secs": 1.0, "second": 1.0, "seconds": 1.0,
    "ms": 1e-3, "msec": 1e-3, "millisecond": 1e-3, "milliseconds": 1e-3,
    "us": 1e-6, "µs": 1e-6, "microsecond": 1e-6, "microseconds": 1e-6,
    "m": 60.0, "min": 60.0, "mins": 60.0, "minute": 60.0, "minutes": 60.0,
    "h": 3600.0, "hr": 3600.0, "hrs": 3600.0, "hour": 3600.0, "hours": 3600.0,
    "d": 86400.0, "day": 86400.0, "days": 86400.0,
}

_BYTES = {
    "b": 1.0, "byte": 1.0, "bytes": 1.0,
    "kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
    "kib": 2.0**10, "mib": 2.0**20, "gib": 2.0**30, "tib": 2.0**40,
}

# One-letter size suffixes: read as binary before, but "50M" next to "50MB" invites the wrong one.
_AMBIGUOUS_SIZES = {"k": ("kB", "KiB", 3, 10), "m": ("MB", "MiB", 6, 20), "g": ("GB", "GiB", 9, 30),
                    "t": ("TB", "TiB", 12, 40)}


class Parser(Protocol):
    """A quantity parser: a config value in, a float in base units out (``ValueError`` when unreadable)."""

    def __call__(self, value: object, *, base_units: bool = False) -> float: ...


def _show(number: float) -> str:
    """``50.0`` -> ``'50'``, ``0.015`` -> ``'0.015'``: a number as the user would write it."""
    return f"{number:.12g}"


def _split(text: str, kind: str) -> tuple[float, str]:
    """Split ``'<4 hours'`` into ``(4.0, 'hours')`` or raise ``ValueError``."""
    match = _QUANTITY.match(text)
    if not match:
        raise ValueError(f"cannot read {text!r} as a {kind}")
    return float(match.group("num")), match.group("unit")


def _plain(value: object, kind: str, examples: str) -> float | str:
    """A number as a float, a string as itself; anything else (a boolean, a list) is refused."""
    if isinstance(value, bool):
        raise ValueError(f"expected a {kind} such as {examples}, got a boolean")
    if isinstance(value, (int, float)):
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"expected a {kind} such as {examples}, got {type(value).__name__}")
    return value


def _with_unit(value: object, kind: str, table: dict[str, float], examples: str,
               bare: Callable[[float], str], *, base_units: bool) -> float:
    """Turn a number-with-unit into base units via ``table``; a bare number is refused with ``bare(n)``."""
    plain = _plain(value, kind, examples)
    number, unit = (plain, "") if isinstance(plain, float) else _split(plain, kind)
    if not unit:
        if base_units:
            return number
        raise ValueError(bare(number))
    factor = table.get(unit, table.get(unit.lower()))
    if factor is None:
        raise ValueError(f"unknown {kind} unit {unit!r} in {value!r}; write it like {examples}")
    return number * factor


def parse_duration(value: object, *, base_units: bool = False) -> float:
    """Return seconds for ``'90s'``, ``'45 minutes'``, ``'4h'``, ``'<4 hours'``.

    Raises:
        ValueError: a bare number (``90``: 90 s or 90 min?) unless ``base_units``, or an unknown unit.
    """
    return _with_unit(value, "duration", _SECONDS, "'90s', '45 minutes' or '4h'",
                      lambda n: f"{_show(n)} has no unit (seconds? minutes? hours?); "
                                f"write '{_show(n)}s', '{_show(n)}min' or '{_show(n)}h'",
                      base_units=base_units)


def parse_latency(value: object, *, base_units: bool = False) -> float:
    """Return seconds for ``'50ms'`` or ``'<50ms per sample'``.

    Raises:
        ValueError: a bare number (``50``: 50 ms or 50 s?) unless ``base_units``, or an unknown unit.
    """
    return _with_unit(value, "latency", _SECONDS, "'50ms' or '<50ms per sample'",
                      lambda n: f"{_show(n)} has no unit; write '{_show(n)}ms' or '{_show(n)}s'",
                      base_units=base_units)


def parse_size(value: object, *, base_units: bool = False) -> float:
    """Return bytes for ``'50MB'`` (10^6), ``'42 MiB'`` (2^20) or ``'512B'``.

    Raises:
        ValueError: a bare number (``50``: bytes or MB?) unless ``base_units``; a one-letter suffix
            (``50M``: MB or MiB?); an unknown unit.
    """
    if isinstance(value, str):
        _refuse_one_letter_size(value)
    return _with_unit(value, "size", _BYTES, "'50MB' or '42 MiB'",
                      lambda n: f"{_show(n)} has no unit; write '{_show(n)}MB' (10^6 bytes), "
                                f"'{_show(n)}MiB' (2^20 bytes) or '{_show(n)}B' (bytes)",
                      base_units=base_units)


def _refuse_one_letter_size(text: str) -> None:
    """``50M`` is refused with both readings; ``50MB`` and ``50MiB`` pass."""
    match = _QUANTITY.match(text)
    if match and match.group("unit").lower() in _AMBIGUOUS_SIZES:
        decimal, binary, dec_power, bin_power = _AMBIGUOUS_SIZES[match.group("unit").lower()]
        n = _show(float(match.group("num")))
        raise ValueError(f"{text.strip()!r} is ambiguous; write {n}{decimal} (10^{dec_power} bytes) "
                         f"or {n}{binary} (2^{bin_power} bytes)")


def parse_fraction(value: object, *, base_units: bool = False) -> float:
    """Return a 0..1 fraction for ``0.9``, ``'90%'`` or ``'> 85%'``.

    A bare number in 0..1 is a fraction (``0.9`` is 90%); ``1`` is 100%.

    Raises:
        ValueError: a bare number above 1 (``1.5``: 1.5% or 150%?) unless ``base_units``; another unit.
    """
    plain = _plain(value, "fraction", "0.9 or '90%'")
    number, unit = (plain, "") if isinstance(plain, float) else _split(plain, "fraction")
    if unit == "%":
        return float(f"{number / 100.0:.12g}")  # 99.9% is 0.999, not 0.9990000000000001
    if unit:
        raise ValueError(f"unknown unit {unit!r} in {value!r}; write a fraction like 0.9 or 90%")
    if number > 1 and not base_units:
        raise ValueError(f"{_show(number)} is ambiguous ({_show(number)}% or {_show(number * 100)}%?); "
                         f"write '{_show(number)}%' or a fraction such as {_show(number / 100)}")
    return number


def parse_number(value: object, *, base_units: bool = False) -> float:
    """Return a plain float; strings such as ``'>= 3'`` are accepted (``base_units`` changes nothing)."""
    plain = _plain(value, "number", "3 or 0.5")
    if isinstance(plain, float):
        return plain
    number, unit = _split(plain, "number")
    if unit:
        raise ValueError(f"{value!r} is a plain number, without a unit; write it like 3 or 0.5")
    return number


# Parsers by the unit names of the metric catalog (config/catalog.py).
UNIT_PARSERS: dict[str, Parser] = {
    "fraction": parse_fraction,
    "seconds": parse_duration,
    "bytes": parse_size,
    "number": parse_number,
    "count": parse_number,
}


def in_base_units(info: ValidationInfo | None) -> bool:
    """True when the pydantic validation was asked to read bare numbers as base units (a saved config)."""
    context = info.context if info is not None else None
    return bool(isinstance(context, dict) and context.get(BASE_UNITS))


def unit_validator(parse: Parser, *, json_schema_input_type: Any = str) -> BeforeValidator:
    """A pydantic ``BeforeValidator`` running ``parse``, honouring :data:`BASE_UNITS` in the context.

    ``json_schema_input_type`` is what the exported JSON Schema says the key accepts.
    """

    def validate(value: Any, info: ValidationInfo) -> Any:
        return parse(value, base_units=in_base_units(info))

    validate.parser = parse  # type: ignore[attr-defined]  # config.keys finds a key's unit by it
    return BeforeValidator(validate, json_schema_input_type=json_schema_input_type)


# --------------------------------------------------------------------------- legacy reading

# What a bare number meant before units were required, by catalog unit: the sample projects' reading.
_LEGACY_SUFFIX = {"seconds": "s", "bytes": "B"}


def legacy_reading(value: object, unit: str) -> str | None:
    """The explicit form of a legacy value that is now refused, or None when it needs no change.

    A bare duration or latency was seconds (``50`` -> ``'50s'``), a bare size bytes (``'50B'``), a
    bare fraction above 1 a percentage (``85`` -> ``'85%'``), a one-letter size suffix binary
    (``'50M'`` -> ``'50MiB'``).
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        if unit in _LEGACY_SUFFIX:
            return f"{_show(float(value))}{_LEGACY_SUFFIX[unit]}"
        return f"{_show(float(value))}%" if unit == "fraction" and value > 1 else None
    if not isinstance(value, str) or unit not in ("seconds", "bytes", "fraction"):
        return None
    match = _QUANTITY.match(value)
    if match is None:
        return None
    number, suffix = match.group("num"), match.group("unit")
    if unit == "bytes" and suffix.lower() in _AMBIGUOUS_SIZES:
        return f"{_show(float(number))}{_AMBIGUOUS_SIZES[suffix.lower()][1]}"
    return legacy_reading(float(number), unit) if not suffix else None


# --------------------------------------------------------------------------- formatting

_DURATION_UNITS = (("h", 3600.0), ("min", 60.0), ("s", 1.0), ("ms", 1e-3), ("µs", 1e-6))
_LATENCY_UNITS = (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6))
_DECIMAL_SIZES = (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3), ("B", 1.0))
_BINARY_SIZES = (("TiB", 2.0**40), ("GiB", 2.0**30), ("MiB", 2.0**20), ("KiB", 2.0**10))


def _in_largest(value: float, units: tuple[tuple[str, float], ...]) -> str:
    """``value`` in the largest unit it is at least 1 of and reads short in (``830`` s is
    ``830 s``, not ``13.8333333333 min``); the smallest unit for tiny values."""
    if value == 0:
        name, factor = next((n, f) for n, f in units if f == 1.0)
        return f"{_show(value / factor)} {name}"
    fitting = [(n, f) for n, f in units if abs(value) >= f] or [units[-1]]
    texts = [f"{_show(value / f)} {n}" for n, f in fitting]
    return next((text for text in texts if _digits(text) <= 4), texts[-1])


def format_duration(seconds: float) -> str:
    """``14400`` -> ``'4 h'``, ``90`` -> ``'1.5 min'``: the inverse of :func:`parse_duration`."""
    return _in_largest(seconds, _DURATION_UNITS)


def format_latency(seconds: float) -> str:
    """``0.05`` -> ``'50 ms'``: the inverse of :func:`parse_latency` (seconds at most, never minutes)."""
    return _in_largest(seconds, _LATENCY_UNITS)


def format_size(size: float) -> str:
    """``50e6`` -> ``'50 MB'``, ``10 * 2**20`` -> ``'10 MiB'``: the inverse of :func:`parse_size`.

    Decimal units unless the size is a whole number of a binary unit and the decimal form needs
    more digits (``10485760`` reads better as ``10 MiB`` than ``10.48576 MB``).
    """
    decimal = _in_largest(size, _DECIMAL_SIZES)
    whole = [(n, f) for n, f in _BINARY_SIZES if size >= f and float(size / f).is_integer()]
    if not whole:
        return decimal
    binary = f"{_show(size / whole[0][1])} {whole[0][0]}"
    return binary if _digits(binary) < _digits(decimal) else decimal


def _digits(text: str) -> int:
    return sum(ch.isdigit() for ch in text.split(" ")[0])


def format_fraction(fraction: float) -> str:
    """``0.9`` -> ``'90%'``: the inverse of :func:`parse_fraction`."""
    return f"{_show(fraction * 100)}%"


def format_number(value: float) -> str:
    """``3.0`` -> ``'3'``: the inverse of :func:`parse_number`."""
    return _show(value)


# Formatters by the unit names of the metric catalog: what a gate threshold or target reads as.
UNIT_FORMATTERS: dict[str, Callable[[float], str]] = {
    "fraction": format_fraction,
    "seconds": format_duration,
    "bytes": format_size,
    "number": format_number,
    "count": format_number,
}


def format_quantity(value: float, unit: str) -> str:
    """Render a base-unit value for reports, at fixed precision: ``0.05 s`` as ``50.0 ms``, bytes as MB."""
    if unit == "fraction":
        return f"{value:.2%}"
    if unit == "seconds":
        return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.1f} s"
    if unit == "bytes":
        return f"{value / 1e6:.2f} MB"
    if unit == "count":
        return f"{value:.0f}"
    return f"{value:.4g}"
