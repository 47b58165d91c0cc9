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


# Bounds a hang only: the command starts in seconds, but a loaded 2-core CI machine can be many times slower.
START_DEADLINE_S = 120.0


def wait_for(url: str, process: subprocess.Popen) -> httpx.Response:
    """GET ``url`` once the server listens; fail at once if the process exits first."""
    deadline = time.monotonic() + START_DEADLINE_S
    while True:
        try:
            return httpx.get(url, timeout=START_DEADLINE_S)
        except httpx.ConnectError:  # not listening yet
            assert process.poll() is None, f"the dashboard exited with {process.returncode} before it listened"
            assert time.monotonic() < deadline, f"the dashboard did not listen within {START_DEADLINE_S:.0f} s"
            time.sleep(0.1)


def test_the_command_serves_the_runs_folder_on_loopback(tmp_path: Path) -> None:
    synthetic_run(tmp_path / "runs", "one")
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "mlestar", "dashboard", str(tmp_path / "runs"),
                                "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        response = wait_for(f"http://127.0.0.1:{port}/api/runs", process)
        assert response.status_code == 200 and response.json()["runs"][0]["run_id"] == "one"
        page = httpx.get(f"http://127.0.0.1:{port}/", timeout=START_DEADLINE_S)
        assert page.headers["content-type"].startswith("text/html")
        rebound = httpx.get(f"http://127.0.0.1:{port}/api/runs", headers={"Host": "evil.example"},
                            timeout=START_DEADLINE_S)
        assert rebound.status_code == 400  # DNS rebinding: only loopback host names are answered
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=START_DEADLINE_S)
    assert f"at http://127.0.0.1:{port}/" in output
