"""`mlestar serve` really listens on 127.0.0.1 and answers every route, micro-batched."""

import base64
import io
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from mlestar.cli.app import app as cli_app
from prometheus_text import metric


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _png(value: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((8, 8), value, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _wait_ready(base: str, proc: subprocess.Popen) -> httpx.Response:
    deadline = time.time() + 60
    while True:
        try:
            ready = httpx.get(f"{base}/ready", timeout=2)
            if ready.status_code == 200:
                return ready
            assert ready.status_code == 503 and ready.json()["kind"] == "not_ready"
        except httpx.TransportError:
            pass
        assert proc.poll() is None and time.time() < deadline, "server did not come up"
        time.sleep(0.2)


def test_serve_a_bundle_over_http(finished_run: tuple[Path, str]) -> None:
    runs_dir, run_id = finished_run
    bundle = runs_dir / run_id / "07_deployment" / "bundle"
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "mlestar", "serve", str(bundle), "--port", str(port),
                             "--max-batch-size", "4", "--max-wait-ms", "20"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        assert _wait_ready(base, proc).json() == {"ready": True}
        health = httpx.get(f"{base}/health", timeout=2)
        assert health.status_code == 200 and health.json()["status"] == "ok" and health.json()["ready"] is True
        answer = httpx.post(f"{base}/predict", files={"file": ("x.png", _png(200), "image/png")}, timeout=10)
        assert answer.status_code == 200
        body = answer.json()
        assert len(body["probabilities"]) == 10 and len(body["top_k"]) == 5
        assert abs(sum(body["probabilities"].values()) - 1) < 1e-4
        assert body["label"] in body["probabilities"] and body["model_version"] == run_id
        as_json = httpx.post(f"{base}/predict", json={"image": base64.b64encode(_png(200)).decode()}, timeout=10)
        assert as_json.json()["probabilities"] == body["probabilities"]
        batch = httpx.post(f"{base}/predict/batch", json=[base64.b64encode(_png(v)).decode() for v in (0, 200)],
                           timeout=10)
        assert [p["label"] for p in batch.json()["predictions"]][1] == body["label"]
        with ThreadPoolExecutor(8) as pool:  # concurrent clients: the server groups them, at most 4 per call
            statuses = list(pool.map(lambda _: httpx.post(f"{base}/predict", files={
                "file": ("x.png", _png(100), "image/png")}, timeout=10).status_code, range(16)))
        assert statuses == [200] * 16
        bad = httpx.post(f"{base}/predict", content=b"nope", headers={"content-type": "text/plain"}, timeout=10)
        assert bad.status_code == 415 and bad.json()["kind"] == "unsupported_media_type"
        metrics = httpx.get(f"{base}/metrics", timeout=2).text
        assert metric(metrics, "mlestar_requests_total", route="/predict", status="200") == 18
        assert metric(metrics, "mlestar_errors_total", kind="unsupported_media_type") == 1
        assert metric(metrics, "mlestar_batch_size_sum") == 20
        assert metric(metrics, "mlestar_batch_size_bucket", le="4.0") == metric(metrics, "mlestar_batch_size_count")
        assert metric(metrics, "mlestar_drift_score") >= 0
        assert httpx.get(f"{base}/docs", timeout=2).status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_serve_help_lists_the_batching_options() -> None:
    from typer.testing import CliRunner

    result = CliRunner().invoke(cli_app, ["serve", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for option in ("--runtime", "--host", "--port", "--max-batch-size", "--max-wait-ms"):
        assert option in result.output
