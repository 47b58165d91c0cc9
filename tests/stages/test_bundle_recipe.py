"""Both domains' stage-7 bundles carry a serving recipe that needs no mlestar source tree.

The fast tests read the session's finished runs (images and tables); the slow one installs a
bundle's ``requirements.txt`` into a fresh virtual environment and serves the bundle from it.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from bundle_recipe import check_dockerfile, check_requirements, check_wheel, serve_call

from mlestar.config.catalog import stage_folder
from mlestar.tracking.container import image_name
from mlestar.utils.io import read_json

# domain -> (session fixture of a finished run, the serve function `mlestar serve` calls for it, project name)
DOMAINS = {"images": ("finished_run", "mlestar.deploy.serve.serve", "tiny"),
           "tables": ("finished_table_run", "mlestar.domains.tables.serve.serve_table", "tiny-table")}
PORT = 8000  # deployment.serve.port: the tiny configs keep the default
HEALTH_TRIES = 600  # /health polls, 0.2 s apart, before a server that never answers fails the test


@pytest.fixture(params=sorted(DOMAINS))
def bundle(request: pytest.FixtureRequest) -> tuple[str, Path, str]:
    """(domain, bundle folder, run id) of the session's finished run of each domain; read-only."""
    runs_dir, run_id = request.getfixturevalue(DOMAINS[request.param][0])
    return request.param, runs_dir / run_id / stage_folder("deployment") / "bundle", run_id


def test_the_dockerfile_runs_the_serve_command_on_all_interfaces(bundle: tuple[str, Path, str],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    domain, folder, _ = bundle
    command = check_dockerfile((folder / "Dockerfile").read_text(), PORT)
    call = serve_call(folder, command, DOMAINS[domain][1], monkeypatch)
    assert call["bundle"] == Path(".") and call["host"] == "0.0.0.0" and call["port"] == PORT


def test_requirements_install_mlestar_from_the_wheel_in_the_bundle(bundle: tuple[str, Path, str]) -> None:
    domain, folder, _ = bundle
    manifest = read_json(folder / "manifest.json")
    wheel = check_requirements(folder, manifest)
    assert wheel is not None
    check_wheel(wheel)
    pinned = (folder / "requirements.txt").read_text()
    exact = ("torch", "pillow", "onnxruntime") if domain == "images" else ("scikit-learn", "joblib", "lightgbm")
    for name in exact:
        assert re.search(rf"^{name}==", pinned, re.MULTILINE), name
    assert re.search(r"^fastapi>=", pinned, re.MULTILINE)
    assert {"requirements.txt", "Dockerfile"} <= set(manifest)


def test_the_model_card_says_how_to_run_it_in_a_container(bundle: tuple[str, Path, str]) -> None:
    domain, folder, run_id = bundle
    card = (folder / "model_card.md").read_text()
    section = card[card.index("## Run it in a container"):]
    image = image_name(DOMAINS[domain][2], run_id)
    assert f"docker build -t {image} .\ndocker run --rm -p {PORT}:{PORT} {image}" in section


# --------------------------------------------------------------------------- a clean install


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _clean_env() -> dict[str, str]:
    """This process's environment without anything that could import mlestar from elsewhere."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}


def _install(folder: Path, venv: Path) -> Path:
    """A fresh venv with the bundle's requirements installed from the bundle folder; returns its python."""
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, env=_clean_env())
    python = venv / "bin" / "python"
    done = subprocess.run([str(python), "-m", "pip", "install", "-q", "-r", "requirements.txt"], cwd=folder,
                          env=_clean_env(), capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    where = subprocess.run([str(python), "-c", "import mlestar; print(mlestar.__file__)"], cwd=folder,
                           env=_clean_env(), capture_output=True, text=True, check=True).stdout.strip()
    assert Path(where).is_relative_to(venv), where  # the wheel's mlestar, not a source tree
    return python


def _wait_healthy(server: subprocess.Popen[bytes], url: str, log: Path) -> dict[str, Any]:
    """Poll ``/health`` until it answers 200; fail when the server exits or never answers."""
    for _ in range(HEALTH_TRIES):
        if server.poll() is not None:
            pytest.fail(f"the server exited with {server.returncode} before answering /health: "
                        f"{log.read_text()[-3000:]}")
        try:
            answer = httpx.get(f"{url}/health", timeout=2)
            if answer.status_code == 200:
                return answer.json()
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail(f"/health did not answer within {HEALTH_TRIES} tries")


def _predict(domain: str, folder: Path, url: str) -> None:
    """The card's example request, answered as the card says (images) or with a class (tables)."""
    card = (folder / "model_card.md").read_text()
    if domain == "images":
        expected = json.loads(re.search(r"```json\n(.*?)\n```", card, re.DOTALL).group(1))
        with open(folder / "example.png", "rb") as image:
            answer = httpx.post(f"{url}/predict", files={"file": ("example.png", image, "image/png")}, timeout=60)
        assert answer.status_code == 200, answer.text
        assert answer.json()["label"] == expected["label"]
        return
    body = json.loads(re.search(r"-d '(\{.*\})'", card).group(1))
    answer = httpx.post(f"{url}/predict", json=body, timeout=60)
    assert answer.status_code == 200, answer.text
    (prediction,) = answer.json()["predictions"]
    assert prediction["prediction"] in read_json(folder / "schema.json")["class_names"]


@pytest.mark.slow
def test_a_clean_venv_serves_the_bundle_from_its_requirements(bundle: tuple[str, Path, str], tmp_path: Path) -> None:
    domain, folder, _ = bundle
    python = _install(folder, tmp_path / "venv")
    port, log = _free_port(), tmp_path / "server.log"
    with open(log, "wb") as sink:
        server = subprocess.Popen([str(python.parent / "mlestar"), "serve", ".", "--host", "127.0.0.1", "--port",
                                   str(port)], cwd=folder, env=_clean_env(), stdout=sink, stderr=subprocess.STDOUT)
    try:
        _wait_healthy(server, f"http://127.0.0.1:{port}", log)
        _predict(domain, folder, f"http://127.0.0.1:{port}")
    finally:
        server.terminate()
        server.wait(timeout=30)
