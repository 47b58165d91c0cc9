"""`mlestar serve` really listens on 127.0.0.1 and answers /health and /predict."""

import io
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_serve_a_bundle_over_http(finished_run: tuple[Path, str]) -> None:
    runs_dir, run_id = finished_run
    bundle = runs_dir / run_id / "07_deployment" / "bundle"
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "mlestar", "serve", str(bundle), "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                health = httpx.get(f"{base}/health", timeout=2)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.time() < deadline, "server did not come up"
                time.sleep(0.2)
        assert health.status_code == 200 and health.json()["status"] == "ok"
        buffer = io.BytesIO()
        Image.fromarray(np.full((8, 8), 200, dtype=np.uint8)).save(buffer, format="PNG")
        answer = httpx.post(f"{base}/predict", files={"file": ("x.png", buffer.getvalue(), "image/png")}, timeout=10)
        assert answer.status_code == 200
        body = answer.json()
        assert len(body["probabilities"]) == 10
        assert abs(sum(body["probabilities"].values()) - 1) < 1e-4
        assert body["label"] in body["probabilities"] and body["model_version"] == run_id
    finally:
        proc.terminate()
        proc.wait(timeout=10)
