"""A trial's architecture check: a latency violation must survive re-measurement before it stands."""

from __future__ import annotations

import pytest

from mlestar.tuning.objective import LATENCY_CONFIRMATIONS, confirmed_latency


def probes(*values: float) -> tuple[list[float], object]:
    """A fake latency probe returning ``values`` in turn, and the list of those it returned."""
    given: list[float] = []
    pending = list(values)

    def probe() -> float:
        given.append(pending.pop(0))
        return given[-1]

    return given, probe


def test_a_probe_within_the_limit_is_measured_once() -> None:
    given, probe = probes(0.009, 0.5)
    assert confirmed_latency(probe, 0.020) == 0.009 and given == [0.009]


def test_one_busy_probe_does_not_condemn_the_architecture() -> None:
    given, probe = probes(0.031, 0.009, 0.5)
    assert confirmed_latency(probe, 0.020) == 0.009 and given == [0.031, 0.009]


@pytest.mark.parametrize("values", [(0.030, 0.025, 0.040), (0.040, 0.030, 0.021)])
def test_a_violation_every_probe_agrees_on_stands_at_the_lowest_reading(values: tuple[float, ...]) -> None:
    given, probe = probes(*values)
    assert confirmed_latency(probe, 0.020) == min(values) > 0.020
    assert len(given) == LATENCY_CONFIRMATIONS
