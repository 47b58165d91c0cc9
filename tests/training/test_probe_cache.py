"""The probe cache: keyed by set-up and machine, aged, atomic, tolerant of damage, and bypassable."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

import pytest
import torch

from mlestar.errors import ConfigError
from mlestar.training import probe_cache
from mlestar.training.probe_cache import (
    MAX_AGE_ENV, MAX_AGE_S, NO_CACHE_ENV, ProbeCacheWarning, cached_measurement, probe_cache_dir, probe_key,
    reproducible, source_of,
)

SETUP: dict[str, Any] = {"method": "loop_throughput", "model": "airbench_xs", "width": 32, "shape": [3, 32, 32],
                         "batch_size": 256, "precision": "fp32", "channels_last": False}
T0 = 1_800_000_000.0  # a fixed "now" (2027-01-15): ages are computed from it, never from the clock


class Spy:
    """A probe function that counts its calls and returns a new speed each time."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> dict[str, Any]:
        self.calls += 1
        return {"images_per_second": 1000.0 + self.calls / 3, "steps": 18, "batch_size": 256}


def lookup(spy: Callable[[], dict[str, Any]], now: float = T0, setup: dict[str, Any] = SETUP) -> dict[str, Any]:
    return cached_measurement(setup, "cpu", spy, now=now)


def test_the_cache_lives_under_the_user_cache_dir(private_cache: Path) -> None:
    assert probe_cache_dir() == private_cache / "probes"


def test_a_second_lookup_is_a_hit_that_does_not_measure_and_returns_the_same_number() -> None:
    spy = Spy()
    first = lookup(spy)
    second = lookup(spy, now=T0 + 7200)
    assert spy.calls == 1
    assert first["cache"]["status"] == "miss" and second["cache"]["status"] == "hit"
    assert second["images_per_second"] == first["images_per_second"] == 1000.0 + 1 / 3
    assert second["cache"]["age_s"] == 7200.0 and source_of(second).describe() == "cache hit (measured 2.0 h ago)"
    assert second["cache"]["key"] == first["cache"]["key"] == probe_key(SETUP, "cpu")
    assert second["cache"]["measured_at"] == first["cache"]["measured_at"] == "2027-01-15T08:00:00+00:00"
    # what artifacts keep is byte-identical on the miss and on the hit: downstream stage hashes stay put
    assert json.dumps(reproducible(first), sort_keys=True) == json.dumps(reproducible(second), sort_keys=True)
    assert set(reproducible(second)["cache"]) == {"key", "measured_at"}


@pytest.mark.parametrize("change", [{"model": "airbench_s"}, {"width": 64}, {"batch_size": 512},
                                    {"precision": "bf16"}, {"channels_last": True}, {"shape": [3, 16, 16]}])
def test_any_change_to_the_set_up_misses(change: dict[str, Any]) -> None:
    assert probe_key({**SETUP, **change}, "cpu") != probe_key(SETUP, "cpu")
    assert probe_key(dict(reversed(list(SETUP.items()))), "cpu") == probe_key(SETUP, "cpu")  # order is no change
    spy = Spy()
    lookup(spy)
    assert lookup(spy, setup={**SETUP, **change})["cache"]["status"] == "miss" and spy.calls == 2


@pytest.mark.parametrize("field, value", [("torch", "9.9.9"), ("cpu_capability", "NO_SUCH_ISA"), ("native_bf16", "a-test-isa"),
                                          ("host", "another-host"), ("cpu", "Intel Xeon 8480+"),
                                          ("logical_cpus", 4096), ("mlestar", "9.0")])
def test_a_different_machine_or_software_misses(monkeypatch: pytest.MonkeyPatch, field: str, value: Any) -> None:
    spy = Spy()
    lookup(spy)
    machine = probe_cache._fixed_machine()
    assert field in machine and machine[field] != value
    monkeypatch.setattr(probe_cache, "_fixed_machine", lambda: {**machine, field: value})
    assert lookup(spy)["cache"]["status"] == "miss" and spy.calls == 2


def test_the_machine_signature_names_this_cpu_and_torch() -> None:
    machine = probe_cache.machine_signature("cpu")
    assert machine["torch"] == torch.__version__ and machine["threads"] == torch.get_num_threads()
    assert machine["cpu_capability"] == torch.backends.cpu.get_cpu_capability() and machine["device"] == "cpu"


def test_the_thread_count_and_the_device_are_part_of_the_key() -> None:
    threads = torch.get_num_threads()
    key = probe_key(SETUP, "cpu")
    try:
        torch.set_num_threads(threads + 1)
        assert probe_key(SETUP, "cpu") != key
    finally:
        torch.set_num_threads(threads)
    assert probe_key(SETUP, "cpu") == key and probe_key(SETUP, "cuda") != key


def test_an_entry_older_than_the_age_limit_is_measured_again(monkeypatch: pytest.MonkeyPatch) -> None:
    spy = Spy()
    lookup(spy)
    assert lookup(spy, now=T0 + MAX_AGE_S)["cache"]["status"] == "hit"  # exactly 7 days: still fresh
    stale = lookup(spy, now=T0 + MAX_AGE_S + 1)
    assert stale["cache"]["status"] == "expired" and spy.calls == 2 and stale["images_per_second"] == 1000.0 + 2 / 3
    assert lookup(spy, now=T0 + MAX_AGE_S + 2)["cache"]["status"] == "hit"  # the new measurement replaced it
    monkeypatch.setenv(MAX_AGE_ENV, "1s")
    assert lookup(spy, now=T0 + MAX_AGE_S + 3)["cache"]["status"] == "expired" and spy.calls == 3


def test_an_age_limit_that_is_not_a_duration_is_refused_with_a_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    lookup(Spy())
    monkeypatch.setenv(MAX_AGE_ENV, "7")
    with pytest.raises(ConfigError, match=MAX_AGE_ENV) as err:
        lookup(Spy())
    assert "'7d'" in err.value.hint


@pytest.mark.parametrize("content", ["{not json", "", json.dumps([1, 2]),
                                     json.dumps({"format": 1, "key": "another"})])
def test_a_damaged_entry_is_ignored_with_a_warning_and_replaced(content: str) -> None:
    spy = Spy()
    first = lookup(spy)
    entry = probe_cache_dir() / f"{first['cache']['key']}.json"
    entry.write_text(content)
    with pytest.warns(ProbeCacheWarning, match="unreadable"):
        again = lookup(spy)
    assert again["cache"]["status"] == "corrupt" and spy.calls == 2
    assert lookup(spy)["cache"]["status"] == "hit" and json.loads(entry.read_text())["key"] == first["cache"]["key"]


def test_an_entry_with_an_impossible_speed_is_not_trusted() -> None:
    spy = Spy()
    key = lookup(spy)["cache"]["key"]
    entry = probe_cache_dir() / f"{key}.json"
    data = json.loads(entry.read_text())
    data["result"]["images_per_second"] = -5.0
    entry.write_text(json.dumps(data))
    with pytest.warns(ProbeCacheWarning, match="positive number"):
        assert lookup(spy)["images_per_second"] == 1000.0 + 2 / 3


def test_a_failed_write_keeps_the_old_entry_whole_and_the_probe_still_returns(monkeypatch: pytest.MonkeyPatch
                                                                               ) -> None:
    spy = Spy()
    key = lookup(spy)["cache"]["key"]
    entry = probe_cache_dir() / f"{key}.json"
    before = entry.read_bytes()

    def full_disk(src: Any, dst: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setenv(NO_CACHE_ENV, "1")
    monkeypatch.setattr(os, "replace", full_disk)  # the temp file is written, then cannot be swapped in
    with pytest.warns(ProbeCacheWarning, match="could not write"):
        result = lookup(spy, now=T0 + 60)
    assert result["images_per_second"] == 1000.0 + 2 / 3 and entry.read_bytes() == before
    assert [p.name for p in probe_cache_dir().iterdir()] == [entry.name]  # no temp file left behind


def test_an_unwritable_cache_folder_costs_the_speed_up_not_the_probe(private_cache: Path) -> None:
    private_cache.mkdir(parents=True)
    (private_cache / "probes").write_text("a file where the folder belongs")
    spy = Spy()
    with pytest.warns(ProbeCacheWarning):
        assert lookup(spy)["cache"]["status"] == "corrupt"
    with pytest.warns(ProbeCacheWarning):
        lookup(spy)
    assert spy.calls == 2


@pytest.mark.parametrize("value, bypass", [("1", True), ("yes", True), ("0", False), ("", False)])
def test_the_environment_switch_bypasses_the_cache_and_refreshes_it(monkeypatch: pytest.MonkeyPatch, value: str,
                                                                    bypass: bool) -> None:
    spy = Spy()
    lookup(spy)
    monkeypatch.setenv(NO_CACHE_ENV, value)
    again = lookup(spy, now=T0 + 10)
    assert again["cache"]["status"] == ("bypassed" if bypass else "hit") and spy.calls == (2 if bypass else 1)
    monkeypatch.delenv(NO_CACHE_ENV)
    assert lookup(spy, now=T0 + 20)["images_per_second"] == again["images_per_second"]  # the refresh was stored


def test_training_that_outran_a_cached_probe_removes_its_entry(private_cache: Path) -> None:
    kept = reproducible(lookup(Spy()))  # 1000.3 img/s, as plan.json keeps it
    entry = probe_cache_dir() / f"{kept['cache']['key']}.json"
    assert probe_cache.forget_if_understated(kept, 1400.0) is None and entry.exists()  # within 1.5x: a steady machine
    assert probe_cache.forget_if_understated(kept, 900.0) is None and entry.exists()  # slower training: kept
    reason = probe_cache.forget_if_understated(kept, 1600.0)
    assert reason is not None and "1.6x" in reason and not entry.exists()
    spy = Spy()
    lookup(spy)
    assert spy.calls == 1  # the next plan measures again
    assert probe_cache.forget_if_understated({"images_per_second": 10.0}, 1e6) is None  # planned before the cache


def test_a_missing_entry_is_no_error(private_cache: Path) -> None:
    kept = reproducible(lookup(Spy()))
    (probe_cache_dir() / f"{kept['cache']['key']}.json").unlink()
    assert probe_cache.forget_if_understated(kept, 1e6) is None
