"""End to end in a real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright).

Skipped, with the reason shown, when Chromium or Playwright is missing. Screenshots
land in test-artifacts/dashboard/; with ``MLESTAR_DOCS_SCREENSHOTS=1`` those the tutorial
shows are also written to docs/images/ (how its pictures are made: they are never drawn by hand).

Every check of what the page shows is an auto-retrying ``expect`` (or follows a
wait for that very element): pages render after their fetches resolve, so a read
right after waiting for some other element races the render. Waits are bounded by
a generous :data:`WAIT_MS`, which only ends a test that would otherwise hang.
"""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path
from typing import Any, Iterator

import pytest
from dashboard_helpers import make_runs, running_run, serving, synthetic_run, write_checkpoint, write_json

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "dashboard"
DOC_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"
DOC_SHOTS = {"01-runs-list", "02-run-overview"}  # the ones docs/tutorial.md shows


def _missing() -> str | None:
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is absent (apt-get install -y chromium)"
    if importlib.util.find_spec("playwright") is None:
        return "playwright is not installed (pip install playwright)"
    return None


WAIT_MS = 60_000  # Playwright's defaults (5 s for expect) are guesses at this machine's speed

if _missing() is None:
    from playwright.sync_api import expect

    expect.set_options(timeout=WAIT_MS)

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(_missing() is not None, reason=f"E2E skipped: {_missing()}")]
Runs = tuple[Path, str, str]


# Waits use locators: the pages' CSP forbids eval, which page.wait_for_function(string) needs.
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh page that fails the test on any script error."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(WAIT_MS)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.on("dialog", lambda dialog: errors.append(f"dialog opened: {dialog.message}"))
    yield tab
    context.close()
    assert not errors, errors


@pytest.fixture(scope="module")
def base_url(dash_runs: Runs) -> Iterator[str]:
    with serving(dash_runs[0]) as url:
        yield url


def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
    if name in DOC_SHOTS and os.environ.get("MLESTAR_DOCS_SCREENSHOTS") == "1":
        page.screenshot(path=str(DOC_IMAGES / f"dashboard-{name}.png"))


def test_list_then_run_shows_seven_stages_and_the_failed_then_passed_gate(page: Any, base_url: str,
                                                                           dash_runs: Runs) -> None:
    _, _, gated = dash_runs
    page.goto(base_url)
    expect(page.locator("table.runs tbody tr")).to_have_count(2)
    shot(page, "01-runs-list")
    page.click(f"a.run-link:text-is('{gated}')")
    expect(page.locator("svg.pipeline .stage-node")).to_have_count(7)
    expect(page.locator(".stage-node[data-stage='implementation'] .node-status")).to_have_text("passed · 2 attempts")
    edge = page.locator("svg.pipeline .loopback")
    expect(edge).to_have_attribute("data-from", "implementation")
    expect(edge).to_have_attribute("data-to", "action_planning")
    rows = page.locator("[data-testid=gates-table] tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text("failed")
    expect(rows.nth(0)).to_contain_text("increase_epochs")
    expect(rows.nth(1)).to_contain_text("passed")
    shot(page, "02-run-overview")


def _line_through(points: int) -> re.Pattern[str]:
    """An SVG path ``d`` that moves to one point and draws lines to ``points - 1`` more."""
    return re.compile(rf"^M[^ML]*(?:L[^ML]*){{{points - 1}}}$")


FOUR_POINTS = _line_through(4)  # four epochs


def test_training_curves_are_svg_charts_with_hover_values(page: Any, base_url: str, dash_runs: Runs) -> None:
    _, _, gated = dash_runs
    page.goto(f"{base_url}/runs/{gated}#implementation")
    expect(page.locator("figure.chart")).to_have_count(3)
    expect(page.locator("figure[data-chart=accuracy] path.line").first).to_have_attribute("d", FOUR_POINTS)
    page.locator("figure[data-chart=accuracy] rect.overlay").hover()
    tip = page.locator("figure[data-chart=accuracy] g.tooltip")
    expect(tip).to_have_attribute("visibility", "visible")
    expect(tip).to_contain_text("val accuracy:")
    shot(page, "03-training-curves")


def test_stage_panels_show_plots_tables_and_bundle(page: Any, base_url: str, dash_runs: Runs) -> None:
    _, plain, _ = dash_runs
    page.goto(f"{base_url}/runs/{plain}#evaluation")
    page.wait_for_selector("[data-testid=per-class] tbody tr")
    image = page.locator("img[alt='confusion_matrix.png']")
    image.scroll_into_view_if_needed()
    assert image.evaluate("img => img.decode().then(() => img.naturalWidth)") > 0
    shot(page, "04-evaluation")
    page.click("a[data-tab=refinement]")
    page.wait_for_selector("[data-testid=trials] tbody tr")
    page.click("a[data-tab=deployment]")
    page.wait_for_selector("[data-testid=parity] tbody tr")
    expect(page.locator("[data-testid=bundle]")).to_contain_text("manifest.json")
    shot(page, "05-deployment")


def test_lineage_and_audit_then_follow_an_artifact_link(page: Any, base_url: str, dash_runs: Runs) -> None:
    _, _, gated = dash_runs
    page.goto(f"{base_url}/runs/{gated}#audit")
    expect(page.locator("[data-testid=audit-verdict]")).to_have_text(re.compile(r"^\s*chain verified"))
    page.click("a[data-tab=lineage]")
    page.click("svg.lineage .artifact-node[data-path='03_action_planning/plan.json']")
    card = page.locator("[data-testid=artifact-card]")
    expect(card).to_contain_text("action_planning")
    expect(card).to_contain_text("implementation")
    shot(page, "06-lineage")
    page.click("[data-testid=lineage-table] a:text-is('03_action_planning/plan.json')")
    page.wait_for_url("**/files/03_action_planning/plan.json")
    expect(page.locator("pre").first).to_contain_text("increase_epochs (gate epochs_completed >= 4)")


def test_compare_two_runs_from_the_list(page: Any, base_url: str, dash_runs: Runs) -> None:
    page.goto(base_url)
    page.wait_for_selector("table.runs tbody tr")
    for box in page.locator("table.runs tbody input[type=checkbox]").all():
        box.check()
    page.click("#compare-button")
    expect(page.locator("[data-testid=compare-config] tr.differs[data-key=gates]")).to_have_count(1)
    expect(page.locator("[data-testid=compare-metrics] tr.differs[data-metric=epochs_completed] td.best")
           ).to_have_count(1)
    expect(page.locator("[data-testid=compare-config] tr.same").first).to_be_hidden()
    shot(page, "07-compare")


def test_run_data_is_shown_as_text_never_run_as_markup(page: Any, tmp_path: Path) -> None:
    runs_dir = tmp_path / "runs"
    run = synthetic_run(runs_dir, "xss", project="<img src=x onerror=alert(1)>")
    names = ["<script>alert(2)</script>", "<b>bold</b>", "cat"]
    write_json(run / "01_situation_analysis" / "dataset.json", {"class_names": names, "splits": {}})
    with serving(runs_dir) as url:
        page.goto(url)
        expect(page.locator("table.runs tbody tr td").nth(3)).to_have_text("<img src=x onerror=alert(1)>")
        page.goto(f"{url}/runs/xss#situation_analysis")
        expect(page.locator("[data-testid=class-names] .chip")).to_have_text(names)
        expect(page.locator("main script, main b, main img[src=x]")).to_have_count(0)
        shot(page, "08-escaping")


def test_a_running_run_updates_without_a_reload(page: Any, tmp_path: Path) -> None:
    # The page polls every few seconds (POLL_MS in run.js); how soon it shows the new epoch
    # depends on the machine, so the test waits for the update itself, bounded by WAIT_MS.
    runs_dir = tmp_path / "runs"
    run_dir = running_run(runs_dir, "live", epochs_done=2, planned=5)
    with serving(runs_dir) as url:
        page.goto(f"{url}/runs/live#implementation")
        status = page.locator("[data-testid=curve-status]")
        expect(status).to_have_text(re.compile(r"^\s*live: epoch 2 of 5"))
        expect(page.locator("figure[data-chart=loss] path.line").first).to_have_attribute("d", _line_through(2))
        write_checkpoint(run_dir, 4)
        expect(status).to_have_text(re.compile(r"^\s*live: epoch 4 of 5"))
        expect(page.locator("figure[data-chart=loss] path.line").first).to_have_attribute("d", FOUR_POINTS)
        shot(page, "09-live")


def test_500_runs_render_a_page_at_a_time(page: Any, tmp_path: Path) -> None:
    runs_dir = tmp_path / "runs"
    make_runs(runs_dir, 500)
    with serving(runs_dir) as url:  # how fast: benchmarks/dashboard_list.py, not a wall-clock bound here
        page.goto(url)
        expect(page.locator("table.runs tbody tr")).to_have_count(50)
        expect(page.locator("[data-testid=range]")).to_have_text("1–50 of 500")
        page.select_option("#filter-status", "failed")
        expect(page.locator("[data-testid=range]")).to_have_text("1–50 of 125")
        page.click("button.sort[data-sort=primary_value]")
        page.wait_for_selector("th[aria-sort=descending] button[data-sort=primary_value]")
        shot(page, "10-500-runs")


def test_a_token_in_the_link_opens_the_dashboard_and_its_api_calls(page: Any, tmp_path: Path) -> None:
    runs_dir = tmp_path / "runs"
    synthetic_run(runs_dir, "guarded")
    with serving(runs_dir, token="e2e-token") as url:
        refused = page.goto(url)
        assert refused.status == 401
        page.goto(f"{url}/?token=e2e-token")
        page.wait_for_selector("a.run-link")
        page.click("a.run-link")  # the cookie set by ?token= carries the next page and its fetches
        page.wait_for_selector("svg.pipeline .stage-node")
        assert "token" not in page.url


# The key tables of each stage of a table run, and how many rows each shows for the tiny
# breast-cancer run (30 input columns, 2 folds, 2 classes + 2 averages, 3 candidates, 4 trials).
TABLE_STAGE_ROWS = {
    "situation_analysis": {"columns-table": 30, "recommendations": 2, "class-counts": 2},
    "task_definition": {"probe": 6},
    "action_planning": {"plan-columns": 30, "plan-decisions": 2},
    "implementation": {"cv-folds": 2, "val-scores": 7, "permutation-importance": 30},
    "evaluation": {"per-class": 4, "confusion": 2, "threshold": 7, "shap-importance": 30},
    "refinement": {"candidates": 3, "trials": 4},
    "deployment": {"parity": 1, "benchmark": 4, "input-schema": 30, "drift": 30},
}


@pytest.fixture(scope="module")
def table_url(finished_table_run: tuple[Path, str]) -> Iterator[str]:
    with serving(finished_table_run[0]) as url:
        yield url


def test_a_table_run_shows_each_stage_as_tables(page: Any, table_url: str,
                                                finished_table_run: tuple[Path, str]) -> None:
    run_id = finished_table_run[1]
    for stage, tables in TABLE_STAGE_ROWS.items():
        page.goto(f"{table_url}/runs/{run_id}#{stage}")
        expect(page.locator(f".stage-panel[data-stage={stage}]")).to_have_count(1)
        for testid, rows in tables.items():
            expect(page.locator(f"[data-testid={testid}] tbody tr")).to_have_count(rows)
        shot(page, f"11-table-{stage}")
    expect(page.locator("[data-testid=parity] tbody tr")).to_contain_text("passed")
    page.goto(f"{table_url}/runs/{run_id}#implementation")
    expect(page.locator("[data-testid=learning-curve] figure.chart path.line")).to_have_count(2)
    expect(page.locator("[data-testid=cv-summary]")).to_contain_text("roc_auc:")
