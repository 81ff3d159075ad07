"""The dashboard in a real browser (Debian's Chromium through Playwright) against a live ``tradelab serve`` and
``tradelab worker`` on SQLite: the token prompt, an env config edited with an invalid value (the server's error
shown at its field), fixed and saved; a tiny experiment launched on the local backend and followed live
without reloading; its run's equity chart drawn; two runs compared; a run re-evaluated on the newest bars, its
out-of-sample record arriving live, and watched. Screenshots go to ``tests/e2e/screenshots/`` (git-ignored)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_control_plane import live  # noqa: F401  # the fixture: serve + worker over SYN/1m
from tests.experiments.runs import tiny_config

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
WEB = ROOT / "frontend" / "dist" / "index.html"
SHOTS = Path(__file__).parent / "screenshots"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (make test installs it)"),
    pytest.mark.skipif(not WEB.exists(), reason="the dashboard is not built (make setup builds frontend/dist)"),
]


@dataclass
class Lab:
    """The live control plane, its admin token, and an API client."""

    url: str
    token: str
    api: httpx.Client


@pytest.fixture
def lab(live: tuple[str, str]) -> Lab:  # noqa: F811  # pytest injects the imported fixture
    """The live control plane (see ``live``) with SYN/1m registered, an env config v1 and a tiny experiment."""
    url, token = live
    api = httpx.Client(base_url=f"{url}/api", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    api.post("/datasets/register", json={"symbol": "SYN", "timeframe": "1m"}).raise_for_status()
    config = tiny_config().model_dump(mode="json", by_alias=True)
    api.post("/env-configs", json={"name": "tiny-env", "config": config["env"]}).raise_for_status()
    api.post("/experiments", json={"config": config}).raise_for_status()
    return Lab(url, token, api)


@pytest.fixture
def page(lab: Lab) -> Iterator[object]:
    """A Chromium page on the dashboard."""
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        page.set_default_timeout(20_000)
        try:
            yield page
        finally:
            browser.close()


def shot(page: object, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)  # type: ignore[attr-defined]


def test_the_dashboard_end_to_end_in_a_real_browser(lab: Lab, page: object) -> None:
    from playwright.sync_api import Page, expect

    assert isinstance(page, Page)
    # no token yet: the token prompt, not a blank page
    page.goto(lab.url + "/")
    expect(page.get_by_test_id("token-prompt")).to_be_visible()
    page.get_by_test_id("token-input").fill("tl_wrong")
    page.get_by_test_id("token-submit").click()
    expect(page.get_by_test_id("token-rejected")).to_be_visible()
    page.get_by_test_id("token-input").fill(lab.token)
    page.get_by_test_id("token-submit").click()
    expect(page.get_by_test_id("runs-by-state")).to_be_visible()
    shot(page, "01-dashboard")

    # an env config edited with a value only the server can refuse: the error shows at its field
    page.goto(lab.url + "/env-configs/tiny-env")
    tool = page.locator("#root_features_0_tool")
    expect(tool).to_have_value("log_return")
    tool.fill("no_such_tool")
    page.get_by_test_id("env-save").click()
    error = page.locator('[data-testid="field-error"][data-field="root_features_0_tool"]')
    expect(error).to_contain_text("no tool named 'no_such_tool'")
    shot(page, "02-env-config-error")
    tool.fill("log_return")
    page.locator("#root_window").fill("12")
    page.get_by_test_id("env-save").click()
    expect(page.get_by_test_id("env-versions")).to_contain_text("v2")
    versions = lab.api.get("/env-configs/tiny-env/versions").json()["data"]
    assert [v["version"] for v in versions] == [1, 2] and versions[1]["config"]["window"] == 12
    shot(page, "03-env-config-saved")

    # launch a tiny experiment on the local backend; its state changes live, without a reload
    page.goto(lab.url + "/experiments")
    page.get_by_test_id("experiment-name").first.click()
    page.evaluate("window.__notReloaded = true")
    run_ids = []
    for _ in range(2):  # two runs, to compare them
        page.get_by_test_id("launch-button").click()
        dialog = page.get_by_role("dialog", name="Launch a run")
        expect(dialog).to_be_visible()
        expect(dialog.get_by_role("textbox", name="Backend")).to_have_value(re.compile(r"^local"))
        page.get_by_test_id("launch-submit").click()
        expect(dialog).to_be_hidden()
    rows = page.get_by_test_id("run-row")
    expect(rows).to_have_count(2)
    run_ids = [int(rows.nth(i).get_attribute("data-id") or 0) for i in range(2)]
    first_state = rows.nth(0).get_by_test_id("run-state").get_attribute("data-state")
    assert first_state in ("queued", "starting", "running")
    shot(page, "04-runs-launched")
    for row in (rows.nth(0), rows.nth(1)):
        expect(row.get_by_test_id("run-state")).to_have_attribute("data-state", "succeeded", timeout=240_000)
    assert page.evaluate("window.__notReloaded") is True  # the states arrived over the live stream

    # the run's detail: the equity chart is drawn with the agent's and the baselines' series
    rows.nth(0).get_by_role("button", name=f"#{run_ids[0]}").click()
    chart = page.get_by_test_id("equity-chart")
    expect(chart.locator("canvas").first).to_be_visible()
    expect(chart).not_to_have_attribute("data-points", "0")
    equity = lab.api.get(f"/runs/{run_ids[0]}/equity").json()
    assert int(chart.get_attribute("data-series") or 0) == len(equity["equity"]) >= 2
    assert int(chart.get_attribute("data-points") or 0) == len(equity["ts"])
    shot(page, "05-run-detail")

    # compare the two runs: metrics side by side, equity curves overlaid
    for run_id in run_ids:
        page.get_by_label(f"pick run {run_id}").check()
    page.get_by_test_id("compare-runs-button").click()
    expect(page.get_by_test_id("compare-table")).to_contain_text(f"#{run_ids[1]}")
    compare = page.get_by_test_id("compare-equity-chart")
    expect(compare.locator("canvas").first).to_be_visible()
    expect(compare).to_have_attribute("data-series", "2")
    shot(page, "06-compare")

    # out of sample: re-evaluate the first run now (an evaluate run on the worker), see its record arrive live;
    # then watch it daily
    page.goto(f"{lab.url}/runs/{run_ids[0]}")
    page.get_by_role("tab", name="Out-of-sample").click()
    expect(page.get_by_test_id("out-of-sample")).to_contain_text("Not re-evaluated yet")
    page.get_by_test_id("reevaluate-days").fill("1")
    page.get_by_test_id("reevaluate-button").click()
    oos = page.get_by_test_id("oos-chart")
    expect(oos.locator("canvas").first).to_be_visible(timeout=120_000)
    expect(oos).not_to_have_attribute("data-points", "0")
    sharpe = lab.api.get(f"/runs/{run_ids[0]}/metrics/oos/sharpe").json()
    assert len(sharpe["values"]) == 1
    expect(page.get_by_test_id("oos-latest")).to_contain_text("sharpe")
    page.get_by_test_id("watch-save").click()
    expect(page.get_by_test_id("watch-remove")).to_be_visible()
    assert lab.api.get(f"/runs/{run_ids[0]}/watch").json()["run_id"] == run_ids[0]
    shot(page, "07-out-of-sample")
