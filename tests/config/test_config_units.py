"""Quantities as people write them become base units, and nonsense is refused."""

import pytest

from mlestar.config.units import format_quantity, parse_duration, parse_fraction, parse_latency, parse_size


@pytest.mark.parametrize("text, seconds", [
    ("90s", 90), ("45 minutes", 2700), ("4h", 14400), ("<4 hours", 14400), ("6 hours", 21600),
    ("1.5h", 5400), (30, 30), ("2 days", 172800), ("10 min", 600),
])
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text, size", [
    ("50MB", 50e6), ("42 MiB", 42 * 2**20), ("2GB", 2e9), ("512KB", 512e3), ("1 GiB", 2**30), (1000, 1000),
])
def test_sizes(text: object, size: float) -> None:
    assert parse_size(text) == pytest.approx(size)


@pytest.mark.parametrize("text, seconds", [("50ms", 0.05), ("<50ms per sample", 0.05), ("0.2 s", 0.2),
                                           ("500us", 5e-4), ("< 10 ms/image", 0.01)])
def test_latencies(text: str, seconds: float) -> None:
    assert parse_latency(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text, value", [(0.9, 0.9), ("90%", 0.9), ("> 85%", 0.85), (85, 0.85), ("0.5", 0.5)])
def test_fractions(text: object, value: float) -> None:
    assert parse_fraction(text) == pytest.approx(value)


@pytest.mark.parametrize("parser, text", [
    (parse_duration, "4 fortnights"), (parse_size, "50 MBs"), (parse_latency, "fast"), (parse_fraction, "90 kg"),
    (parse_duration, True), (parse_size, [1]),
])
def test_bad_quantities_are_refused(parser: object, text: object) -> None:
    with pytest.raises(ValueError):
        parser(text)  # type: ignore[operator]


def test_format_quantity() -> None:
    assert format_quantity(0.05, "seconds") == "50.0 ms"
    assert format_quantity(0.9, "fraction") == "90.00%"
    assert format_quantity(50e6, "bytes") == "50.00 MB"
