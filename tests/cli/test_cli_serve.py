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


# Deadlines only bound a hang: starting (importing torch, loading and warming the model) takes
# seconds, a request milliseconds, but a loaded 2-core CI machine can be many times slower.
START_DEADLINE_S = 120.0
REQUEST_TIMEOUT_S = 60.0


def _wait_ready(client: httpx.Client, proc: subprocess.Popen) -> httpx.Response:
    """Poll ``/ready`` until it answers 200: the port is bound and the warm-up is done."""
    deadline = time.monotonic() + START_DEADLINE_S
    while True:
        try:
            ready = client.get("/ready")
            if ready.status_code == 200:
                return ready
            assert ready.status_code == 503 and ready.json()["kind"] == "not_ready"
        except httpx.ConnectError:  # not listening yet
            pass
        assert proc.poll() is None, f"the server exited with {proc.returncode} before it was ready"
        assert time.monotonic() < deadline, f"the server was not ready after {START_DEADLINE_S:.0f} s"
        time.sleep(0.1)


def test_serve_a_bundle_over_http(finished_run: tuple[Path, str]) -> None:
    runs_dir, run_id = finished_run
    bundle = runs_dir / run_id / "07_deployment" / "bundle"
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "mlestar", "serve", str(bundle), "--port", str(port),
                             "--max-batch-size", "4", "--max-wait-ms", "20"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=REQUEST_TIMEOUT_S) as client:
            _check_every_route(client, proc, run_id)
    finally:
        proc.terminate()
        proc.wait(timeout=REQUEST_TIMEOUT_S)


def _check_every_route(client: httpx.Client, proc: subprocess.Popen, run_id: str) -> None:
    assert _wait_ready(client, proc).json() == {"ready": True}
    health = client.get("/health")
    assert health.status_code == 200 and health.json()["status"] == "ok" and health.json()["ready"] is True
    answer = client.post("/predict", files={"file": ("x.png", _png(200), "image/png")})
    assert answer.status_code == 200
    body = answer.json()
    assert len(body["probabilities"]) == 10 and len(body["top_k"]) == 5
    assert abs(sum(body["probabilities"].values()) - 1) < 1e-4
    assert body["label"] in body["probabilities"] and body["model_version"] == run_id
    as_json = client.post("/predict", json={"image": base64.b64encode(_png(200)).decode()})
    assert as_json.json()["probabilities"] == body["probabilities"]
    batch = client.post("/predict/batch", json=[base64.b64encode(_png(v)).decode() for v in (0, 200)])
    assert [p["label"] for p in batch.json()["predictions"]][1] == body["label"]
    with ThreadPoolExecutor(8) as pool:  # concurrent clients: the server groups them, at most 4 per call
        statuses = list(pool.map(lambda _: client.post("/predict", files={
            "file": ("x.png", _png(100), "image/png")}).status_code, range(16)))
    assert statuses == [200] * 16
    bad = client.post("/predict", content=b"nope", headers={"content-type": "text/plain"})
    assert bad.status_code == 415 and bad.json()["kind"] == "unsupported_media_type"
    # Counted before the next request is read: the server's middleware records a response on the
    # event-loop step that sends it, so /metrics already includes every answer received above.
    metrics = client.get("/metrics").text
    assert metric(metrics, "mlestar_requests_total", route="/predict", status="200") == 18
    assert metric(metrics, "mlestar_errors_total", kind="unsupported_media_type") == 1
    assert metric(metrics, "mlestar_batch_size_sum") == 20
    assert metric(metrics, "mlestar_batch_size_bucket", le="4.0") == metric(metrics, "mlestar_batch_size_count")
    assert metric(metrics, "mlestar_drift_score") >= 0
    assert metric(metrics, "mlestar_queue_depth") == 0
    assert client.get("/docs").status_code == 200


def test_serve_help_lists_the_batching_options() -> None:
    from typer.testing import CliRunner

    result = CliRunner().invoke(cli_app, ["serve", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for option in ("--runtime", "--host", "--port", "--max-batch-size", "--max-wait-ms"):
        assert option in result.output
