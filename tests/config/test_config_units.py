"""Quantities as people write them become base units; nothing ambiguous is guessed; words parse back."""

import pytest

from mlestar.config.units import (
    UNIT_FORMATTERS,
    UNIT_PARSERS,
    format_duration,
    format_fraction,
    format_latency,
    format_number,
    format_quantity,
    format_size,
    legacy_reading,
    parse_duration,
    parse_fraction,
    parse_latency,
    parse_number,
    parse_size,
)


@pytest.mark.parametrize("text, seconds", [
    ("90s", 90), ("45 minutes", 2700), ("4h", 14400), ("<4 hours", 14400), ("6 hours", 21600),
    ("1.5h", 5400), ("30 s", 30), ("2 days", 172800), ("10 min", 600), ("5m", 300),
])
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text, size", [
    ("50MB", 50e6), ("42 MiB", 42 * 2**20), ("2GB", 2e9), ("512KB", 512e3), ("512kB", 512e3), ("1 GiB", 2**30),
    ("1000B", 1000), ("1000 bytes", 1000), ("3TiB", 3 * 2**40),
])
def test_sizes(text: object, size: float) -> None:
    assert parse_size(text) == pytest.approx(size)


@pytest.mark.parametrize("text, seconds", [("50ms", 0.05), ("<50ms per sample", 0.05), ("0.2 s", 0.2),
                                           ("500us", 5e-4), ("< 10 ms/image", 0.01), ("20 µs", 2e-5)])
def test_latencies(text: str, seconds: float) -> None:
    assert parse_latency(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text, value", [(0.9, 0.9), ("90%", 0.9), ("> 85%", 0.85), ("0.5", 0.5), (1, 1.0),
                                         (0, 0.0), ("1.5%", 0.015), ("150%", 1.5)])
def test_fractions(text: object, value: float) -> None:
    assert parse_fraction(text) == pytest.approx(value)


@pytest.mark.parametrize("parser, value, message", [
    (parse_latency, 50, "50 has no unit; write '50ms' or '50s'"),
    (parse_latency, "50", "50 has no unit; write '50ms' or '50s'"),
    (parse_duration, 4, "4 has no unit (seconds? minutes? hours?); write '4s', '4min' or '4h'"),
    (parse_size, 50, "50 has no unit; write '50MB' (10^6 bytes), '50MiB' (2^20 bytes) or '50B' (bytes)"),
    (parse_size, "50M", "'50M' is ambiguous; write 50MB (10^6 bytes) or 50MiB (2^20 bytes)"),
    (parse_size, "8 g", "'8 g' is ambiguous; write 8GB (10^9 bytes) or 8GiB (2^30 bytes)"),
    (parse_size, "512K", "'512K' is ambiguous; write 512kB (10^3 bytes) or 512KiB (2^10 bytes)"),
    (parse_size, "2T", "'2T' is ambiguous; write 2TB (10^12 bytes) or 2TiB (2^40 bytes)"),
    (parse_fraction, 1.5, "1.5 is ambiguous (1.5% or 150%?); write '1.5%' or a fraction such as 0.015"),
    (parse_fraction, 85, "85 is ambiguous (85% or 8500%?); write '85%' or a fraction such as 0.85"),
    (parse_number, "3 s", "'3 s' is a plain number, without a unit"),
])
def test_ambiguous_quantities_are_refused_with_both_readings(parser: object, value: object, message: str) -> None:
    with pytest.raises(ValueError) as err:
        parser(value)  # type: ignore[operator]
    assert message in str(err.value)


@pytest.mark.parametrize("parser, text", [
    (parse_duration, "4 fortnights"), (parse_size, "50 MBs"), (parse_latency, "fast"), (parse_fraction, "90 kg"),
    (parse_duration, True), (parse_size, [1]), (parse_fraction, False),
])
def test_bad_quantities_are_refused(parser: object, text: object) -> None:
    with pytest.raises(ValueError):
        parser(text)  # type: ignore[operator]


@pytest.mark.parametrize("parser, value, expected", [
    (parse_duration, 30, 30.0), (parse_latency, 0.05, 0.05), (parse_size, 1000, 1000.0), (parse_fraction, 1.5, 1.5),
    (parse_size, "50MB", 50e6),
])
def test_base_units_read_bare_numbers_as_saved(parser: object, value: object, expected: float) -> None:
    assert parser(value, base_units=True) == pytest.approx(expected)  # type: ignore[operator]


def test_counts_and_numbers_are_plain() -> None:
    assert (parse_number(3), parse_number(">= 3"), parse_number(0.5)) == (3.0, 3.0, 0.5)


@pytest.mark.parametrize("value, unit, reading, base", [
    (50, "seconds", "50s", 50), (0.05, "seconds", "0.05s", 0.05), ("50", "seconds", "50s", 50),
    (1000, "bytes", "1000B", 1000), ("8G", "bytes", "8GiB", 8 * 2**30), ("50 M", "bytes", "50MiB", 50 * 2**20),
    (85, "fraction", "85%", 0.85), ("85", "fraction", "85%", 0.85),
])
def test_legacy_reading_makes_the_old_meaning_explicit(value: object, unit: str, reading: str, base: float) -> None:
    assert legacy_reading(value, unit) == reading
    assert UNIT_PARSERS[unit](reading) == pytest.approx(base)


@pytest.mark.parametrize("value, unit", [
    (0.85, "fraction"), ("50ms", "seconds"), ("50MB", "bytes"), ("<4 hours", "seconds"), (3, "count"),
    (True, "seconds"), ("fast", "seconds"),
])
def test_legacy_reading_leaves_readable_values_alone(value: object, unit: str) -> None:
    assert legacy_reading(value, unit) is None


@pytest.mark.parametrize("formatter, value, text", [
    (format_duration, 14400, "4 h"), (format_duration, 600, "10 min"), (format_duration, 90, "1.5 min"),
    (format_duration, 30, "30 s"), (format_duration, 0, "0 s"),
    (format_latency, 0.05, "50 ms"), (format_latency, 1.5, "1.5 s"), (format_latency, 2e-5, "20 µs"),
    (format_size, 50e6, "50 MB"), (format_size, 10 * 2**20, "10 MiB"), (format_size, 2e9, "2 GB"),
    (format_size, 1000, "1 kB"), (format_size, 512, "512 B"), (format_size, 1024, "1 KiB"),
    (format_size, 4096000, "4.096 MB"),
    (format_fraction, 0.9, "90%"), (format_fraction, 0.015, "1.5%"), (format_fraction, 1.0, "100%"),
    (format_number, 3.0, "3"), (format_number, 0.25, "0.25"),
])
def test_formatters_write_what_people_write(formatter: object, value: float, text: str) -> None:
    assert formatter(value) == text  # type: ignore[operator]


ROUND_TRIP_VALUES = [0.0, 1e-6, 3.2e-4, 0.005, 0.05, 0.123456789, 1.0, 1.5, 59.9, 90, 600, 3599, 14400, 86400 * 3,
                     512, 1000, 1024, 4096000, 10 * 2**20, 50e6, 123456789, 2**30, 1.5e12]


@pytest.mark.parametrize("formatter, parser", [
    (format_duration, parse_duration), (format_latency, parse_latency), (format_size, parse_size),
    (format_fraction, parse_fraction), (format_number, parse_number),
])
@pytest.mark.parametrize("value", ROUND_TRIP_VALUES)
def test_format_then_parse_gives_the_same_value(formatter: object, parser: object, value: float) -> None:
    text = formatter(value)  # type: ignore[operator]
    assert parser(text) == pytest.approx(value, rel=1e-11, abs=1e-15), text  # type: ignore[operator]


@pytest.mark.parametrize("unit", sorted(UNIT_PARSERS))
def test_every_catalog_unit_has_a_formatter_that_round_trips(unit: str) -> None:
    for value in (0.25, 0.5, 1.0):
        assert UNIT_PARSERS[unit](UNIT_FORMATTERS[unit](value)) == pytest.approx(value)


def test_format_quantity() -> None:
    assert format_quantity(0.05, "seconds") == "50.0 ms"
    assert format_quantity(0.9, "fraction") == "90.00%"
    assert format_quantity(50e6, "bytes") == "50.00 MB"
