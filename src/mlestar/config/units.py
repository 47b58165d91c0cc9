"""Parse quantities the way people write them in configs.

Durations (``90s``, ``45 minutes``, ``4h``, ``<4 hours``), sizes (``50MB``,
``42 MiB``), latencies (``50ms``, ``<50ms per sample``) and fractions
(``0.9``, ``90%``, ``> 85%``) all become plain floats in base units:
seconds, bytes, seconds, and a 0..1 fraction. A leading comparison sign and
trailing words such as "per sample" are accepted and dropped, since sample
project configs write limits that way.
"""

from __future__ import annotations

import re
from typing import Callable

_NUMBER = r"(?P<num>[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"
_QUANTITY = re.compile(
    r"^\s*(?:[<>]=?|~|≤|≥)?\s*" + _NUMBER + r"\s*(?P<unit>[A-Za-zµ%]*)\s*(?:per\s+\w+|/\s*\w+)?\s*$"
)

_SECONDS = {
    "": 1.0, "s": 1.0, "sec": 1.0, "secs": 1.0, "second": 1.0, "seconds": 1.0,
    "ms": 1e-3, "msec": 1e-3, "millisecond": 1e-3, "milliseconds": 1e-3,
    "us": 1e-6, "µs": 1e-6, "microsecond": 1e-6, "microseconds": 1e-6,
    "m": 60.0, "min": 60.0, "mins": 60.0, "minute": 60.0, "minutes": 60.0,
    "h": 3600.0, "hr": 3600.0, "hrs": 3600.0, "hour": 3600.0, "hours": 3600.0,
    "d": 86400.0, "day": 86400.0, "days": 86400.0,
}

_BYTES = {
    "": 1, "b": 1, "byte": 1, "bytes": 1,
    "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
    "k": 2**10, "m": 2**20, "g": 2**30,
}


def _split(text: str, kind: str) -> tuple[float, str]:
    """Split ``'<4 hours'`` into ``(4.0, 'hours')`` or raise ``ValueError``."""
    match = _QUANTITY.match(text)
    if not match:
        raise ValueError(f"cannot read {text!r} as a {kind}")
    return float(match.group("num")), match.group("unit")


def _parse(value: object, kind: str, table: dict[str, float], examples: str) -> float:
    """Turn a number or a number-with-unit string into base units via ``table``."""
    if isinstance(value, bool):
        raise ValueError(f"expected a {kind}, got a boolean")
    if isinstance(value, (int, float)):
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"expected a {kind} such as {examples}, got {type(value).__name__}")
    number, unit = _split(value, kind)
    factor = table.get(unit) if unit in table else table.get(unit.lower())
    if factor is None:
        raise ValueError(f"unknown {kind} unit {unit!r} in {value!r}; write it like {examples}")
    return number * factor


def parse_duration(value: object) -> float:
    """Return seconds for ``90``, ``'90s'``, ``'45 minutes'``, ``'4h'``, ``'<4 hours'``."""
    return _parse(value, "duration", _SECONDS, "'90s', '45 minutes' or '4h'")


def parse_latency(value: object) -> float:
    """Return seconds for ``'50ms'`` or ``'<50ms per sample'``; a bare number is seconds."""
    return _parse(value, "latency", _SECONDS, "'50ms' or '<50ms per sample'")


def parse_size(value: object) -> float:
    """Return bytes for ``'50MB'`` (10^6) or ``'42 MiB'`` (2^20); a bare number is bytes."""
    return _parse(value, "size", {k: float(v) for k, v in _BYTES.items()}, "'50MB' or '42 MiB'")


def parse_fraction(value: object) -> float:
    """Return a 0..1 fraction for ``0.9``, ``'90%'`` or ``'> 85%'``.

    Numbers above 1 are read as percentages, since ``accuracy: 85`` can only
    mean 85%.
    """
    if isinstance(value, str):
        number, unit = _split(value, "fraction")
        if unit not in ("", "%"):
            raise ValueError(f"unknown unit {unit!r} in {value!r}; write a fraction like 0.9 or 90%")
        return number / 100.0 if unit == "%" or number > 1 else number
    number = _parse(value, "fraction", {"": 1.0}, "0.9 or '90%'")
    return number / 100.0 if number > 1 else number


def parse_number(value: object) -> float:
    """Return a plain float; strings such as ``'>= 3'`` are accepted."""
    return _parse(value, "number", {"": 1.0}, "3 or 0.5")


UNIT_PARSERS: dict[str, Callable[[object], float]] = {
    "fraction": parse_fraction,
    "seconds": parse_duration,
    "bytes": parse_size,
    "number": parse_number,
    "count": parse_number,
}


def format_quantity(value: float, unit: str) -> str:
    """Render a base-unit value for people: ``0.05 s`` as ``50.0 ms``, bytes as MB."""
    if unit == "fraction":
        return f"{value:.2%}"
    if unit == "seconds":
        return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.1f} s"
    if unit == "bytes":
        return f"{value / 1e6:.2f} MB"
    if unit == "count":
        return f"{value:.0f}"
    return f"{value:.4g}"
