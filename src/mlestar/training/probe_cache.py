"""Throughput probes measured once per machine and set-up, then reused: planning without waste.

Stage 2 times the reference model and stage 3 the training loop of each
airbench width (33-56 s per width on CIFAR-10 on the 2-core development CPU).
The number depends on the machine and on the probe's set-up, not on the run,
so a re-plan after a loop-back, a second run or a changed gate would measure
the same thing again. :func:`cached_measurement` keeps each measurement:

* **Where.** ``$MLESTAR_CACHE_DIR/probes/<key>.json``, else
  ``~/.cache/mlestar/probes/<key>.json`` (:func:`probe_cache_dir`), beside the
  decoded-image cache and the code index. A user-level cache rather than the
  runs folder: a measurement describes the machine, so every runs folder on it
  (benchmarks and tests use private ones) shares it, and it is outside every
  run folder, which the stage file guard (workflow/guard.py) keeps to the
  stage's contract. Tests point ``$MLESTAR_CACHE_DIR`` at ``tmp_path``.
* **Key.** sha256 over :data:`PROBE_CACHE_FORMAT`, the probe's set-up as the
  caller states it (method, model, width, image shape, batch, precision,
  channels-last, the whole recipe for the loop probe) and
  :func:`machine_signature` (host, CPU model and logical cores, torch's CPU
  capability such as AVX2/AVX512, AMX, intra-op threads, device, GPU name and
  CUDA version, torch and mlestar versions). Any difference is a miss.
* **Files.** One per key, written atomically (``utils.io``): concurrent runs
  never lose each other's entries, a reader sees a whole entry or none, and a
  damaged file costs only its own entry: it is ignored with a
  :class:`ProbeCacheWarning` and measured again, never a crash. A cache that
  cannot be written costs the speed-up, not the run (a warning says so).
* **Age.** An entry older than :data:`MAX_AGE_S` (7 days; ``$MLESTAR_PROBE_CACHE_MAX_AGE``,
  e.g. ``12h``) is measured again: drivers, firmware and the machine's load drift.
* **Bypass.** ``MLESTAR_NO_PROBE_CACHE=1`` measures every probe and stores the
  fresh number (a refresh). An environment switch, not a config field, on
  purpose: it changes how long planning takes, not what it means, so it must
  not change any stage's fingerprint.

**Reproducibility.** The measurement a caller keeps in its artifacts
(``task_spec.json``, ``plan.json``) is :func:`reproducible` of the returned
probe: the numbers plus ``cache: {key, measured_at}``, identical on a hit and
on the miss that stored it. Whether it was a hit, and its age, go to the audit
trail and ``plan.md`` only. So a stage that executes again with every probe a
hit writes the same bytes, and the stages keyed by those bytes' sha256
(workflow/cache.py) are still reused. The probe cache is no input of any
stage fingerprint: a hit returns exactly the number the miss measured.
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
import warnings
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Literal

from mlestar.config.units import parse_duration
from mlestar.errors import ConfigError
from mlestar.utils.io import atomic_write_json, read_json, sha256_json, user_cache_dir

# Bump when what a probe measures changes (training/probe.py's method or constants).
# 2: the loop probe times the regime after the stem bias's epochs.
PROBE_CACHE_FORMAT = 2
MAX_AGE_S = 7 * 86_400.0
NO_CACHE_ENV = "MLESTAR_NO_PROBE_CACHE"
MAX_AGE_ENV = "MLESTAR_PROBE_CACHE_MAX_AGE"

Status = Literal["hit", "miss", "expired", "corrupt", "bypassed"]


class ProbeCacheWarning(UserWarning):
    """A probe cache entry was unreadable or could not be written; the probe was measured instead."""


@dataclass(frozen=True)
class ProbeSource:
    """Where a probe's number came from.

    Attributes:
        status: ``hit`` (reused), else why it was measured: ``miss`` (no entry),
            ``expired``, ``corrupt`` (unreadable entry), ``bypassed`` (``MLESTAR_NO_PROBE_CACHE``).
        key: the cache key (file ``<key>.json`` under :func:`probe_cache_dir`).
        measured_at: when the number was measured, ISO 8601 UTC.
        age_s: seconds between the measurement and this lookup (0 when just measured).
    """

    status: Status
    key: str
    measured_at: str
    age_s: float

    @property
    def cached(self) -> bool:
        """True when the number came from the cache."""
        return self.status == "hit"

    def describe(self) -> str:
        """One phrase for plan.md and summaries: ``cache hit (measured 2.1 h ago)``, ``measured (cache miss)``."""
        if self.cached:
            return f"cache hit (measured {_readable_age(self.age_s)} ago)"
        return {"miss": "measured (cache miss)", "expired": "measured (cache entry expired)",
                "corrupt": "measured (cache entry unreadable)",
                "bypassed": f"measured ({NO_CACHE_ENV} set)"}[self.status]


def _readable_age(seconds: float) -> str:
    for unit, size in (("d", 86_400.0), ("h", 3600.0), ("min", 60.0)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


def probe_cache_dir() -> Path:
    """``$MLESTAR_CACHE_DIR/probes``, else ``~/.cache/mlestar/probes`` (see the module docstring for why)."""
    return user_cache_dir() / "probes"


def max_age_s() -> float:
    """The age limit of an entry in seconds: ``$MLESTAR_PROBE_CACHE_MAX_AGE`` or 7 days.

    Raises:
        ConfigError: the variable is set to something that is not a duration with a unit.
    """
    raw = os.environ.get(MAX_AGE_ENV)
    if not raw:
        return MAX_AGE_S
    try:
        return parse_duration(raw)
    except ValueError as err:
        raise ConfigError(f"{MAX_AGE_ENV}={raw!r} is not a duration: {err}",
                          hint=f"write it like '7d' or '12h', or unset {MAX_AGE_ENV} for 7 days") from err


def bypassed() -> bool:
    """True when ``$MLESTAR_NO_PROBE_CACHE`` asks to measure every probe (any value but empty, 0, false, no)."""
    return os.environ.get(NO_CACHE_ENV, "").strip().lower() not in ("", "0", "false", "no")


@lru_cache(maxsize=1)
def _fixed_machine() -> dict[str, Any]:
    """The parts of the machine that cannot change inside one process."""
    import torch

    from mlestar import __version__
    from mlestar.tracking.environment import cpu_model
    from mlestar.training.precision import cpu_native_bf16

    return {"host": platform.node(), "cpu": cpu_model(), "logical_cpus": os.cpu_count(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(), "native_bf16": cpu_native_bf16(),
            "torch": torch.__version__, "mlestar": __version__}


def machine_signature(device: str) -> dict[str, Any]:
    """What about this machine, now, changes a probe's speed: CPU and its flags, threads, GPU, versions."""
    import torch

    signature = {**_fixed_machine(), "threads": torch.get_num_threads(), "device": device}
    if device == "cuda" and torch.cuda.is_available():
        signature["gpu"] = torch.cuda.get_device_name()
        signature["cuda"] = torch.version.cuda
    return signature


def probe_key(setup: dict[str, Any], device: str) -> str:
    """The cache key of a probe with ``setup`` (JSON-ready) on ``device`` of this machine."""
    return sha256_json({"format": PROBE_CACHE_FORMAT, "setup": setup, "machine": machine_signature(device)})


def cached_measurement(setup: dict[str, Any], device: str, measure: Callable[[], dict[str, Any]], *,
                       now: float | None = None) -> dict[str, Any]:
    """``measure()``'s result for ``setup`` on ``device``, from the cache when a fresh entry has it.

    ``setup`` must name everything about the probe that changes its speed
    besides the machine (which :func:`machine_signature` adds). ``measure`` is
    called only on a miss, an expired or unreadable entry, or a bypass; its
    result (JSON-ready) is then stored. ``now`` (Unix seconds) is for tests.

    Returns:
        The measurement plus ``cache``: :class:`ProbeSource` as JSON
        (``status``, ``key``, ``measured_at``, ``age_s``). Keep
        :func:`reproducible` of it in artifacts.

    Raises:
        ConfigError: ``$MLESTAR_PROBE_CACHE_MAX_AGE`` is not a duration.
    """
    now = time.time() if now is None else now
    key = probe_key(setup, device)
    path = probe_cache_dir() / f"{key}.json"
    status: Status = "bypassed" if bypassed() else "miss"
    if status == "miss":
        entry, status = _load(path, key)
        if entry is not None and now - entry["measured_unix"] <= max_age_s():
            return _with_source(entry, ProbeSource("hit", key, entry["measured_at"],
                                                   round(max(0.0, now - entry["measured_unix"]), 1)))
        status = "expired" if entry is not None else status
    entry = _measured(key, setup, device, measure(), now)
    _store(path, entry)
    return _with_source(entry, ProbeSource(status, key, entry["measured_at"], 0.0))


def reproducible(probe: dict[str, Any]) -> dict[str, Any]:
    """``probe`` as artifacts keep it: its ``cache`` cut to ``key`` and ``measured_at`` (the same on a hit)."""
    cache = probe.get("cache")
    if not isinstance(cache, dict):
        return dict(probe)
    return {**probe, "cache": {"key": cache["key"], "measured_at": cache["measured_at"]}}


def source_of(probe: dict[str, Any]) -> ProbeSource | None:
    """The :class:`ProbeSource` a probe from :func:`cached_measurement` carries; None for an uncached one."""
    cache = probe.get("cache")
    return ProbeSource(**cache) if isinstance(cache, dict) and "status" in cache else None


def _measured(key: str, setup: dict[str, Any], device: str, result: dict[str, Any], now: float) -> dict[str, Any]:
    """A new entry; the result goes through JSON so a miss returns exactly what a later hit reads."""
    stamp = datetime.fromtimestamp(now, timezone.utc).isoformat(timespec="seconds")
    return {"format": PROBE_CACHE_FORMAT, "key": key, "setup": setup, "machine": machine_signature(device),
            "measured_at": stamp, "measured_unix": now, "result": json.loads(json.dumps(result))}


def _with_source(entry: dict[str, Any], source: ProbeSource) -> dict[str, Any]:
    return {**entry["result"], "cache": asdict(source)}


def _load(path: Path, key: str) -> tuple[dict[str, Any] | None, Status]:
    """The entry at ``path`` and ``miss``; ``(None, "miss")`` when absent; ``(None, "corrupt")`` with a warning."""
    try:
        entry = read_json(path)
    except FileNotFoundError:
        return None, "miss"
    except (OSError, ValueError) as err:
        return _corrupt(path, f"{type(err).__name__}: {err}")
    problem = _problem(entry, key)
    return (entry, "miss") if problem is None else _corrupt(path, problem)


def _problem(entry: Any, key: str) -> str | None:
    """Why ``entry`` cannot be used (None when it can): a hit must never crash a later reader."""
    if not isinstance(entry, dict) or entry.get("key") != key or entry.get("format") != PROBE_CACHE_FORMAT:
        return "not an entry for this key and format"
    result, stamp = entry.get("result"), entry.get("measured_unix")
    if not isinstance(result, dict) or not isinstance(entry.get("measured_at"), str):
        return "no result or no measurement time"
    speed = result.get("images_per_second")
    if not isinstance(stamp, (int, float)) or not isinstance(speed, (int, float)) or not (
            math.isfinite(speed) and speed > 0):
        return "images_per_second or measured_unix is not a positive number"
    return None


def _corrupt(path: Path, why: str) -> tuple[None, Status]:
    warnings.warn(f"probe cache entry {path} is unreadable ({why}); measuring again and replacing it",
                  ProbeCacheWarning, stacklevel=4)
    return None, "corrupt"


def _store(path: Path, entry: dict[str, Any]) -> None:
    """Write ``entry`` atomically; a cache that cannot be written only costs the next run the probe."""
    try:
        atomic_write_json(path, entry)
    except OSError as err:
        warnings.warn(f"could not write the probe cache entry {path} ({err}); the next plan measures again",
                      ProbeCacheWarning, stacklevel=3)


STALE_FACTOR = 1.5  # training ran this much faster than the probe promised: the probe was slowed by load


def forget_if_understated(probe: dict[str, Any], trained_images_per_second: float) -> str | None:
    """Delete ``probe``'s cache entry when real training outran it by :data:`STALE_FACTOR`; the reason, or None.

    A probe taken while other work loaded the machine understates its speed, and
    the cache would hand that number to every plan for :data:`MAX_AGE_S`. Stage 4
    measures the planned model's real images per second over whole epochs; when
    that is 1.5x the probe's (the probe times the same loop, so they agree within
    :data:`mlestar.stages.s3_action_planning.EPOCH_OVERHEAD` on a steady machine),
    the entry is removed and the next plan measures again. A probe that
    overstated the speed is kept: training under load is the run's problem, not
    the probe's. Probes without a cache key (planned before the cache) are left alone.
    """
    cache, promised = probe.get("cache"), probe.get("images_per_second")
    if not isinstance(cache, dict) or not promised or trained_images_per_second < STALE_FACTOR * promised:
        return None
    path = probe_cache_dir() / f"{cache['key']}.json"
    try:
        path.unlink()
    except FileNotFoundError:
        return None  # already gone or re-measured by another run
    except OSError as err:
        warnings.warn(f"probe cache entry {path} could not be removed ({err})", ProbeCacheWarning, stacklevel=2)
        return None
    return (f"training ran at {trained_images_per_second:.0f} img/s, {trained_images_per_second / promised:.1f}x "
            f"the cached probe's {promised:.0f} (measured {cache.get('measured_at')}): the probe was slowed, "
            f"so its entry {cache['key'][:12]} is removed and the next plan measures again")
