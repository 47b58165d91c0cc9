"""The table server: answers, 422s naming the column, PSI on /metrics, and `mlestar serve` dispatch."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from tables_deploy_helpers import fit, mixed_table

from mlestar.domains.tables.bundle import json_row, write_table_bundle
from mlestar.domains.tables.export import convert
from mlestar.domains.tables.schema import build_schema
from mlestar.domains.tables.serve import TableServeSettings, create_table_app


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any, Path, dict]:
    folder = tmp_path_factory.mktemp("serve")
    ds = mixed_table(folder)
    model = fit(ds)
    data, inputs = convert(model)
    model.save(folder / "model.joblib")
    schema = build_schema(model, ds.train, inputs, target="y")
    bundle = write_table_bundle(folder / "bundle", joblib_file=folder / "model.joblib", onnx_bytes=data,
                                schema=schema, metadata={"run_id": "r1", "runtime": "onnx"}, model_card="# c\n")
    return ds, model, bundle, schema


@pytest.fixture()
def client(served) -> TestClient:  # type: ignore[no-untyped-def]
    return TestClient(create_table_app(served[2]))


def _rows(served, n: int) -> list[dict]:  # type: ignore[no-untyped-def]
    ds, _, _, schema = served
    return [json_row(ds.test, i, schema) for i in range(n)]


def test_one_row_and_a_batch(served: Any, client: TestClient) -> None:
    ds, model, _, _ = served
    rows = _rows(served, 12)
    one = client.post("/predict", json={"row": rows[0]})
    assert one.status_code == 200, one.text
    answer = one.json()["predictions"]
    assert len(answer) == 1 and one.json()["runtime"] == "onnx"
    expected = model.scores(ds.test.iloc[:12])
    assert answer[0]["probabilities"]["yes"] == pytest.approx(expected[0, 1], abs=1e-6)
    batch = client.post("/predict", json={"rows": rows}).json()["predictions"]
    labels = [model.class_names[i] for i in model.predict(ds.test.iloc[:12])]
    assert [a["prediction"] for a in batch] == labels
    assert all(sum(a["probabilities"].values()) == pytest.approx(1.0) for a in batch)
    assert client.post("/predict", json=rows[:3]).json()["predictions"] == batch[:3]  # a bare list
    assert client.post("/predict", json=rows[0]).json()["predictions"] == batch[:1]  # a bare row


def test_a_nullable_column_may_be_left_out(client: TestClient, served: Any) -> None:
    row = {k: v for k, v in _rows(served, 1)[0].items() if k != "color"}  # color had missing values
    assert client.post("/predict", json={"row": row}).status_code == 200
    assert client.post("/predict", json={"row": {**row, "size": None}}).status_code == 200


BAD = {
    "unknown category": ({"color": "Q"}, "color", "value 'Q' was never seen in training; allowed: 'blue', "),
    "NaN": ({"size": math.nan}, "size", "not a finite number"),
    "infinity": ({"size": math.inf}, "size", "not a finite number"),
    "text for a number": ({"size": "big"}, "size", "is a str where a number belongs"),
    "missing column": ({"city": None}, "city", "had no missing values in training"),
    "extra column": ({"colour": "red"}, "colour", "is not an input of this model"),
    "not a date": ({"when": "soon"}, "when", "is not a date"),
}


@pytest.mark.parametrize("change,column,message", BAD.values(), ids=list(BAD))
def test_every_bad_input_is_a_422_naming_the_column(client: TestClient, served, change: dict, column: str,
                                                    message: str) -> None:  # type: ignore[no-untyped-def]
    row = {**_rows(served, 2)[1], **change}
    if change.get(column, 0) is None:
        del row[column]
    body = json.dumps({"rows": [_rows(served, 1)[0], row]}, allow_nan=True)  # NaN/Infinity as JSON allows
    response = client.post("/predict", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    detail = response.json()
    assert detail["column"] == column and detail["row"] == 1
    assert f"column {column!r}" in detail["error"] and message in detail["error"]


def test_unknown_categories_can_be_allowed(served: Any) -> None:
    ds, model, bundle, _ = served
    client = TestClient(create_table_app(bundle, TableServeSettings(allow_unknown_categories=True)))
    row = {**_rows(served, 1)[0], "color": "Q"}
    response = client.post("/predict", json={"row": row})
    assert response.status_code == 200
    frame = ds.test.iloc[:1].assign(color="Q")
    assert response.json()["predictions"][0]["probabilities"]["yes"] == pytest.approx(
        model.scores(frame)[0, 1], abs=1e-6)


def test_malformed_bodies(client: TestClient) -> None:
    assert client.post("/predict", content=b"{not json", headers={"Content-Type": "application/json"}
                       ).status_code == 400
    assert client.post("/predict", json=3).status_code == 422
    assert client.post("/predict", json={"rows": [1]}).status_code == 422


def test_routes_and_psi_on_metrics(client: TestClient, served: Any) -> None:
    assert client.get("/health").json()["status"] == "ok"
    assert client.get("/ready").status_code == 200
    assert [c["name"] for c in client.get("/schema").json()["columns"]] == ["color", "city", "size", "when"]
    before = client.get("/metrics").text
    assert 'mlestar_feature_psi{feature="size"} NaN' in before
    rows = _rows(served, 60)
    assert client.post("/predict", json={"rows": rows}).status_code == 200
    shifted = [{**r, "size": 10.0} for r in rows]  # every value above the training range
    assert client.post("/predict", json={"rows": shifted}).status_code == 200
    client.post("/predict", json={"row": {"size": "x"}})
    text = client.get("/metrics").text
    psi = {line.split('"')[1]: float(line.split()[-1]) for line in text.splitlines()
           if line.startswith("mlestar_feature_psi{")}
    assert set(psi) == {"color", "city", "size", "when"}
    assert psi["size"] > 1.0 and psi["color"] < 0.5
    assert 'mlestar_requests_total{outcome="ok",route="/predict"} 2.0' in text
    assert 'mlestar_requests_total{outcome="invalid",route="/predict"} 1.0' in text
    assert "mlestar_rows_total 120.0" in text and "mlestar_drift_window_rows 120.0" in text


def test_the_sklearn_runtime_answers_the_same(served: Any) -> None:
    client = TestClient(create_table_app(served[2], runtime="sklearn"))
    onnx = TestClient(create_table_app(served[2]))
    rows = _rows(served, 5)
    a = client.post("/predict", json={"rows": rows}).json()
    b = onnx.post("/predict", json={"rows": rows}).json()
    assert a["runtime"] == "sklearn"
    got = np.array([list(p["probabilities"].values()) for p in a["predictions"]])
    want = np.array([list(p["probabilities"].values()) for p in b["predictions"]])
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_serve_dispatches_a_table_bundle_to_the_table_app(served: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn
    from typer.testing import CliRunner

    from mlestar.cli.app import app as cli_app

    captured: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: captured.update(app=app, **kw))
    result = CliRunner().invoke(cli_app, ["serve", str(served[2]), "--port", "8123", "--allow-unknown-categories"])
    assert result.exit_code == 0, result.output
    assert captured["host"] == "127.0.0.1" and captured["port"] == 8123
    app = captured["app"]
    assert app.title == "mlestar table model" and app.state.bundle.runtime == "onnx"
    response = TestClient(app).post("/predict", json={"row": {**_rows(served, 1)[0], "color": "Q"}})
    assert response.status_code == 200  # --allow-unknown-categories reached the app


TORCHLESS = """
import json, sys
for name in ("torch", "torchvision"):
    sys.modules[name] = None  # `import torch` now fails, as where mlestar is installed without [images]
from fastapi.testclient import TestClient
from mlestar.domains.tables.serve import create_table_app
bundle, rows = sys.argv[1], json.loads(sys.argv[2])
answer = TestClient(create_table_app(bundle)).post("/predict", json={"rows": rows})
print(json.dumps({"status": answer.status_code, "predictions": answer.json()["predictions"],
                  "torch_loaded": any(m.split(".")[0] in ("torch", "torchvision") and sys.modules[m] is not None
                                      for m in sys.modules)}))
"""


def test_a_table_bundle_serves_where_pytorch_is_not_installed(served: Any, client: TestClient) -> None:
    """mlestar's base install has no torch (it is the images extra): a table bundle's server never needs it."""
    import subprocess
    import sys

    rows = _rows(served, 4)
    done = subprocess.run([sys.executable, "-c", TORCHLESS, str(served[2]), json.dumps(rows)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["status"] == 200 and not out["torch_loaded"]
    assert out["predictions"] == client.post("/predict", json={"rows": rows}).json()["predictions"]
