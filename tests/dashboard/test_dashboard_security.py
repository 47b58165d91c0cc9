"""Security: read-only routes, the token, the bind check, confined downloads, escaping."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from dashboard_helpers import synthetic_run, write_json
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from mlestar.cli.app import app as cli_app
from mlestar.dashboard import create_app
from mlestar.dashboard.files import artifact_path, list_files, resolve_run
from mlestar.dashboard.pages import STATIC_DIR
from mlestar.dashboard.security import COOKIE, check_bind, is_loopback
from mlestar.errors import MlestarError, RunNotFoundError

TOKEN = "s3cret-token"


@pytest.fixture
def runs_dir(tmp_path: Path) -> Path:
    """A runs folder with one synthetic run, a file outside it, and symlinks that point in and out."""
    runs = tmp_path / "runs"
    run = synthetic_run(runs, "r1")
    (run / "05_evaluation").mkdir()
    (run / "05_evaluation" / "report.md").write_text("# report\n")
    (tmp_path / "secret.txt").write_text("outside the runs folder")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "key.txt").write_text("also outside")
    os.symlink(tmp_path / "secret.txt", run / "leak.txt")
    os.symlink(tmp_path / "outside", run / "leakdir")
    os.symlink(run / "05_evaluation" / "report.md", run / "inside-link.md")
    return runs


def test_every_route_only_reads() -> None:
    app = create_app(Path("runs"))
    methods = {m for route in app.routes for m in getattr(route, "methods", None) or ()}
    assert methods <= {"GET", "HEAD"}


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_writing_methods_are_refused(runs_dir: Path, method: str) -> None:
    client = TestClient(create_app(runs_dir))
    for url in ("/api/runs", "/api/runs/r1", "/runs/r1/files/run.json", "/static/dashboard.css"):
        response = client.request(method, url)
        assert response.status_code == 405 and response.json()["error"] == "the dashboard is read-only"
    assert (runs_dir / "r1" / "run.json").exists()


@pytest.mark.parametrize("path", [
    "%2e%2e/secret.txt", "..%2F..%2Fsecret.txt", "05_evaluation/%2e%2e/%2e%2e/%2e%2e/secret.txt",
    "%2Fetc%2Fpasswd", "/etc/passwd", "leak.txt", "leakdir/key.txt", "05_evaluation", "missing.json",
    "05_evaluation%5C..%5C..%5Csecret.txt", "run.json%00.png",
])
def test_downloads_outside_the_runs_folder_are_404(runs_dir: Path, path: str) -> None:
    response = TestClient(create_app(runs_dir)).get(f"/runs/r1/files/{path}")
    assert response.status_code == 404
    assert "outside" not in response.text


def test_downloads_inside_are_served_sandboxed(runs_dir: Path) -> None:
    client = TestClient(create_app(runs_dir))
    report = client.get("/runs/r1/files/05_evaluation/report.md")
    assert report.status_code == 200 and report.text == "# report\n"
    assert report.headers["content-type"].startswith("text/plain")
    assert report.headers["content-security-policy"].startswith("sandbox")
    assert report.headers["x-content-type-options"] == "nosniff"
    assert client.get("/runs/r1/files/inside-link.md").text == "# report\n"  # a link that stays inside


@pytest.mark.parametrize("rel", ["../secret.txt", "/etc/passwd", "leak.txt", "leakdir/key.txt", "", "a\\..\\b"])
def test_artifact_path_refuses_escapes(runs_dir: Path, rel: str) -> None:
    with pytest.raises(RunNotFoundError):
        artifact_path(runs_dir, runs_dir / "r1", rel)


def test_listing_leaves_out_links_that_escape(runs_dir: Path) -> None:
    paths = {f["path"] for f in list_files(runs_dir, runs_dir / "r1")}
    assert {"run.json", "05_evaluation/report.md", "inside-link.md"} <= paths
    assert not {"leak.txt", "leakdir/key.txt"} & paths


def test_run_ids_cannot_leave_the_runs_folder(runs_dir: Path, tmp_path: Path) -> None:
    synthetic_run(tmp_path / "elsewhere", "foreign")
    os.symlink(tmp_path / "elsewhere" / "foreign", runs_dir / "foreign")
    for run_id in ("..", ".", "../runs/r1", "foreign", "r1/../r1", ""):
        with pytest.raises(RunNotFoundError):
            resolve_run(runs_dir, run_id)
    client = TestClient(create_app(runs_dir))
    assert client.get("/api/runs/foreign").status_code == 404
    assert client.get("/api/runs/%2e%2e").status_code == 404


@pytest.mark.parametrize("headers, params, status", [
    ({}, {}, 401),
    ({"Authorization": "Bearer wrong"}, {}, 401),
    ({}, {"token": "wrong"}, 401),
    ({"Authorization": f"Basic {TOKEN}"}, {}, 401),
    ({"Authorization": f"Bearer {TOKEN}"}, {}, 200),
    ({}, {"token": TOKEN}, 200),
])
def test_token_is_checked_on_every_request(runs_dir: Path, headers: dict[str, str], params: dict[str, str],
                                           status: int) -> None:
    client = TestClient(create_app(runs_dir, token=TOKEN))
    for url in ("/", "/api/runs", "/api/runs/r1", "/static/js/main.js", "/runs/r1/files/run.json"):
        response = client.get(url, headers=headers, params=params)
        assert response.status_code == status, url
        if status == 401:
            assert "token" in response.json()["error"] and TOKEN not in response.text


def test_token_in_the_query_sets_a_cookie_that_then_suffices(runs_dir: Path) -> None:
    client = TestClient(create_app(runs_dir, token=TOKEN))
    first = client.get("/", params={"token": TOKEN})
    cookie = first.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}={TOKEN}") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert client.get("/api/runs").status_code == 200  # the client kept the cookie
    client.cookies.set(COOKIE, "wrong")
    assert client.get("/api/runs").status_code == 401


def test_loopback_binding_only_answers_loopback_host_names(runs_dir: Path) -> None:
    client = TestClient(create_app(runs_dir, allowed_hosts=("localhost", "127.0.0.1", "::1")),
                        base_url="http://127.0.0.1:8050")
    assert client.get("/api/runs").status_code == 200
    assert client.get("/api/runs", headers={"Host": "localhost:8050"}).status_code == 200
    assert client.get("/api/runs", headers={"Host": "attacker.example:8050"}).status_code == 400


@pytest.mark.parametrize("host, loopback", [("127.0.0.1", True), ("localhost", True), ("::1", True),
                                            ("[::1]", True), ("127.0.0.2", True), ("0.0.0.0", False),
                                            ("192.168.1.5", False), ("::", False), ("example.com", False)])
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_non_loopback_needs_a_token() -> None:
    check_bind("127.0.0.1", None)
    check_bind("0.0.0.0", TOKEN)
    with pytest.raises(MlestarError, match="without a token"):
        check_bind("0.0.0.0", None)
    with pytest.raises(MlestarError, match="empty"):
        check_bind("127.0.0.1", "  ")


def test_cli_refuses_a_public_host_without_a_token(runs_dir: Path) -> None:
    result = CliRunner().invoke(cli_app, ["dashboard", str(runs_dir), "--host", "0.0.0.0"])
    assert result.exit_code == 2
    assert "refusing to serve the dashboard on 0.0.0.0 without a token" in result.output
    assert "Traceback" not in result.output


def test_cli_refuses_a_missing_runs_folder(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli_app, ["dashboard", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "does not exist" in result.output


def test_pages_carry_a_strict_content_security_policy(runs_dir: Path) -> None:
    response = TestClient(create_app(runs_dir)).get("/")
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy and "object-src 'none'" in policy
    assert response.headers["x-frame-options"] == "DENY"


def test_run_data_never_reaches_html_and_scripts_never_parse_markup(tmp_path: Path) -> None:
    runs_dir = tmp_path / "runs"
    run = synthetic_run(runs_dir, "x", project="<script>alert(1)</script>")
    write_json(run / "01_situation_analysis" / "dataset.json", {"class_names": ["<script>alert(2)</script>"]})
    client = TestClient(create_app(runs_dir))
    for url in ("/", "/runs/x", "/compare"):
        assert "alert(" not in client.get(url).text  # the HTML shell is static: data arrives as JSON only
    panel = client.get("/api/runs/x/stages/situation_analysis").json()
    assert panel["json"]["dataset.json"]["class_names"] == ["<script>alert(2)</script>"]
    scripts = "\n".join(p.read_text() for p in (STATIC_DIR / "js").glob("*.js"))
    assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(|new Function", scripts)


def test_no_asset_is_fetched_from_the_network() -> None:
    for path in STATIC_DIR.rglob("*"):
        if path.is_file():
            text = path.read_text()
            assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", text), path
            assert not re.search(r"@import|url\(\s*[\"']?(https?:)?//", text), path


def test_openapi_is_served_but_no_cdn_docs(runs_dir: Path) -> None:
    client = TestClient(create_app(runs_dir))
    assert "/api/runs" in client.get("/api/openapi.json").json()["paths"]
    assert client.get("/docs").status_code == 404
