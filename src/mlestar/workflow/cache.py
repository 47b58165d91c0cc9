"""The stage cache: find an identical earlier execution, verify its files, copy them in.

A cache hit is trusted only after every file the earlier execution recorded
is found with its recorded content: size and mtime first (unchanged since it
was hashed means unchanged, as DVC assumes), a full sha256 when they differ.
A file that is missing or changed rejects that execution, with the reason,
and the next candidate is tried; none left means the stage runs.

Reuse copies the files (copy-on-write where the file system can, see
:func:`~mlestar.utils.io.copy_file`), never hard links: an edit to one run's
file must not reach another run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mlestar.config.catalog import stage_folder
from mlestar.tracking.lineage import ArtifactRecord, LineageDB, StageRunRecord
from mlestar.utils.io import copy_file, file_signature, sha256_file


@dataclass(frozen=True)
class CacheHit:
    """A verified earlier execution: its record and the files to reuse."""

    record: StageRunRecord
    artifacts: list[ArtifactRecord]
    consumed: list[tuple[str, str, str]]

    @property
    def origin(self) -> str:
        """The run that really executed the stage (a cached copy names its own origin)."""
        return self.record.cached_from or self.record.run_id


@dataclass
class CacheLookup:
    """Outcome of :func:`find_hit`: the hit, if any, and why other candidates were rejected."""

    hit: CacheHit | None = None
    rejected: list[str] = field(default_factory=list)


def find_hit(lineage: LineageDB, runs_dir: Path, stage: str, fingerprint: str, outputs: tuple[str, ...]
             ) -> CacheLookup:
    """The newest execution of ``stage`` with ``fingerprint`` whose files verify."""
    lookup = CacheLookup()
    for record in lineage.find_cached(fingerprint):
        artifacts = lineage.stage_artifacts(record.id)
        problems = verify_files(Path(runs_dir) / record.run_id, artifacts)
        problems += _missing_outputs(stage, outputs, artifacts)
        if problems:
            lookup.rejected.append(f"run {record.run_id}: {'; '.join(problems[:3])}"
                                   + (f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""))
            continue
        lookup.hit = CacheHit(record, artifacts, lineage.consumed_of(record.id))
        return lookup
    return lookup


def verify_files(run_dir: Path, artifacts: list[ArtifactRecord]) -> list[str]:
    """One line per recorded file that is missing or whose content changed; [] when all hold."""
    problems = []
    for record in artifacts:
        path = Path(run_dir) / record.path
        if not path.is_file():
            problems.append(f"{record.path} is missing")
        elif not _unchanged(path, record):
            problems.append(f"{record.path} changed since it was recorded")
    return problems


def _unchanged(path: Path, record: ArtifactRecord) -> bool:
    """Size and mtime as recorded: trust the hash; otherwise hash the file again."""
    size, mtime_ns = file_signature(path)
    if size != record.size:
        return False
    if record.mtime_ns is not None and mtime_ns == record.mtime_ns:
        return True
    return sha256_file(path) == record.sha256


def _missing_outputs(stage: str, outputs: tuple[str, ...], artifacts: list[ArtifactRecord]) -> list[str]:
    recorded = {record.path for record in artifacts}
    folder = stage_folder(stage)
    return [f"{folder}/{out} was never recorded" for out in outputs if f"{folder}/{out}" not in recorded]


def materialize(hit: CacheHit, runs_dir: Path, run_id: str) -> list[ArtifactRecord]:
    """Copy the hit's files into run ``run_id``; returns their records there."""
    source_dir, target_dir = Path(runs_dir) / hit.record.run_id, Path(runs_dir) / run_id
    records = []
    for record in hit.artifacts:
        target = target_dir / record.path
        if source_dir != target_dir:
            copy_file(source_dir / record.path, target)
        size, mtime_ns = file_signature(target)
        records.append(ArtifactRecord(run_id, record.stage, record.path, record.sha256, size, mtime_ns))
    return records
