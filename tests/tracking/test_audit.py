"""The audit trail is append-only and tamper-evident."""

import json
from pathlib import Path

from mlestar.tracking.audit import AuditTrail, read_records, verify_audit
from mlestar.workflow.inspect import verify_run_audit


def make_trail(path: Path, n: int = 5) -> AuditTrail:
    trail = AuditTrail(path)
    for i in range(n):
        trail.append("decision", stage="s", what=f"w{i}", choice=i, reason="r")
    return trail


def test_intact_chain_verifies(tmp_path: Path) -> None:
    trail = make_trail(tmp_path / "a.jsonl")
    result = verify_audit(trail.path, expected_count=trail.count, expected_head=trail.head)
    assert result.ok and result.records == 5


def test_edited_record_is_caught(tmp_path: Path) -> None:
    trail = make_trail(tmp_path / "a.jsonl")
    lines = trail.path.read_text().splitlines()
    lines[2] = lines[2].replace('"choice": 2', '"choice": 99')
    trail.path.write_text("\n".join(lines) + "\n")
    problems = verify_audit(trail.path).problems
    assert problems == ["line 3: content does not match its hash (record edited)"]


def test_removed_record_is_caught(tmp_path: Path) -> None:
    trail = make_trail(tmp_path / "a.jsonl")
    lines = trail.path.read_text().splitlines()
    del lines[1]
    trail.path.write_text("\n".join(lines) + "\n")
    assert any("sequence number 2 where 1 was expected" in p for p in verify_audit(trail.path).problems)


def test_reordered_records_are_caught(tmp_path: Path) -> None:
    trail = make_trail(tmp_path / "a.jsonl")
    lines = trail.path.read_text().splitlines()
    lines[1], lines[2] = lines[2], lines[1]
    trail.path.write_text("\n".join(lines) + "\n")
    assert len(verify_audit(trail.path).problems) >= 2


def test_truncated_tail_is_caught_against_the_head(tmp_path: Path) -> None:
    trail = make_trail(tmp_path / "a.jsonl")
    lines = trail.path.read_text().splitlines()
    trail.path.write_text("\n".join(lines[:-1]) + "\n")
    result = verify_audit(trail.path, expected_count=trail.count, expected_head=trail.head)
    assert result.problems == ["run.json expects 5 records, the file has 4"]


def test_partial_last_line_from_a_crash_is_repaired_on_reopen(tmp_path: Path) -> None:
    trail = make_trail(tmp_path / "a.jsonl", n=2)
    with open(trail.path, "a") as fh:
        fh.write('{"seq": 2, "half a rec')
    reopened = AuditTrail(trail.path)
    records = read_records(trail.path)
    assert [r["event"] for r in records] == ["decision", "decision", "audit_repaired"]
    assert records[-1]["data"]["removed_bytes"] == len('{"seq": 2, "half a rec')
    assert verify_audit(trail.path, expected_count=reopened.count, expected_head=reopened.head).ok


def test_a_real_run_trail_verifies_and_a_hand_edit_is_caught(run_copy: tuple[Path, str]) -> None:
    runs_dir, run_id = run_copy
    run_dir = runs_dir / run_id
    assert verify_run_audit(run_dir).ok
    path = run_dir / "audit.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines()]
    events = [r["event"] for r in records]
    assert events[0] == "run_started" and events[-1] == "run_finished"
    assert events.count("stage_passed") == 7
    target = next(i for i, r in enumerate(records) if r["event"] == "decision")
    records[target]["data"]["choice"] = "something else"
    path.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in records))
    problems = verify_run_audit(run_dir).problems
    assert f"line {target + 1}: content does not match its hash (record edited)" in problems
