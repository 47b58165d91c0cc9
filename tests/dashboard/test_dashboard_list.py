"""The runs list with 500 runs: cached summaries, filtering, sorting and paging on the server.

How fast the list answers is measured by ``benchmarks/dashboard_list.py``, not asserted here:
a wall-clock bound would fail on a loaded machine and prove nothing on a fast one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from dashboard_helpers import make_runs, synthetic_run
from fastapi.testclient import TestClient

from mlestar.dashboard import create_app, runs
from mlestar.dashboard.runs import RunIndex, RunQuery

@pytest.fixture(scope="module")
def many_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    runs_dir = tmp_path_factory.mktemp("many") / "runs"
    make_runs(runs_dir, 500)
    return runs_dir


def get_json(client: TestClient, url: str, **params: object) -> dict:
    response = client.get(url, params=params)
    assert response.status_code == 200
    return response.json()


def test_500_runs_are_summarized_once_then_served_from_the_cache(many_runs: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    summarized: list[str] = []

    def counting(run_dir: Path, data: dict[str, Any], now: float) -> runs.RunSummary:
        summarized.append(run_dir.name)
        return real(run_dir, data, now)

    real = runs.summarize
    monkeypatch.setattr(runs, "summarize", counting)
    client = TestClient(create_app(many_runs))
    cold = get_json(client, "/api/runs")
    assert len(summarized) == 500 and cold["total"] == 500 and len(cold["runs"]) == 50
    summarized.clear()
    warm = get_json(client, "/api/runs")
    # only running runs are read again (their process can die without touching run.json): 125 of 500
    assert len(summarized) == 125 and all(int(name[-3:]) % 4 == 2 for name in summarized)
    assert warm == cold | {"runs": warm["runs"]}
    assert sum(cold["statuses"].values()) == 500 and cold["statuses"]["running"] == 125


def test_filters_by_status_and_text(many_runs: Path) -> None:
    client = TestClient(create_app(many_runs))
    failed = get_json(client, "/api/runs", status="failed", limit=500)
    assert failed["total"] == 125 and {r["status"] for r in failed["runs"]} == {"failed"}
    text = get_json(client, "/api/runs", q="PROJ3", limit=500)
    assert text["total"] == 100 and {r["project"] for r in text["runs"]} == {"proj3"}
    both = get_json(client, "/api/runs", q="run-01", status="passed")
    assert [r["run_id"] for r in both["runs"]] == ["run-016", "run-012"]


def test_sorts_by_any_column_with_missing_values_last(many_runs: Path) -> None:
    client = TestClient(create_app(many_runs))
    best = get_json(client, "/api/runs", sort="primary_value", order="desc", limit=500)
    values = [r["primary"]["value"] for r in best["runs"]]
    present = [v for v in values if v is not None]
    assert present == sorted(present, reverse=True) and values[len(present):] == [None] * (500 - len(present))
    oldest = get_json(client, "/api/runs", sort="created", order="asc", limit=3)
    assert [r["run_id"] for r in oldest["runs"]] == ["run-000", "run-001", "run-002"]
    by_failures = get_json(client, "/api/runs", sort="gates_failed", order="desc", limit=1)
    assert by_failures["runs"][0]["gates_failed"] == 1


def test_pages_through_all_runs(many_runs: Path) -> None:
    client = TestClient(create_app(many_runs))
    seen = []
    for offset in range(0, 500, 120):
        page = get_json(client, "/api/runs", offset=offset, limit=120)
        seen += [r["run_id"] for r in page["runs"]]
    assert len(seen) == len(set(seen)) == 500


@pytest.mark.parametrize("params", [{"sort": "nonsense"}, {"limit": 0}, {"limit": 501}, {"offset": -1},
                                    {"order": "sideways"}])
def test_bad_list_parameters_are_422(many_runs: Path, params: dict[str, object]) -> None:
    assert TestClient(create_app(many_runs)).get("/api/runs", params=params).status_code == 422


def test_primary_metric_is_judged_against_its_target(tmp_path: Path) -> None:
    synthetic_run(tmp_path, "hit", metrics={"test_accuracy": 0.95})
    synthetic_run(tmp_path, "miss", metrics={"test_accuracy": 0.5})
    latency = {"task": {"primary_metric": "latency_p95"},
               "gates": [{"metric": "latency_p95", "op": "<=", "threshold": 0.01}]}
    synthetic_run(tmp_path, "fast", metrics={"latency_p95": 0.004}, config=latency)
    rows = {r.run_id: r.primary for r in RunIndex(tmp_path).summaries()}
    assert (rows["hit"].met, rows["miss"].met, rows["hit"].target_text) == (True, False, "90.00%")
    assert (rows["fast"].met, rows["fast"].higher_is_better, rows["fast"].value_text) == (True, False, "4.0 ms")


def test_index_rereads_only_changed_runs(tmp_path: Path) -> None:
    synthetic_run(tmp_path, "a", status="running")
    index = RunIndex(tmp_path)
    assert index.query(RunQuery()).runs[0].status == "running"
    synthetic_run(tmp_path, "a", status="passed", metrics={"test_accuracy": 0.99})
    assert index.query(RunQuery()).runs[0].status == "passed"
    synthetic_run(tmp_path, "b")
    assert index.query(RunQuery()).total == 2
