"""docs/cli.md documents every field the JSON documents carry, with the right type, and no field they lack.

The documents are built by the same library functions ``--json`` prints, from
the finished tiny run, a copy of it with a failed gate, and a compare of two runs.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from mlestar.workflow.compare import compare_runs
from mlestar.workflow.reports import (SCHEMAS, audit_report, json_safe, lineage_report, models_report, show_report,
                                      status_report)
from run_files import copy_run, failed_gate, two_runs

DOC = Path(__file__).resolve().parents[2] / "docs" / "cli.md"
ROW = re.compile(r"^\| `([^`]+)` \| ([^|]+) \|")
PY_TYPES: dict[str, tuple[type, ...]] = {"string": (str,), "number": (int, float), "integer": (int,),
                                         "boolean": (bool,), "object": (dict,), "map": (dict,), "list": (list,),
                                         "null": (type(None),), "any": (object,)}


def documented() -> dict[str, dict[str, str]]:
    """schema id -> {field path: type} from the table after each ``### JSON: `mlestar.X/1``` heading."""
    tables: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for line in DOC.read_text().splitlines():
        heading = re.match(r"^### JSON: `(mlestar\.[a-z]+/\d+)`", line)
        if heading:
            current = tables.setdefault(heading.group(1), {})
        elif line.startswith("#"):
            current = None
        elif current is not None and (row := ROW.match(line)):
            current[row.group(1)] = row.group(2).strip()
    return tables


def allowed(doc_type: str) -> tuple[type, ...]:
    """``"list<string> or null"`` -> (list, NoneType): the outer kinds a documented type admits."""
    kinds = [re.sub(r"<.*", "", part.strip()) for part in re.split(r" or (?![^<]*>)", doc_type)]
    return tuple(t for kind in kinds for t in PY_TYPES[kind])


def walk(value: Any, fields: dict[str, str], path: str = "") -> tuple[set[str], set[str]]:
    """(paths emitted, containers expanded); stops at maps, whose keys are names, not fields."""
    emitted: set[str] = set()
    expanded: set[str] = set()
    items = [(f"{path}.{k}" if path else k, v) for k, v in value.items()] if isinstance(value, dict) else []
    if path and isinstance(value, dict):
        expanded.add(path)
    for child, item in items:
        emitted.add(child)
        doc_type = fields.get(child, "")
        assert not doc_type or isinstance(item, allowed(doc_type)), f"{child}: {item!r} is not {doc_type}"
        if doc_type.startswith("map"):
            continue
        if isinstance(item, list):
            for element in item:
                if isinstance(element, dict):
                    expanded.add(child + "[]")
                    more, deeper = walk(element, fields, child + "[]")
                    emitted |= more
                    expanded |= deeper
        elif isinstance(item, dict):
            more, deeper = walk(item, fields, child)
            emitted |= more
            expanded |= deeper
    return emitted, expanded


@pytest.fixture(scope="module")
def documents(finished_run: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory,
              ) -> list[dict[str, Any]]:
    from mlestar.evaluation import model_summary

    runs_dir, run_id = finished_run
    run_dir = runs_dir / run_id
    root = tmp_path_factory.mktemp("docs")
    gated = copy_run(run_dir, root / "gated", "gated-run", state=failed_gate)
    pair_dir, base, other = two_runs(finished_run, root / "pair")
    shape = {"image_size": 8, "in_channels": 1, "num_classes": 3}
    small = model_summary.summarize("small_cnn", **shape)
    with pytest.MonkeyPatch.context() as patch:  # one real model: the registry's size is not the point here
        patch.setattr(model_summary, "summarize_all", lambda **_: [small])
        models = models_report(image_size=8, channels=1, classes=3)
    return [json_safe(doc) for doc in (
        status_report(runs_dir), show_report(run_dir), show_report(gated), lineage_report(run_dir),
        audit_report(run_dir), audit_report(run_dir, verify=True), models,
        compare_runs([pair_dir / base, pair_dir / other], all_rows=True))]


def test_every_schema_has_a_documented_table() -> None:
    tables = documented()
    assert set(tables) == set(SCHEMAS.values())
    assert all(fields["schema"] == "string" for fields in tables.values())


def test_the_documents_match_their_tables(documents: list[dict[str, Any]]) -> None:
    tables = documented()
    seen: dict[str, set[str]] = {}
    for doc in documents:
        fields = tables[doc["schema"]]
        emitted, expanded = walk(doc, fields)
        assert emitted <= set(fields), f"{doc['schema']}: undocumented {sorted(emitted - set(fields))}"
        # a documented field whose parent the document filled in must be there
        missing = {f for f in fields if (f.rpartition(".")[0] or "") in expanded | {""} and f not in emitted}
        assert not missing, f"{doc['schema']}: documented but not emitted {sorted(missing)}"
        seen.setdefault(doc["schema"], set()).update(emitted)
    for schema, fields in tables.items():  # between them, the documents exercise every documented field
        assert set(fields) <= seen[schema], f"{schema}: never emitted {sorted(set(fields) - seen[schema])}"
