"""The HTML campaign report of the hand-made world, opened in a real browser.

The world's card cell writes hostile text into its prompts, its user agent and one
account id (tests/conftest.py): the report must show it as text and run none of it.
Every request the page makes is blocked and counted: a self-contained report makes none.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from markupsafe import escape

from distillguard.reports import write_report
from distillguard.reports.render import script_json

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
# CI sets DISTILLGUARD_REQUIRE_BROWSER=1: there a missing browser fails the tests instead of skipping them.
NO_BROWSER = not CHROMIUM.exists() and os.environ.get("DISTILLGUARD_REQUIRE_BROWSER") != "1"
NO_BROWSER_REASON = "Debian's chromium is not installed at /usr/bin/chromium (make test installs it where it can)"
needs_chromium = pytest.mark.skipif(NO_BROWSER, reason=NO_BROWSER_REASON)


@pytest.fixture(scope="module")
def report(scanned, tmp_path_factory) -> Path:
    return write_report(scanned.scan_dir, tmp_path_factory.mktemp("report") / "report.html")


@pytest.fixture(scope="module")
def browser():
    if NO_BROWSER:
        pytest.skip(NO_BROWSER_REASON)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


class Opened:
    """A report open in a page, with everything the page complained about or tried to fetch."""

    def __init__(self, browser, path: Path):
        self.url = path.resolve().as_uri()
        self.page = browser.new_page(viewport={"width": 1400, "height": 1000})
        self.problems: list[str] = []
        self.requests: list[str] = []
        self.dialogs: list[str] = []
        self.page.on("console", lambda m: self.problems.append(f"{m.type}: {m.text}")
                     if m.type in ("error", "warning") else None)
        self.page.on("pageerror", lambda e: self.problems.append(f"pageerror: {e}"))
        self.page.on("dialog", self._dialog)
        self.page.route("**/*", self._route)
        self.page.goto(self.url)
        # report.js marks the page once every chart has been drawn (or has failed, which logs an error).
        self.page.wait_for_selector("html[data-charts=drawn]", state="attached", timeout=60_000)

    def _dialog(self, dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def _route(self, route) -> None:
        if route.request.url == self.url:
            route.continue_()
        else:
            self.requests.append(route.request.url)
            route.abort()


def _campaign_of(scanned, account_id: str) -> str:
    accounts = pq.read_table(scanned.scan_dir / "accounts.parquet", columns=["account_id", "campaign_id"])
    return accounts.filter(pc.equal(accounts.column("account_id"), account_id)).column("campaign_id")[0].as_py()


@pytest.fixture(scope="module")
def opened(browser, report) -> Opened:
    o = Opened(browser, report)
    yield o
    o.page.close()


@needs_chromium
def test_the_report_shows_every_campaign_and_draws_its_charts_offline_without_a_complaint(opened, scanned, tmp_path):
    page = opened.page
    page.screenshot(path=str(tmp_path / "report.png"))
    assert (tmp_path / "report.png").stat().st_size > 10_000
    assert opened.problems == [] and opened.dialogs == []
    assert opened.requests == [], "a self-contained report fetches nothing"

    campaigns = pq.read_table(scanned.scan_dir / "campaigns.parquet").column("campaign_id").to_pylist()
    assert campaigns, "the hand-made world has campaigns"
    listed = page.eval_on_selector_all("#overview tr[data-campaign]", "rows => rows.map(r => r.dataset.campaign)")
    assert sorted(listed) == sorted(campaigns)
    sections = page.eval_on_selector_all("section.campaign", "s => s.map(x => x.id)")
    assert sorted(sections) == sorted(campaigns)

    # Every chart holder got an SVG with marks in it: an overview, and per campaign a
    # timeline, a clock and the account graph.
    charts = page.eval_on_selector_all(
        "[data-chart]", "els => els.map(e => [e.dataset.chart, e.querySelectorAll('svg .mark-rect path, "
                        "svg .mark-symbol path, svg .mark-rule line').length])")
    assert len(charts) == 1 + 3 * len(campaigns)
    assert all(marks > 0 for _, marks in charts), charts

    # A bar's tooltip reads back its data: the cell's model and a time, not NaN.
    cell = _campaign_of(scanned, scanned.groups["cell"][1])
    bar = page.locator(f'[data-chart="{cell}-timeline"] .mark-rect path').first
    bar.scroll_into_view_if_needed()
    bar.hover(force=True)
    # Vega's own tooltip handler writes the title attribute of the chart's container.
    titles = page.eval_on_selector_all(f'[data-chart="{cell}-timeline"], [data-chart="{cell}-timeline"] [title]',
                                       "t => t.map(e => e.title)")
    tooltip = re.compile(r"model: atlas-2\nfrom \(UTC\): 2026-03-\d\d \d\d:00\nexchanges: \d+")
    assert any(tooltip.search(t) for t in titles), titles
    assert opened.problems == []


@needs_chromium
def test_the_page_runs_only_its_own_scripts(browser, report):
    """The Content-Security-Policy is in force: a script the page did not ship does not run."""
    opened = Opened(browser, report)
    page = opened.page
    csp = page.get_attribute("meta[http-equiv=Content-Security-Policy]", "content")
    assert "default-src 'none'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
    before = len(opened.problems)
    try:
        page.add_script_tag(content="window.injected = true;")
    except Exception:  # Playwright reports the blocked script as an error, depending on the version
        pass
    assert page.evaluate("window.injected === undefined")
    assert any("Content Security Policy" in p for p in opened.problems[before:])
    page.close()


@needs_chromium
def test_hostile_text_is_shown_as_text_and_never_runs(opened, report, scanned):
    html = report.read_text(encoding="utf-8")
    page = opened.page
    # The cell's prompts each end with one of the hostile strings; which ones were sampled
    # is read from the scan, so that the test asserts about text the report must show.
    samples = pq.read_table(scanned.scan_dir / "samples.parquet").column("prompt").to_pylist()
    sampled = [h for h in scanned.hostile if any(h in p for p in samples)]
    assert sampled, "the cell's prompts are in the samples"
    visible = page.inner_text("body")
    for text in sampled + [scanned.hostile_agent, scanned.hostile_account]:
        assert str(escape(text)) in html, text
        assert text in visible, text
    for text in scanned.hostile + (scanned.hostile_agent,):
        if "<" in text:
            assert text not in html, f"{text!r} is in the page unescaped"
    # The only scripts are the page's three (chart data, Vega bundle, chart runner); nothing
    # from the scan became an element or an event handler.
    assert page.eval_on_selector_all("script", "s => s.length") == 3
    assert page.eval_on_selector_all("img", "i => i.length") == 0
    assert page.evaluate("document.querySelectorAll('[onerror], [onload], [onclick]').length") == 0
    # The cell's account graph names its hostile account and user agent: as SVG text.
    cell = _campaign_of(scanned, scanned.hostile_account)
    labels = page.eval_on_selector_all(f'[data-chart="{cell}-graph"] text', "t => t.map(x => x.textContent)")
    for text in (scanned.hostile_account, scanned.hostile_agent):
        assert any(label.rstrip("\u2026") and text.startswith(label.rstrip("\u2026")) for label in labels), labels
    assert opened.dialogs == [] and opened.problems == []


@needs_chromium
def test_an_analyst_can_trace_each_listed_exchange_to_the_input_events(opened, scanned):
    """Every request_id the report lists behind an exchange reason is an exchange of that
    account in the input events, and shows the reason."""
    from traffic import ELICIT

    listed = opened.page.eval_on_selector_all("table.members tr[data-account]", """rows => rows.flatMap(row =>
        Array.from(row.querySelectorAll('li[data-evidence=exchange]')).flatMap(li =>
            Array.from(li.querySelectorAll('code.ref')).map(c =>
                [row.dataset.account, li.dataset.reason, c.textContent])))""")
    assert listed
    events = pq.read_table(scanned.events, columns=["request_id", "account_id", "prompt", "thinking"])
    wanted = events.filter(pc.is_in(events.column("request_id"), pc.unique([r for _, _, r in listed])))
    by_id = {e["request_id"]: e for e in wanted.to_pylist()}
    for account, reason, request_id in listed:
        event = by_id[request_id]
        assert event["account_id"] == account
        if reason == "params.thinking":
            assert event["thinking"] is True

    # The cell, by construction: every prompt asks for the chain of thought in one of
    # four languages, with thinking on.
    cell = set(scanned.groups["cell"])
    elicit = [template.split("{q}")[1].strip()[:25] for template in ELICIT.values()]
    traced = {reason: [r for a, why, r in listed if a in cell and why == reason]
              for reason in ("content.reasoning_elicitation", "params.thinking")}
    assert traced["content.reasoning_elicitation"] and traced["params.thinking"]
    for request_id in traced["content.reasoning_elicitation"]:
        assert any(marker in by_id[request_id]["prompt"] for marker in elicit)


def test_the_same_scan_gives_the_same_report_byte_for_byte(scanned, report, tmp_path):
    again = write_report(scanned.scan_dir, tmp_path / "again.html")
    assert again.read_bytes() == report.read_bytes()
    # Another process, another hash seed: no set order or per-process counter leaks in.
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    code = "import sys; from distillguard.reports import write_report; write_report(sys.argv[1], sys.argv[2])"
    subprocess.run([sys.executable, "-c", code, str(scanned.scan_dir), str(tmp_path / "other.html")], env=env,
                   check=True)
    assert (tmp_path / "other.html").read_bytes() == report.read_bytes()


def test_a_scan_without_campaigns_says_so(scanned, tmp_path):
    folder = tmp_path / "scan"
    shutil.copytree(scanned.scan_dir, folder)
    campaigns = pq.read_table(folder / "campaigns.parquet")
    pq.write_table(campaigns.slice(0, 0), folder / "campaigns.parquet")
    html = write_report(folder, tmp_path / "report.html").read_text(encoding="utf-8")
    assert "No campaign was flagged in this scan." in html
    assert 'class="campaign"' not in html


@pytest.fixture(scope="module")
def medium_scan(tmp_path_factory) -> Path:
    """The scan folder of the simulator's medium world (1.6M exchanges, ~19,500 accounts):
    DISTILLGUARD_REPORT_SCAN when set, otherwise simulated and scanned here (~3 minutes)."""
    if os.environ.get("DISTILLGUARD_REPORT_SCAN"):
        return Path(os.environ["DISTILLGUARD_REPORT_SCAN"])
    from distillguard.ingest import Workspace, ingest
    from distillguard.simulate import simulate
    from distillguard.verdicts import scan

    work = tmp_path_factory.mktemp("medium")
    simulate("medium", 1, work / "world")
    ingest(events=[str(work / "world" / "events.parquet")], accounts=[str(work / "world" / "accounts.parquet")],
           workspace=work / "workspace")
    ws = Workspace(work / "workspace")
    scan(ws.events_sql(), ws.accounts_sql(), work / "scan", input_fingerprint=ws.fingerprint())
    return work / "scan"


@needs_chromium
def test_a_medium_scan_gives_a_report_of_a_few_megabytes_that_draws_cleanly(browser, medium_scan, tmp_path):
    folder = medium_scan
    report = write_report(folder, tmp_path / "medium.html")
    assert report.stat().st_size < 4_000_000
    # Graphs of 150 accounts are where a layout's randomness would show.
    assert write_report(folder, tmp_path / "again.html").read_bytes() == report.read_bytes()
    opened = Opened(browser, report)
    assert opened.problems == [] and opened.requests == []
    campaigns = pq.read_table(Path(folder) / "campaigns.parquet").column("campaign_id").to_pylist()
    listed = opened.page.eval_on_selector_all("#overview tr[data-campaign]", "r => r.map(x => x.dataset.campaign)")
    assert sorted(listed) == sorted(campaigns)
    assert opened.page.eval_on_selector_all("[data-chart] svg", "s => s.length") == 1 + 3 * len(campaigns)
    opened.page.screenshot(path=str(tmp_path / "medium.png"))
    assert (tmp_path / "medium.png").stat().st_size > 10_000


def test_chart_json_cannot_end_its_script_element_and_reads_back_the_same():
    value = {"prompt": "</script><script>alert(1)</script><!-- & -->", "ua": "</SCRIPT >\u2028"}
    text = script_json(value)
    assert not set("<>&") & set(text)
    assert json.loads(text) == value
