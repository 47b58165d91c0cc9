"""End to end in a real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright).

Skipped, with the reason shown, when Chromium or Playwright is missing. Screenshots
land in test-artifacts/dashboard/.
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
from dashboard_helpers import make_runs, running_run, serving, synthetic_run, write_checkpoint, write_json

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "dashboard"


def _missing() -> str | None:
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is absent (apt-get install -y chromium)"
    if importlib.util.find_spec("playwright") is None:
        return "playwright is not installed (pip install playwright)"
    return None


if _missing() is None:
    from playwright.sync_api import expect

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


def test_list_then_run_shows_seven_stages_and_the_failed_then_passed_gate(page: Any, base_url: str,
                                                                           dash_runs: Runs) -> None:
    _, _, gated = dash_runs
    page.goto(base_url)
    page.wait_for_selector("table.runs tbody tr")
    assert page.locator("table.runs tbody tr").count() == 2
    shot(page, "01-runs-list")
    page.click(f"a.run-link:text-is('{gated}')")
    page.wait_for_selector("svg.pipeline .stage-node")
    assert page.locator("svg.pipeline .stage-node").count() == 7
    status = page.locator(".stage-node[data-stage='implementation'] .node-status").text_content()
    assert status == "passed · 2 attempts"
    edge = page.locator("svg.pipeline .loopback")
    assert (edge.get_attribute("data-from"), edge.get_attribute("data-to")) == ("implementation", "action_planning")
    rows = page.locator("[data-testid=gates-table] tbody tr")
    assert rows.count() == 2
    assert "failed" in rows.nth(0).text_content() and "increase_epochs" in rows.nth(0).text_content()
    assert "passed" in rows.nth(1).text_content()
    shot(page, "02-run-overview")


def test_training_curves_are_svg_charts_with_hover_values(page: Any, base_url: str, dash_runs: Runs) -> None:
    _, _, gated = dash_runs
    page.goto(f"{base_url}/runs/{gated}#implementation")
    page.wait_for_selector("figure.chart svg path.line")
    assert page.locator("figure.chart").count() == 3
    path = page.locator("figure[data-chart=accuracy] path.line").first.get_attribute("d")
    assert path.startswith("M") and path.count("L") == 3  # four epochs
    page.locator("figure[data-chart=accuracy] rect.overlay").hover()
    tip = page.locator("figure[data-chart=accuracy] g.tooltip")
    assert tip.get_attribute("visibility") == "visible" and "val accuracy:" in tip.text_content()
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
    assert "manifest.json" in page.locator("[data-testid=bundle]").text_content()
    shot(page, "05-deployment")


def test_lineage_and_audit_then_follow_an_artifact_link(page: Any, base_url: str, dash_runs: Runs) -> None:
    _, _, gated = dash_runs
    page.goto(f"{base_url}/runs/{gated}#audit")
    page.wait_for_selector("[data-testid=audit-verdict]")
    assert page.locator("[data-testid=audit-verdict]").text_content().startswith("chain verified")
    page.click("a[data-tab=lineage]")
    page.wait_for_selector("svg.lineage .artifact-node")
    page.click("svg.lineage .artifact-node[data-path='03_action_planning/plan.json']")
    card = page.locator("[data-testid=artifact-card]")
    assert "action_planning" in card.text_content() and "implementation" in card.text_content()
    shot(page, "06-lineage")
    page.click("[data-testid=lineage-table] a:text-is('03_action_planning/plan.json')")
    page.wait_for_url("**/files/03_action_planning/plan.json")
    assert "increase_epochs (gate epochs_completed >= 4)" in page.locator("pre").first.text_content()


def test_compare_two_runs_from_the_list(page: Any, base_url: str, dash_runs: Runs) -> None:
    page.goto(base_url)
    page.wait_for_selector("table.runs tbody tr")
    for box in page.locator("table.runs tbody input[type=checkbox]").all():
        box.check()
    page.click("#compare-button")
    page.wait_for_selector("[data-testid=compare-config]")
    assert page.locator("[data-testid=compare-config] tr.differs[data-key=gates]").count() == 1
    assert page.locator("[data-testid=compare-metrics] tr.differs[data-metric=epochs_completed] td.best").count() == 1
    assert page.locator("[data-testid=compare-config] tr.same").first.is_hidden()
    shot(page, "07-compare")


def test_run_data_is_shown_as_text_never_run_as_markup(page: Any, tmp_path: Path) -> None:
    runs_dir = tmp_path / "runs"
    run = synthetic_run(runs_dir, "xss", project="<img src=x onerror=alert(1)>")
    names = ["<script>alert(2)</script>", "<b>bold</b>", "cat"]
    write_json(run / "01_situation_analysis" / "dataset.json", {"class_names": names, "splits": {}})
    with serving(runs_dir) as url:
        page.goto(url)
        page.wait_for_selector("table.runs tbody tr")
        assert page.locator("table.runs tbody tr td").nth(3).text_content() == "<img src=x onerror=alert(1)>"
        page.goto(f"{url}/runs/xss#situation_analysis")
        page.wait_for_selector("[data-testid=class-names] .chip")
        assert page.locator("[data-testid=class-names] .chip").all_text_contents() == names
        assert page.locator("main script, main b, main img[src=x]").count() == 0
        shot(page, "08-escaping")


def test_a_running_run_updates_within_seconds(page: Any, tmp_path: Path) -> None:
    runs_dir = tmp_path / "runs"
    run_dir = running_run(runs_dir, "live", epochs_done=2, planned=5)
    with serving(runs_dir) as url:
        page.goto(f"{url}/runs/live#implementation")
        page.wait_for_selector("[data-testid=curve-status]")
        assert page.locator("[data-testid=curve-status]").text_content().startswith("live: epoch 2 of 5")
        write_checkpoint(run_dir, 4)
        started = time.monotonic()
        expect(page.locator("[data-testid=curve-status]")).to_contain_text("live: epoch 4 of 5", timeout=8000)
        assert time.monotonic() - started < 8
        path = page.locator("figure[data-chart=loss] path.line").first.get_attribute("d")
        assert path.count("L") == 3
        shot(page, "09-live")


def test_500_runs_render_a_page_at_a_time(page: Any, tmp_path: Path) -> None:
    runs_dir = tmp_path / "runs"
    make_runs(runs_dir, 500)
    with serving(runs_dir) as url:
        started = time.monotonic()
        page.goto(url)
        page.wait_for_selector("table.runs tbody tr")
        elapsed = time.monotonic() - started
        assert page.locator("table.runs tbody tr").count() == 50
        assert page.locator("[data-testid=range]").text_content() == "1–50 of 500"
        page.select_option("#filter-status", "failed")
        expect(page.locator("[data-testid=range]")).to_have_text("1–50 of 125")
        page.click("button.sort[data-sort=primary_value]")
        page.wait_for_selector("th[aria-sort=descending] button[data-sort=primary_value]")
        assert elapsed < 5
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
