"""An append-only, hash-chained decision log (``audit.jsonl``).

Each line is one JSON record carrying ``seq``, ``prev`` (the previous
record's hash) and ``hash`` (sha256 of the record without ``hash``). Editing
a line breaks its own hash; removing or reordering lines breaks ``seq`` and
the ``prev`` links; dropping lines from the end is caught by comparing with
the head (count and last hash) that the runner keeps in ``run.json``.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlestar.errors import AuditError, from_os_error
from mlestar.utils import faults
from mlestar.utils.signals import deferred_signals
from mlestar.utils.io import sha256_json

GENESIS = "0" * 64


def _record_hash(record: dict[str, Any]) -> str:
    return sha256_json({k: v for k, v in record.items() if k != "hash"})


class AuditTrail:
    """Appends records to one run's ``audit.jsonl``; safe to reopen after a crash.

    A crash can leave a final line without its newline. Reopening cuts that
    partial line and appends an ``audit_repaired`` record saying so, so the
    chain stays verifiable and the repair itself is on the record.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        cut = self._cut_partial_tail()
        records = read_records(self.path)
        self.count = len(records)
        self.head = records[-1]["hash"] if records else GENESIS
        if cut:
            self.append("audit_repaired", removed_bytes=cut, why="partial last line from an interrupted write")

    def _cut_partial_tail(self) -> int:
        """Drop bytes after the last newline; return how many were dropped."""
        if not self.path.exists():
            return 0
        data = self.path.read_bytes()
        keep = data.rfind(b"\n") + 1
        if keep == len(data):
            return 0
        with open(self.path, "r+b") as fh:
            fh.truncate(keep)
        return len(data) - keep

    def append(self, event: str, *, stage: str | None = None, **data: Any) -> dict[str, Any]:
        """Append one record and fsync it; returns the record written."""
        record: dict[str, Any] = {"seq": self.count, "time": round(time.time(), 3), "event": event,
                                  "stage": stage, "data": data, "prev": self.head}
        record["hash"] = _record_hash(record)
        line = json.dumps(record, sort_keys=True, default=str) + "\n"
        label = f"audit:{event}:{stage or '-'}"
        faults.point(f"{label}:before", self.path)
        with deferred_signals():  # the line and the count that says it is there change together
            try:
                with open(self.path, "a", encoding="utf-8") as fh:
                    fh.write(line)
                    fh.flush()
                    os.fsync(fh.fileno())
            except OSError as exc:
                self._cut_partial_tail()  # a half-written line (disk full) must not stay as a broken record
                raise from_os_error(exc, f"cannot append to the audit trail {self.path}") from None
            self.count += 1
            self.head = record["hash"]
        faults.point(f"{label}:after", self.path)
        return record


def read_records(path: Path) -> list[dict[str, Any]]:
    """Parse every complete line of an audit file; an unparsable one is an :class:`AuditError`.

    A last line without its newline is a write a crash cut short: it is not a
    record yet (reopening the trail removes it), so it is left out here.
    """
    if not Path(path).exists():
        return []
    records = []
    text = Path(path).read_text(encoding="utf-8", errors="replace")
    complete = text[: text.rfind("\n") + 1]
    for number, line in enumerate(complete.splitlines(), start=1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            raise AuditError(f"{path}: line {number} is not valid JSON (edited or corrupted)") from None
    return records


@dataclass
class AuditVerification:
    """Outcome of :func:`verify_audit`: ``ok`` plus one line per problem, and notes that are not problems."""

    records: int
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_audit(path: Path, *, expected_count: int | None = None, expected_head: str | None = None,
                 live: bool = False) -> AuditVerification:
    """Check every hash and link, and the head that ``run.json`` recorded.

    Args:
        expected_count, expected_head: the count and last hash ``run.json`` holds.
        live: the run has not finished cleanly (it is running, or its process
            was killed). The runner appends to the trail before it rewrites
            ``run.json``, so such a run may have records after the recorded head;
            they must still chain from it. A run that finished must match exactly.
    """
    try:
        records = read_records(path)
    except AuditError as exc:
        return AuditVerification(0, [exc.message])
    result = AuditVerification(len(records))
    _note_partial_tail(Path(path), result)
    prev = GENESIS
    for index, record in enumerate(records):
        result.problems.extend(_check_record(index, record, prev))
        prev = record.get("hash", "")
    if expected_count is not None:
        _check_head(records, expected_count, expected_head, live, result)
    return result


def _note_partial_tail(path: Path, result: AuditVerification) -> None:
    if path.exists() and path.stat().st_size and not path.read_bytes().endswith(b"\n"):
        result.notes.append("the last line is incomplete (a write cut short by a crash); it is not a record")


def _check_head(records: list[dict[str, Any]], count: int, head: str | None, live: bool,
                result: AuditVerification) -> None:
    """Compare the chain with the count and head hash ``run.json`` recorded."""
    if len(records) < count or (len(records) > count and not live):
        result.problems.append(f"run.json expects {count} records, the file has {len(records)}")
        return
    recorded_head = records[count - 1].get("hash") if count else GENESIS
    if head is not None and records and head != recorded_head:
        result.problems.append("the record run.json names as the head is not in the file (records replaced)")
    elif len(records) > count:
        result.notes.append(f"{len(records) - count} record(s) after the head run.json recorded: written just "
                            "before the process stopped, and they chain from it")


def _check_record(index: int, record: dict[str, Any], prev: str) -> list[str]:
    """Problems with one record at line ``index + 1``, given the previous hash."""
    problems = []
    line = index + 1
    if record.get("seq") != index:
        problems.append(f"line {line}: sequence number {record.get('seq')} where {index} was expected "
                        "(a record was removed or lines reordered)")
    if record.get("prev") != prev:
        problems.append(f"line {line}: does not follow the record before it (chain broken)")
    if record.get("hash") != _record_hash(record):
        problems.append(f"line {line}: content does not match its hash (record edited)")
    return problems
