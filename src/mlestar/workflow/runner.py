"""The runner: stage order, caching, gates with loop-backs, lineage, audit, resume.

Stages only compute. The runner decides whether a stage runs at all (its
fingerprint matches an earlier passed execution: skip and reuse the files),
records what it read and wrote, checks the gates that follow it, and on a
failed gate diagnoses, picks a remedy, records the decision and re-runs from
the stage that can fix it, a bounded number of times.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from mlestar.config import LoadedConfig, build_config, config_hash
from mlestar.config.catalog import STAGE_ORDER, stage_folder
from mlestar.domains import data_fingerprint, load_dataset
from mlestar.domains import preflight as check_source
from mlestar.errors import MlestarError, StageError, from_os_error
from mlestar.tracking.audit import AuditTrail
from mlestar.tracking.environment import capture_environment
from mlestar.tracking.lineage import ArtifactRecord, LineageDB
from mlestar.utils.io import (atomic_write_json, atomic_write_text, file_signature, read_json, sha256_file,
                              sha256_json)
from mlestar.utils.seeding import seed_everything
from mlestar.utils.signals import Terminated, sigterm_as_interrupt
from mlestar.workflow.cache import CacheHit, find_hit, materialize
from mlestar.workflow.gates import GateOutcome, check_gate, gates_for_stage
from mlestar.workflow.remedies import choose_remedy, diagnose
from mlestar.workflow.stage import (
    DATASET_REF, Stage, StageContext, StageResult, create_stage, list_stages, resolve_ref, select_config,
)
from mlestar.workflow.guard import confined
# re-exported: readers import these names from here too (see layout.py's docstring)
from mlestar.workflow.layout import AUDIT_FILE, CONFIG_FILE, ENVIRONMENT_FILE, LINEAGE_FILE, Outcome
from mlestar.workflow.liveness import LOCK_FILE, RunLock, is_alive, owner_record
from mlestar.workflow.state import DONE, RUN_FILE, RunState, StageStatus, recorded_summary

STAGING_PREFIX = ".creating-"  # a run folder under construction; renamed to the run id when whole
DECODING_LABEL = "decoding images"  # progress label of the first, uncached load of an image folder or archive

log = logging.getLogger(__name__)  # DEBUG: each stage's fingerprint parts, cache decision and timing


@dataclass
class RunOptions:
    """How to run: a new run or a resumed one, which stages, whether to use the cache.

    Attributes:
        runs_dir: where run folders live (default: the config's ``project.runs_dir``).
        resume: id of an interrupted run to continue.
        from_stage: force this stage and every later one to execute.
        only_stage: execute just this stage (earlier ones must be done or cached).
        use_cache: reuse identical earlier executions (``False`` for reproduce).
        report: receives one line per event, for the CLI.
        progress: receives ``(label, done, total)`` during long work, for a progress bar.
    """

    runs_dir: Path | None = None
    resume: str | None = None
    from_stage: str | None = None
    only_stage: str | None = None
    use_cache: bool = True
    report: Callable[[str], None] = field(default=lambda line: None)
    progress: Callable[[str, int, int], None] = field(default=lambda label, done, total: None)


def new_run_id(project: str) -> str:
    """``<project>-<UTC timestamp>-<4 hex>``: sortable and unique."""
    slug = "".join(c if c.isalnum() or c in "-_" else "-" for c in project.lower()).strip("-") or "run"
    return f"{slug}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{secrets.token_hex(2)}"


def preflight(loaded: LoadedConfig) -> None:
    """Checks that need no run folder: data paths exist, gates name produced metrics.

    Raises :class:`MlestarError` before anything is written.
    """
    check_source(loaded.config.data)


DATA_LOCATIONS = ("path", "cache_dir")  # where the data and its decoded cache live, not what they hold


def without_locations(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with ``data``'s location keys dropped: for a key that already holds the data's content hash.

    A project moved to another folder, or data copied elsewhere, keeps its cache hits; changed content
    still misses, through the data fingerprint.
    """
    data = config.get("data")
    if not isinstance(data, dict):
        return config
    return {**config, "data": {k: v for k, v in data.items() if k not in DATA_LOCATIONS}}


class Runner:
    """Executes one run. Create, then call :meth:`execute` once.

    Creating a runner takes the run's lock (see :mod:`~mlestar.workflow.liveness`):
    a second process cannot execute the same run, and readers can tell a live
    run from a killed one. A new run's folder appears whole or not at all.
    """

    def __init__(self, loaded: LoadedConfig, options: RunOptions) -> None:
        self.options = options
        self.report = options.report
        self._dataset: Any = None
        self._lock: RunLock | None = None
        self._current: str | None = None
        if options.resume:
            self._open_existing(loaded, options.resume)
        else:
            preflight(loaded)
            self._create_new(loaded)

    @property
    def stages(self) -> list[str]:
        """The stages of the config's domain, in workflow order."""
        return list_stages(self.config.domain)

    # set-up ------------------------------------------------------------------
    def _create_new(self, loaded: LoadedConfig) -> None:
        self.config = loaded.config
        self.runs_dir = Path(self.options.runs_dir or self.config.project.runs_dir)
        _check_writable(self.runs_dir)
        self.lineage = LineageDB(self.runs_dir / LINEAGE_FILE)  # before any folder: a bad database leaves none
        self.run_id = new_run_id(self.config.project.name)
        self.run_dir = self.runs_dir / self.run_id
        _sweep_abandoned(self.runs_dir)
        staging = self.runs_dir / f"{STAGING_PREFIX}{self.run_id}"
        try:
            staging.mkdir()
            self._lock = RunLock(staging).acquire()
            self._write_run_files(staging, loaded)
            os.replace(staging, self.run_dir)  # the lock is on the file, so it moves along
            self._lock.run_dir = self.run_dir
            self.state.path = self.run_dir / RUN_FILE
            self.audit = AuditTrail(self.run_dir / AUDIT_FILE)
        except BaseException as exc:
            self._discard(staging)
            raise _environment(exc, f"cannot create a run folder in {self.runs_dir}") from None
        self.warnings = loaded.warnings
        self.overrides = loaded.overrides

    def _write_run_files(self, folder: Path, loaded: LoadedConfig) -> None:
        atomic_write_json(folder / CONFIG_FILE, self.config.model_dump(mode="json"))
        if loaded.path is not None:
            atomic_write_text(folder / "config.source.yaml", Path(loaded.path).read_text(encoding="utf-8"))
        env = {**capture_environment(), "config_hash": config_hash(self.config),
               "data_fingerprint": data_fingerprint(self.config.data)}
        atomic_write_json(folder / ENVIRONMENT_FILE, env)
        self.state = RunState.create(folder, run_id=self.run_id, project=self.config.project.name,
                                     config_hash=config_hash(self.config),
                                     config_path=str(loaded.path) if loaded.path else None,
                                     stages=list(STAGE_ORDER))

    def _discard(self, staging: Path) -> None:
        """Remove a run folder that never got to its first stage, so no half-made run is left."""
        self._release()
        for folder in (staging, self.run_dir):
            shutil.rmtree(folder, ignore_errors=True)

    def _open_existing(self, loaded: LoadedConfig, run_id: str) -> None:
        self.runs_dir = Path(self.options.runs_dir or loaded.config.project.runs_dir)
        self.run_dir = self.runs_dir / run_id
        owner = RunState.load(self.run_dir).data.get("owner") or {}
        hint = f" (pid {owner.get('pid')} on {owner.get('host')})" if owner else ""
        self._lock = RunLock(self.run_dir).acquire(owner_hint=hint)
        try:
            self.state = RunState.load(self.run_dir)  # again, under the lock
            self.config = build_config(read_json(self.run_dir / CONFIG_FILE), source=str(self.run_dir / CONFIG_FILE),
                                       base_units=True)
            self.lineage = LineageDB(self.runs_dir / LINEAGE_FILE)
            self.audit = AuditTrail(self.run_dir / AUDIT_FILE)
        except BaseException as exc:
            self._release()
            raise _environment(exc, f"cannot open run {run_id}") from None
        self.run_id = run_id
        self.warnings = []
        self.overrides = ()

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    # the loop ------------------------------------------------------------------
    def execute(self) -> RunState:
        """Run stages in order until the end, a gate runs out of attempts, or an error.

        Returns the final state (status ``passed`` or ``failed``). Errors from
        stages propagate after the state and audit trail record them; an
        ``OSError`` becomes a :class:`~mlestar.errors.ResourceError` naming the
        path and the cause. ``SIGTERM`` stops the run like Ctrl-C.
        """
        try:
            with sigterm_as_interrupt():
                return self._execute_all()
        finally:
            self._release()

    def _execute_all(self) -> RunState:
        try:
            self._begin()
            index = self._start_index()
            stop = self.stages.index(self.options.only_stage) if self.options.only_stage else len(self.stages) - 1
            while index <= stop:
                name = self._current = self.stages[index]
                self._run_or_skip(name, forced=self._forced(index))
                jump = self._check_gates(name)
                if jump is False:
                    return self.state
                index = jump if isinstance(jump, int) else index + 1
            self._current = None
            return self._end()
        except KeyboardInterrupt as exc:
            self._stopped("interrupted", "terminated (SIGTERM)" if isinstance(exc, Terminated)
                          else "interrupted by the user")
            raise
        except OSError as exc:
            mapped = _environment(exc, f"stage {self._current!r}" if self._current else f"run {self.run_id}")
            self._stopped("failed", str(mapped.message))
            raise mapped from None
        except MlestarError as exc:
            self._stopped("failed", exc.message)
            raise
        except BaseException as exc:
            self._stopped("failed", f"{type(exc).__name__}: {exc}")
            raise

    def _begin(self) -> None:
        event = "run_resumed" if self.options.resume else "run_started"
        if self.options.resume:
            self._close_interrupted()
        self.audit.append(event, run_id=self.run_id, config_hash=self.state.data["config_hash"],
                          options={k: v for k, v in vars(self.options).items() if k not in ("report", "progress", "runs_dir")})
        for warning in self.warnings:
            self.audit.append("config_warning", message=warning)
        for override in self.overrides:  # the saved config.json holds their effect; this says who set it
            self.audit.append("config_override", key=override.key, value=override.text)
        self.state.data.update(status="running", owner=owner_record(), failure=None)
        self._sync_run()
        self.report(f"run {self.run_id} -> {self.run_dir}")

    def _close_interrupted(self) -> None:
        """Record what the killed process left: its executions end 'interrupted', owning their files.

        An execution the lineage calls passed but ``run.json`` never did (the
        kill fell between the two writes) is closed the same way: the stage
        runs again, and only the new execution's files count.
        """
        unfinished = {name: self.state.stage(name)["attempts"] for name in self.stages
                      if self.state.stage(name)["status"] not in DONE}
        files = {}
        for record in self.lineage.unconfirmed_stages(self.run_id, unfinished):
            folder = self.run_dir / stage_folder(record.stage)
            _remove_partial_writes(folder)
            files[record.id] = self._artifacts(record.stage, folder)
        closed = self.lineage.close_interrupted(self.run_id, unfinished, files)
        if closed:
            self.audit.append("executions_closed", count=closed,
                              why="the process executing them stopped before the run recorded their end")

    def _start_index(self) -> int:
        if not self.options.resume:
            return 0
        for index, name in enumerate(self.stages):
            if self.state.stage(name)["status"] not in DONE:
                return index
        return len(self.stages) - 1 if self.options.from_stage or self.options.only_stage else len(self.stages)

    def _forced(self, index: int) -> bool:
        first = self.options.from_stage or self.options.only_stage
        return first is not None and index >= self.stages.index(first)

    def _end(self) -> RunState:
        status = "passed" if all(self.state.stage(n)["status"] in DONE for n in self.stages) else "incomplete"
        if self.options.only_stage:
            status = "partial"
        self.audit.append("run_finished", status=status, metrics=self.state.data["metrics"])
        self.state.finish(status)
        self._sync_run()
        self.report(Outcome(f"run {self.run_id} {status}"))
        return self.state

    def _stopped(self, status: str, message: str) -> None:
        """Record how the run stopped; best effort, since the disk may be what failed."""
        for name in self.stages:
            if self.state.stage(name)["status"] == StageStatus.RUNNING.value:
                self.state.stage(name).update(status=StageStatus.INTERRUPTED.value if status == "interrupted"
                                              else StageStatus.FAILED.value, error=message)
        resume = f"mlestar run --resume {self.run_id}" + (f" --runs-dir {self.runs_dir}"
                                                           if str(self.runs_dir) != "runs" else "")
        try:
            self.lineage.close_running(self.run_id, "interrupted" if status == "interrupted" else "failed", message)
            self.audit.append(f"run_{status}", message=message, resume=resume)
            self.state.finish(status, failure={"message": message})
            self._sync_run()
        except (OSError, MlestarError) as exc:
            self.report(f"could not record the end of the run ({exc}); `mlestar status` will show it as "
                        "interrupted once this process has exited")
        self.report(Outcome(f"run {status}: {message}\n  resume with: {resume}"))

    def _sync_run(self) -> None:
        self.state.data["audit"] = {"count": self.audit.count, "head": self.audit.head}
        self.state.save()
        self.lineage.upsert_run(self.run_id, project=self.config.project.name,
                                config_hash=self.state.data["config_hash"], status=self.state.status,
                                started_at=self.state.data["created"], ended_at=self.state.data["ended"],
                                config_path=self.state.data["config_path"])

    # one stage ---------------------------------------------------------------
    def _run_or_skip(self, name: str, *, forced: bool) -> None:
        stage = create_stage(name, self.config.domain)
        started = time.perf_counter()
        fingerprint = self._fingerprint(stage)
        hit = None if forced or not self.options.use_cache else self._cache_hit(stage, fingerprint)
        log.debug("[%s] cache key %s, looked up in %.3fs: %s", stage_folder(name), fingerprint[:16],
                  time.perf_counter() - started, _decision(hit, forced, self.options.use_cache))
        if hit is not None:
            self._reuse(stage, fingerprint, hit)
        elif self._before_only(name):
            raise StageError(f"stage {name!r} has no completed or cached result to build on",
                             hint="run the whole workflow once before using --only")
        else:
            self._execute(stage, fingerprint)
        log.debug("[%s] %s in %.3fs", stage_folder(name), "reused" if hit else "executed",
                  time.perf_counter() - started)

    def _before_only(self, name: str) -> bool:
        only = self.options.only_stage
        return only is not None and self.stages.index(name) < self.stages.index(only) \
            and self.state.stage(name)["status"] not in DONE

    def _fingerprint(self, stage: Stage) -> str:
        parts: dict[str, Any] = {
            "stage": stage.name, "code": stage.code_hash(),
            "config": select_config(self.config, stage.config_paths),
            "inputs": {ref: self._input_hash(stage, ref) for ref in stage.inputs},
        }
        if stage.uses_adjustments:
            parts["adjustments"] = [a["remedy"] for a in self.state.data["adjustments"]]
        if stage.uses_data_fingerprint:
            parts["data"] = data_fingerprint(self.config.data)
        if stage.ships_package:
            from mlestar.tracking.wheel import package_digest

            parts["package"] = package_digest()
        if stage.uses_data_fingerprint or DATASET_REF in stage.inputs:  # keyed on the content already
            parts["config"] = without_locations(parts["config"])
        if log.isEnabledFor(logging.DEBUG):
            log.debug("[%s] key parts: code %s, config %s, inputs %s%s", stage_folder(stage.name),
                      parts["code"][:12], sha256_json(parts["config"])[:12],
                      {ref: value[:12] for ref, value in parts["inputs"].items()} or "none",
                      "".join(f", {k} {str(parts[k])[:40]}" for k in ("adjustments", "data") if k in parts))
        return sha256_json(parts)

    def _input_hash(self, stage: Stage, ref: str) -> str:
        path = resolve_ref(self.run_dir, ref)
        if not path.exists():
            raise StageError(f"stage {stage.name!r} needs {ref}, which no earlier stage of run {self.run_id} made")
        return sha256_file(path)

    def _cache_hit(self, stage: Stage, fingerprint: str) -> CacheHit | None:
        lookup = find_hit(self.lineage, self.runs_dir, stage.name, fingerprint, stage.outputs)
        for why in lookup.rejected:
            self.report(f"[{stage_folder(stage.name)}] cache: not reusing {why}")
            self.audit.append("cache_rejected", stage=stage.name, reason=why, fingerprint=fingerprint)
        if lookup.hit is None and lookup.rejected:
            self.report(f"[{stage_folder(stage.name)}] executing: no earlier result verified")
        return lookup.hit

    def _reuse(self, stage: Stage, fingerprint: str, hit: CacheHit) -> None:
        out_dir = self.run_dir / stage_folder(stage.name)
        entry = self.state.stage(stage.name)
        killed = entry["status"] in (StageStatus.RUNNING.value, StageStatus.INTERRUPTED.value)
        if killed:
            shutil.rmtree(out_dir, ignore_errors=True)  # a killed copy or execution: replaced whole
        elif hit.record.run_id != self.run_id:
            _archive(out_dir, self.run_dir, entry["attempts"])
        # A reused result is an attempt: its gates are checked, and a loop-back after it counts it.
        # The attempt a kill interrupted is the one the reuse completes.
        attempt = max(entry["attempts"], 1) if killed else entry["attempts"] + 1
        artifacts = materialize(hit, self.runs_dir, self.run_id)
        reason = f"inputs, config and code unchanged since run {hit.origin}; its files verified"
        stage_run_id = self.lineage.start_stage(self.run_id, stage.name, attempt, fingerprint)
        self.lineage.complete_stage(stage_run_id, stage=stage.name, status="cached", metrics=hit.record.metrics,
                                    artifacts=artifacts, consumed=hit.consumed, reason=reason,
                                    cached_from=hit.origin)
        self.state.data["metrics"].update(hit.record.metrics)
        # the copy reused, else the run that executed it (a copy made before summaries were copied has none)
        summary = (recorded_summary(self.runs_dir / hit.record.run_id, stage.name, fingerprint)
                   or recorded_summary(self.runs_dir / hit.origin, stage.name, fingerprint))
        self.state.set_stage(stage.name, status=StageStatus.SKIPPED.value, cached_from=hit.origin, reason=reason,
                             metrics=hit.record.metrics, fingerprint=fingerprint, duration=0.0, error=None,
                             summary=summary, attempts=attempt)
        self.audit.append("stage_skipped", stage=stage.name, reason=reason, fingerprint=fingerprint)
        self._sync_run()
        self.report(f"[{stage_folder(stage.name)}] skipped: {reason}")

    def _execute(self, stage: Stage, fingerprint: str) -> None:
        entry = self.state.stage(stage.name)
        resuming = bool(self.options.resume) and entry["status"] in ("running", "interrupted", "failed")
        attempt = entry["attempts"] if resuming and entry["attempts"] else entry["attempts"] + 1
        out_dir = self.run_dir / stage_folder(stage.name)
        if not resuming:
            _archive(out_dir, self.run_dir, entry["attempts"])
        out_dir.mkdir(parents=True, exist_ok=True)
        kept = _signatures(out_dir)  # what a killed attempt left; only files this attempt writes are its own
        ctx = self._context(stage, out_dir, attempt, resuming)
        stage_run_id = self.lineage.start_stage(self.run_id, stage.name, attempt, fingerprint)
        started = time.time()
        self.state.set_stage(stage.name, status=StageStatus.RUNNING.value, attempts=attempt, started=started,
                             fingerprint=fingerprint, cached_from=None, reason=None)
        self.audit.append("stage_started", stage=stage.name, attempt=attempt, resumed=resuming,
                          fingerprint=fingerprint)
        self.report(f"[{stage_folder(stage.name)}] {stage.title}" + (" (resumed)" if resuming else ""))
        seed_everything(self.config.seed, torch=stage.uses_torch)
        inputs = [resolve_ref(self.run_dir, ref) for ref in stage.inputs]
        with confined(stage.name, self.run_dir, out_dir, inputs, appendable=[self.audit.path]):
            result = stage.run(ctx)
        self._check_outputs(stage, out_dir, result)
        self._record_success(stage, stage_run_id, ctx, result, started, kept)

    def _context(self, stage: Stage, out_dir: Path, attempt: int, resuming: bool) -> StageContext:
        return StageContext(config=self.config, run_id=self.run_id, run_dir=self.run_dir, out_dir=out_dir,
                            stage=stage.name, attempt=attempt, resume=resuming,
                            adjustments=list(self.state.data["adjustments"]), audit=self.audit,
                            load_dataset=self._load_dataset if stage.reads_test else self._load_without_test,
                            report=self.report, progress=self.options.progress, declared=stage.inputs)

    def _load_dataset(self) -> Any:
        if self._dataset is None:
            self._dataset = load_dataset(self.config.data, self.config.seed,
                                         progress=lambda done, total: self.options.progress(DECODING_LABEL, done,
                                                                                            total))
        return self._dataset

    def _load_without_test(self) -> Any:
        return self._load_dataset().without_test()

    def _check_outputs(self, stage: Stage, out_dir: Path, result: StageResult) -> None:
        missing = [out for out in stage.outputs if not (out_dir / out).exists()]
        if missing:
            raise StageError(f"stage {stage.name!r} finished without its declared outputs: {', '.join(missing)}")
        unknown = set(result.metrics) - set(stage.metrics())
        absent = set(stage.metrics()) - set(result.metrics)
        if unknown or absent:
            raise StageError(f"stage {stage.name!r} metrics do not match its contract: "
                             f"unexpected {sorted(unknown)}, missing {sorted(absent)}")

    def _record_success(self, stage: Stage, stage_run_id: int, ctx: StageContext, result: StageResult,
                        started: float, kept: dict[str, tuple[int, int]]) -> None:
        config_ref = [("config", path, sha256_json(value)) for path, value in
                      select_config(self.config, stage.config_paths).items()]
        declared = {f"{stage_folder(stage.name)}/{out}" for out in stage.outputs}
        artifacts = [r for r in self._artifacts(stage.name, ctx.out_dir)
                     if r.path in declared or kept.get(r.path) != (r.size, r.mtime_ns)]
        self.lineage.complete_stage(stage_run_id, stage=stage.name, status="passed", metrics=result.metrics,
                                    artifacts=artifacts, consumed=config_ref + ctx.consumed)
        duration = time.time() - started
        self.state.data["metrics"].update(result.metrics)
        self.state.set_stage(stage.name, status=StageStatus.PASSED.value, ended=time.time(), duration=duration,
                             metrics=result.metrics, summary=result.summary, error=None)
        self.audit.append("stage_passed", stage=stage.name, attempt=ctx.attempt, duration_s=round(duration, 3),
                          metrics=result.metrics, summary=result.summary)
        self._sync_run()
        self.report(f"[{stage_folder(stage.name)}] passed in {duration:.1f}s: {result.summary}")

    def _artifacts(self, name: str, out_dir: Path) -> list[ArtifactRecord]:
        records = []
        for path in sorted(p for p in out_dir.rglob("*") if p.is_file()):
            size, mtime_ns = file_signature(path)
            records.append(ArtifactRecord(self.run_id, name, str(path.relative_to(self.run_dir)),
                                          sha256_file(path), size, mtime_ns))
        return records

    # gates -------------------------------------------------------------------
    def _check_gates(self, name: str) -> int | bool | None:
        """None: go on. int: loop back to that stage index. False: the run failed."""
        for gate in gates_for_stage(self.config.gates, name):
            outcome = check_gate(gate, self.state.data["metrics"])
            failures = self.state.data["gate_failures"].setdefault(str(gate.name), [])
            self.state.data["gates"].append({**outcome.to_dict(), "attempt": len(failures) + 1, "time": time.time()})
            self.audit.append("gate_checked", **outcome.to_dict())
            self.report(f"  gate {outcome.message}")
            if outcome.passed:
                continue
            failures.append(outcome.value)
            if len(failures) >= gate.on_fail.max_attempts:
                return self._exhausted(gate.name, outcome, failures)
            return self._loop_back(gate, outcome)
        self.state.save()
        return None

    def _loop_back(self, gate: Any, outcome: GateOutcome) -> int | bool:
        diagnosis = diagnose(outcome, self.state.data["metrics"])
        tried = [a["remedy"] for a in self.state.data["adjustments"] if a["gate"] == gate.name]
        remedy = choose_remedy(diagnosis, self.config.remedies, tried)
        if remedy is None:
            return self._exhausted(gate.name, outcome, self.state.data["gate_failures"][gate.name],
                                   why=f"no allowed remedy for {diagnosis.kind}")
        target = gate.on_fail.return_to or "action_planning"
        target = min(target, "action_planning", key=self.stages.index)
        adjustment = {"gate": gate.name, "remedy": remedy, "diagnosis": diagnosis.kind,
                      "evidence": diagnosis.evidence, "value": outcome.value, "return_to": target,
                      "attempt": len(self.state.data["gate_failures"][gate.name]) + 1}
        self.state.data["adjustments"].append(adjustment)
        self.state.data["loopbacks"].append({"from": outcome.stage, "to": target, "gate": gate.name,
                                             "remedy": remedy})
        self.audit.append("decision", stage=outcome.stage, what="remedy", choice=remedy,
                          reason=f"{diagnosis.kind}: {diagnosis.evidence}", gate=gate.name, return_to=target)
        self.report(f"  diagnosis {diagnosis.kind} -> remedy {remedy}; back to {target}")
        self._reset_from(target)
        return self.stages.index(target)

    def _reset_from(self, target: str) -> None:
        for name in self.stages[self.stages.index(target):]:
            entry = self.state.stage(name)
            if entry["status"] != StageStatus.PENDING.value:
                entry["status"] = StageStatus.PENDING.value
        self._sync_run()

    def _exhausted(self, gate_name: Any, outcome: GateOutcome, failures: list[Any], why: str = "") -> bool:
        remedies = [a["remedy"] for a in self.state.data["adjustments"] if a["gate"] == gate_name]
        failure = {"gate": gate_name, "metric": outcome.metric, "threshold": outcome.threshold,
                   "values": failures, "remedies_tried": remedies,
                   "message": f"gate {gate_name!r} failed {len(failures)} time(s) "
                              f"(values {failures}); remedies tried: {remedies or 'none'}"
                              + (f"; {why}" if why else "")}
        self.audit.append("run_failed", stage=outcome.stage, **failure)  # failure has no 'stage' key
        self.state.finish("failed", failure=failure)
        self._sync_run()
        self.report(Outcome(f"run failed: {failure['message']}"))
        return False


def _decision(hit: CacheHit | None, forced: bool, use_cache: bool) -> str:
    """Why a stage is reused or executed, in a few words, for the debug log."""
    if hit is not None:
        return f"hit, reusing the files of run {hit.origin}"
    if forced:
        return "execute (forced by --from/--only)"
    return "execute (cache off)" if not use_cache else "miss, executing"


def _archive(out_dir: Path, run_dir: Path, attempt: int) -> None:
    """Move an earlier attempt's folder to ``_attempts/`` so its files stay inspectable."""
    if out_dir.exists() and any(out_dir.iterdir()):
        target = run_dir / "_attempts" / f"{out_dir.name}-attempt{attempt}"
        suffix = 0
        while target.exists():
            suffix += 1
            target = target.with_name(f"{out_dir.name}-attempt{attempt}.{suffix}")
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(out_dir, target)
    elif out_dir.exists():
        out_dir.rmdir()


def _check_writable(runs_dir: Path) -> None:
    """Create and remove a file in ``runs_dir``: a read-only, full or forbidden folder fails here, first.

    Raises:
        ResourceError: naming the folder and the real cause (permission, read-only file system, full disk).
    """
    try:
        runs_dir.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".probe-", dir=runs_dir)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise from_os_error(exc, f"cannot write to the runs folder {runs_dir}") from None


def _sweep_abandoned(runs_dir: Path) -> None:
    """Remove run folders a killed process left half-created (``.creating-ID`` no process holds)."""
    for folder in runs_dir.glob(f"{STAGING_PREFIX}*"):
        try:
            # no lock yet and young: another process may be between its mkdir and its lock
            fresh = not (folder / LOCK_FILE).exists() and time.time() - folder.stat().st_mtime < 60
        except OSError:
            continue
        if not fresh and not is_alive(folder, None):
            shutil.rmtree(folder, ignore_errors=True)


def _signatures(folder: Path) -> dict[str, tuple[int, int]]:
    """``{run-relative path: (size, mtime_ns)}`` of the files already in a stage folder."""
    run_dir = folder.parent
    return {str(p.relative_to(run_dir)): file_signature(p) for p in folder.rglob("*") if p.is_file()}


def _remove_partial_writes(folder: Path) -> None:
    """Delete the temp files of atomic writes a kill cut short (``.NAME.<random>.tmp``): never a result."""
    for path in folder.rglob(".*.tmp"):
        path.unlink(missing_ok=True)


def _environment(exc: BaseException, doing: str) -> BaseException:
    """An ``OSError`` as the :class:`ResourceError` that names its path and cause; anything else unchanged."""
    return from_os_error(exc, doing) if isinstance(exc, OSError) else exc


def run_workflow(loaded: LoadedConfig, options: RunOptions) -> RunState:
    """Create a runner and execute it: the library entry point behind ``mlestar run``."""
    return Runner(loaded, options).execute()


def load_run_config(run_dir: Path) -> LoadedConfig:
    """The config a run was started with, as saved in its folder."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.exists():
        raise MlestarError(f"{run_dir} has no {CONFIG_FILE}; is it a run folder?")
    return LoadedConfig(config=build_config(read_json(path), source=str(path), base_units=True), path=None)
