"""The dashboard in a real headless Chromium, driven by Playwright, while a real experiment
runs in another process and `legato serve` runs as the real console script.

Skipped when Playwright or Debian's chromium is missing, unless LEGATO_REQUIRE_BROWSER=1
(as CI sets it): then those are failures. The tests also write the screenshots of
docs/how-to/dashboard.md, so the pictures in the docs are of the dashboard as it is.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from support.cli import alive
from support.waiting import job_state, wait_until
from support.web_support import make_web_project, serving, start_sweep, stop

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX process groups")

CHROMIUM = os.environ.get("LEGATO_CHROMIUM", "/usr/bin/chromium")
IMAGES = Path(__file__).parent.parent / "docs" / "images"
TIMEOUT = 60_000  # ms: a loaded 2-core machine runs the experiment's jobs slowly


def _unavailable(why: str) -> None:
    if os.environ.get("LEGATO_REQUIRE_BROWSER") == "1":
        pytest.fail(f"LEGATO_REQUIRE_BROWSER=1 but {why}")
    pytest.skip(why)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install playwright)")
    if not os.path.exists(CHROMIUM):
        _unavailable(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    pytest.importorskip("starlette")
    pytest.importorskip("uvicorn")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Live:
    base: str
    url: str
    workdir: Path
    gate: Path
    experiment: subprocess.Popen[str]


@pytest.fixture(scope="module")
def live(browser: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """A sweep running in its own process (2 Train jobs waiting for `gate`, one that fails,
    3 Evaluate, a Sleep that runs until killed), and `legato serve` on its workdir."""
    root = tmp_path_factory.mktemp("web")
    project = make_web_project(root / "project")
    workdir = root / "runs"
    gate = root / "gate"
    experiment = start_sweep(project, workdir, gate)
    try:
        wait_until(lambda: (workdir / "experiments").is_dir(), 90, "the experiment to start")
        with serving(workdir) as (url, _):
            yield Live(url.split("/?")[0], url, workdir, gate, experiment)
    finally:
        gate.touch()
        stop(experiment)


@pytest.fixture()
def page(browser: Any, live: Live) -> Iterator[Any]:
    # Playwright's waits evaluate strings, which the pages' Content-Security-Policy forbids:
    # these tests lift it; test_pages_keep_to_their_content_security_policy keeps it.
    context = browser.new_context(viewport={"width": 1400, "height": 820}, bypass_csp=True)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(live.url)  # the token, once: a cookie from then on
    page.wait_for_selector("#experiments")
    yield page
    context.close()
    assert errors == [], errors


def screenshot(page: Any, name: str) -> None:
    IMAGES.mkdir(parents=True, exist_ok=True)
    # Down to the end of the content, not the empty rest of the window.
    bottom = page.evaluate(
        "Math.max(...[...document.querySelectorAll('main > *')]"
        ".map(e => e.getBoundingClientRect().bottom))"
    )
    height = min(820, max(200, int(bottom) + 24))
    clip = {"x": 0, "y": 0, "width": 1400, "height": height}
    page.screenshot(path=str(IMAGES / f"dashboard-{name}.png"), clip=clip)


def rows(page: Any) -> list[dict[str, str]]:
    """The jobs table as the page shows it."""
    found: list[dict[str, str]] = page.eval_on_selector_all(
        "#jobs tbody tr",
        """rows => rows.map(r => ({
            id: r.dataset.id, state: r.dataset.state,
            type: r.children[1].textContent,
            lr: (r.querySelector('td[data-tag=lr]') || {}).textContent || ''}))""",
    )
    return found


def test_the_address_bar_loses_the_token(page: Any, live: Live) -> None:
    assert "token" not in page.url
    assert page.locator("#experiments tr[data-name=sweep]").count() == 1
    page.wait_for_function(
        "document.querySelector('#experiments tr[data-name=sweep]')?.textContent?.includes('live')"
    )
    page.wait_for_selector("#live.on")
    screenshot(page, "experiments")


def test_pages_keep_to_their_content_security_policy(browser: Any, live: Live) -> None:
    """No inline script or style, nothing from elsewhere: every page renders under the CSP."""
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(TIMEOUT)
    messages: list[str] = []
    page.on("console", lambda message: messages.append(message.text))
    page.on("pageerror", lambda error: messages.append(str(error)))
    try:
        page.goto(live.url)
        page.wait_for_selector("#experiments a")
        page.goto(f"{live.base}/experiments/sweep")
        page.wait_for_selector("#jobs tbody tr .progress, #jobs tbody tr .state")
        page.click("#jobs tbody tr td.mono a")
        page.wait_for_selector("#job-body table.info")
        page.goto(f"{live.base}/experiments/sweep/graph")
        page.wait_for_selector("#graph-svg a.node")
        page.goto(f"{live.base}/orphans")
        page.wait_for_selector("#table p, #jobs")
    finally:
        context.close()
    assert not [m for m in messages if "Content Security Policy" in m or "Refused" in m]


def test_the_table_fills_and_filters_by_tag(page: Any, live: Live) -> None:
    page.goto(f"{live.base}/experiments/sweep")
    page.wait_for_function("document.querySelectorAll('#jobs tbody tr').length === 7")
    page.wait_for_function(
        "document.querySelectorAll('#jobs tbody tr[data-state=running]').length >= 3"
    )
    shown = rows(page)
    assert sorted(r["type"] for r in shown) == ["Evaluate"] * 3 + ["Sleep"] + ["Train"] * 3
    assert sorted(r["lr"] for r in shown if r["type"] == "Train") == ["0.01", "0.1", "13"]
    page.fill("#tag-filter", "lr=0.1")
    page.press("#tag-filter", "Enter")
    page.wait_for_function("document.querySelectorAll('#jobs tbody tr').length < 7")
    filtered = rows(page)
    assert filtered and all(r["lr"] == "0.1" for r in filtered)
    assert "Train" in [r["type"] for r in filtered]
    assert "tag=lr%3D0.1" in page.url  # the view is a link one can share
    # Filtering by state, with the chips.
    page.fill("#tag-filter", "")
    page.press("#tag-filter", "Enter")
    page.click("#state-filter button[data-state=failed]")
    page.wait_for_function("document.querySelectorAll('#jobs tbody tr').length === 1")
    assert [r["lr"] for r in rows(page)] == ["13"]
    # Sorting by a tag column.
    page.click("#state-filter button[data-state=failed]")
    page.wait_for_function("document.querySelectorAll('#jobs tbody tr').length === 7")
    page.click("th[data-sort='tag:lr']")
    page.wait_for_function(
        "document.querySelector('th[data-sort=\"tag:lr\"]')?.textContent?.includes('▲')"
    )
    assert [r["lr"] for r in rows(page)][:3] == ["0.01", "0.1", "13"]
    page.click("th[data-sort='tag:lr']")
    page.wait_for_function(
        "document.querySelector('th[data-sort=\"tag:lr\"]')?.textContent?.includes('▼')"
    )
    assert [r["lr"] for r in rows(page)][:3] == ["13", "0.1", "0.01"]


# Notes when the page has taken each answer of `/api/jobs` in: a task after the one that
# read it, by which time the page's own code that awaited it has run.
TAKEN = """() => {
    window.taken = [];
    const fetch = window.fetch;
    window.fetch = async (...args) => {
        const response = await fetch(...args);
        const json = response.json.bind(response);
        response.json = () => json().then((value) => {
            const url = String(args[0]);
            setTimeout(() => window.taken.push(url), 0);
            return value;
        });
        return response;
    };
}"""


def test_a_late_answer_does_not_replace_the_view_asked_for_since(page: Any, live: Live) -> None:
    """The page asks again on live updates and on every click; answers may come back out
    of order. The rows shown are always those of the view the headers show."""
    page.goto(f"{live.base}/experiments/sweep")
    page.wait_for_function("document.querySelectorAll('#jobs tbody tr').length === 7")
    page.evaluate(TAKEN)
    held: list[Any] = []

    def hold_old_view(route: Any) -> None:
        if "sort=started" in route.request.url:
            held.append(route)
        else:
            route.continue_()

    page.route("**/api/jobs?*", hold_old_view)
    try:
        with page.expect_request(lambda request: "sort=started" in request.url):
            page.dispatch_event("#search", "change")  # asks again for the view shown
        page.click("th[data-sort='tag:lr']")
        page.wait_for_function(
            "document.querySelector('th[data-sort=\"tag:lr\"]')?.textContent?.includes('▲')"
        )
        assert [r["lr"] for r in rows(page)][:3] == ["0.01", "0.1", "13"]
        held.pop(0).continue_()  # the older answer comes in last
        page.wait_for_function("window.taken.some((url) => url.includes('sort=started'))")
        assert "▲" in page.inner_text("th[data-sort='tag:lr']")
        assert [r["lr"] for r in rows(page)][:3] == ["0.01", "0.1", "13"]
    finally:
        page.unroute("**/api/jobs?*")
        for route in held:
            route.continue_()


def test_a_failed_job_shows_its_reason_and_log(page: Any, live: Live) -> None:
    page.goto(f"{live.base}/experiments/sweep?state=failed")
    page.wait_for_function("document.querySelectorAll('#jobs tbody tr').length === 1")
    page.click("#jobs tbody tr td.mono a")
    page.wait_for_selector("#reason")
    assert page.inner_text("#reason") == "ValueError: diverged with lr=13.0"
    page.wait_for_function(
        "document.querySelector('#log-stderr')?.textContent?.includes('the loss is nan')"
    )
    assert "ValueError: diverged with lr=13.0" in page.inner_text("#log-stderr")
    assert page.inner_text("#log-stdout").strip() == "training lr=13.0"
    assert "diverged with lr=13.0" in page.inner_text("#traceback")
    # The nested configurations, readable.
    params = page.inner_text("#params")
    assert "Optimizer" in params and "adam" in params and "width" in params
    screenshot(page, "job")


def test_the_graph_shows_every_job(page: Any, live: Live) -> None:
    page.goto(f"{live.base}/experiments/sweep/graph")
    page.wait_for_function("document.querySelectorAll('#graph-svg a.node').length === 7")
    states = page.eval_on_selector_all("#graph-svg a.node", "ns => ns.map(n => n.dataset.state)")
    assert "failed" in states and "running" in states
    fill = page.eval_on_selector(
        "#graph-svg a.node[data-state=failed] rect", "r => getComputedStyle(r).fill"
    )
    assert fill == "rgb(254, 202, 202)"  # coloured by state
    failed = page.get_attribute("#graph-svg a.node[data-state=failed]", "data-id")
    page.click("#graph-svg a.node[data-state=failed]")
    page.wait_for_selector("#reason")
    assert failed in page.url


def test_a_job_turns_done_without_a_reload(page: Any, live: Live) -> None:
    page.goto(f"{live.base}/experiments/sweep?sort=tag:lr")
    page.wait_for_function(
        "document.querySelectorAll('#jobs tbody tr[data-state=running]').length >= 3"
    )
    train = next(r for r in rows(page) if r["type"] == "Train" and r["lr"] == "0.1")
    assert train["state"] == "running"
    # A second tab follows the job's log.
    log_page = page.context.new_page()
    log_page.set_default_timeout(TIMEOUT)
    type_name = "web_tasks.Train"
    log_page.goto(f"{live.base}/jobs/{type_name}/{train['id']}")
    log_page.wait_for_function(
        "document.querySelector('#log-stdout')?.textContent?.includes('training lr=0.1')"
    )
    page.wait_for_function(
        "document.querySelectorAll('#jobs tbody tr .progress .plabel').length >= 2"
    )
    screenshot(page, "jobs")
    page.evaluate("window.stillTheSamePage = true")
    live.gate.touch()  # the running Train jobs finish
    page.wait_for_selector(f"#jobs tbody tr[data-id='{train['id']}'][data-state=done]")
    assert page.evaluate("window.stillTheSamePage") is True
    log_page.wait_for_function(
        "document.querySelector('#log-stdout')?.textContent?.includes('trained')"
    )
    log_page.wait_for_selector(".state.s-done")
    log_page.close()
    # Its Evaluate ran after it, and inherited its tag.
    page.wait_for_function(
        "[...document.querySelectorAll('#jobs tbody tr')].filter(r => "
        "r.children[1]?.textContent === 'Evaluate' && r.dataset.state === 'done').length === 2"
    )


def test_the_kill_button_ends_a_running_job(page: Any, live: Live) -> None:
    page.goto(f"{live.base}/experiments/sweep?type=web_tasks.Sleep")
    page.wait_for_selector("#jobs tbody tr[data-state=running]")
    (sleep,) = rows(page)
    pid = wait_until(
        lambda: job_state(live.workdir / "jobs" / "web_tasks.Sleep" / sleep["id"]).get("pid")
    )
    assert alive(pid)
    page.click(f"#jobs tbody tr[data-id='{sleep['id']}'] td.mono a")
    page.wait_for_selector("#job-head button.kill")
    questions: list[str] = []

    def answer(dialog: Any) -> None:
        questions.append(dialog.message)
        if len(questions) == 1:
            dialog.dismiss()  # "no": nothing happens
        else:
            dialog.accept()

    page.on("dialog", answer)
    page.click("#job-head button.kill")
    assert questions and questions[0].startswith("Kill job Sleep")
    assert alive(pid)
    page.click("#job-head button.kill")
    page.wait_for_selector("#job-head .state.s-cancelled")
    assert not alive(pid)
    page.wait_for_function(
        "document.querySelector('#log-stdout')?.textContent?.includes('sleeping')"
    )
    # With nothing left to run, the experiment ends; the page says so without a reload.
    live.experiment.wait(timeout=120)
    page.goto(f"{live.base}/experiments/sweep?sort=tag:lr")
    page.wait_for_function(
        "document.querySelectorAll('#jobs tbody tr[data-state=running]').length === 0"
    )
    # The graph of the finished sweep: each Evaluate right of the Train it evaluates (the
    # one whose Train failed never started: no params file, so no arrow to draw).
    page.goto(f"{live.base}/experiments/sweep/graph")
    page.wait_for_function("document.querySelectorAll('#graph-svg path.edge').length === 2")
    assert page.locator("#graph-svg a.node").count() == 7
    screenshot(page, "graph")
