"""``mlestar dashboard`` as a user starts it: a real process serving a runs folder on loopback."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from dashboard_helpers import synthetic_run


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(url: str, seconds: float = 30) -> httpx.Response:
    deadline = time.monotonic() + seconds
    while True:
        try:
            return httpx.get(url, timeout=2)
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_the_command_serves_the_runs_folder_on_loopback(tmp_path: Path) -> None:
    synthetic_run(tmp_path / "runs", "one")
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "mlestar", "dashboard", str(tmp_path / "runs"),
                                "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        response = wait_for(f"http://127.0.0.1:{port}/api/runs")
        assert response.status_code == 200 and response.json()["runs"][0]["run_id"] == "one"
        assert httpx.get(f"http://127.0.0.1:{port}/").headers["content-type"].startswith("text/html")
        rebound = httpx.get(f"http://127.0.0.1:{port}/api/runs", headers={"Host": "evil.example"})
        assert rebound.status_code == 400  # DNS rebinding: only loopback host names are answered
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=10)
    assert f"at http://127.0.0.1:{port}/" in output
