"""The report a real run writes, opened in real headless Chromium (offline).

A short demo (reference agent, chaos proxy) writes report.html at its end; the
page must render with no console error, every plot must hold data, the page
must make no request beyond its own file (and the CSP must refuse one it tries),
the legend's script must run under that CSP, and a screenshot is kept.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import ROOT, run_cli
from tests.peers import require_binary, require_module

pytestmark = pytest.mark.e2e

PLOTS = ("latency-over-time", "cdf-by-turn", "cdf-by-phase", "cdf-setup-greeting",
         "call-outcomes", "turn-outcomes", "timeline")

# per plot: how many data elements it drew, and its rendered width
COUNT_JS = """
const out = {};
for (const fig of document.querySelectorAll('figure.plot')) {
  const name = fig.dataset.plot;
  const marks = fig.querySelectorAll(
    'g.series circle, g.series polyline, g.series rect, g.tl rect').length;
  const box = fig.querySelector('svg').getBoundingClientRect();
  const prev = out[name] || {figures: 0, min_marks: 1e9, width: 0};
  out[name] = {figures: prev.figures + 1, min_marks: Math.min(prev.min_marks, marks),
               width: Math.max(prev.width, box.width)};
}
return out;
"""


def _browser(tmp_path: Path) -> Any:
    chromium = require_binary("chromium", "chromium")
    driver_path = require_binary("chromedriver", "chromium-driver")
    require_module("selenium", "selenium")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1000,1200", f"--user-data-dir={tmp_path / 'chromium'}",
                "--disable-background-networking", "--no-first-run"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    return webdriver.Chrome(service=Service(executable_path=driver_path), options=opts)


@pytest.mark.slow
async def test_a_demo_report_renders_offline_in_chromium(tmp_path: Path) -> None:
    driver = _browser(tmp_path)  # skips (or fails under CI) before the run if missing
    try:
        out = tmp_path / "demo"
        code, stdout, err = await run_cli(
            "demo", "--users", "4", "--duration", "16s", "--results-dir", str(out),
            "--metrics-port", "-1", "--gate", "turn_latency_p95 < 30s", timeout=180)
        assert code == 0, err
        assert f"report: {out / 'report.html'}" in stdout
        assert "turn_latency_p95" in (out / "report.html").read_text()
        assert "scenarios:" in (out / "profile.yaml").read_text()
        url = (out / "report.html").resolve().as_uri()
        driver.get("about:blank")
        driver.get_log("performance")  # drop the browser's own start-up pages
        driver.get(url)
        assert driver.title.startswith("loadcaller report")

        console = driver.get_log("browser")
        assert [e for e in console if e["level"] in ("SEVERE", "WARNING")] == [], console
        requests = [json.loads(e["message"])["message"] for e in driver.get_log("performance")]
        fetched = {m["params"]["request"]["url"] for m in requests
                   if m.get("method") == "Network.requestWillBeSent"
                   and not m["params"]["request"]["url"].startswith("chrome://")}
        assert fetched <= {url}, fetched  # the page itself and nothing else
        assert driver.execute_script(
            "return performance.getEntriesByType('resource').length") == 0

        plots = driver.execute_script(COUNT_JS)
        for name in PLOTS:
            assert name in plots, (name, plots)
            assert plots[name]["min_marks"] > 0, (name, plots[name])
            assert plots[name]["width"] > 300, (name, plots[name])
        assert plots["timeline"]["figures"] >= 4  # the slowest calls, each with a timeline
        assert driver.execute_script(
            "return document.querySelectorAll('#gates .pass').length") == 1
        assert "PASSED" in driver.find_element("id", "verdict").text

        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(1000, min(int(height) + 100, 16000))
        shot = tmp_path / "report.png"
        assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 20_000

        # the page's own script runs under its CSP: a legend entry hides its series
        driver.execute_script("document.querySelector('figure.plot .legend .key').click()")
        assert driver.execute_script(
            "return document.querySelector('figure.plot g.series').classList.contains('off')")

        # and the CSP refuses a request the page might try (no connect-src)
        blocked = driver.execute_async_script(
            "const done = arguments[0];"
            "fetch('http://127.0.0.1:9/').then(() => done('fetched'), e => done('refused'));")
        assert blocked == "refused"  # refused by the CSP, as the console says (next line)
        assert any("Content Security Policy" in e["message"] for e in driver.get_log("browser"))
    finally:
        driver.quit()


async def test_a_failed_run_writes_its_report_and_profile_without_secrets(tmp_path: Path) -> None:
    """`loadcaller run` (not the demo): every call fails, the report says why; the
    profile copy and the report keep no credential from the target URL."""
    out = tmp_path / "r"
    profile = ROOT / "profiles" / "smoke.yaml"
    code, _stdout, err = await run_cli(
        "run", str(profile), "--target", "ws://alice:hunter2@127.0.0.1:1/media?token=SECRET7",
        "--users", "2", "--duration", "2s", "--results-dir", str(out), "--metrics-port", "-1",
        "--progress-every", "0", timeout=120)
    assert code == 1, err
    page = (out / "report.html").read_text()
    kept = (out / "profile.yaml").read_text()
    assert "FAILED" in page and "no call connected" in page and "exit 1" in page
    assert "failed_setup" in page and "name: smoke" in kept and "order_status" in kept
    for text in (page, kept):
        assert "hunter2" not in text and "SECRET7" not in text
    assert "ws://alice:***@127.0.0.1:1/media?token=***" in kept


# Each payload sets window.__pwned if it ever runs, whichever context it lands in: element
# text, a quoted attribute, <title>, <style>, <pre>, SVG <text> and <title>, a URL.
PAYLOADS = (
    '<script>window.__pwned="script"</script>',
    '<img src=x onerror="window.__pwned=\'img\'">',
    '"><svg onload="window.__pwned=\'attr\'"><x a="',
    "'><iframe srcdoc=\"<script>parent.__pwned='iframe'</script>\"></iframe>",
    '</style><script>window.__pwned="style"</script>',
    '</title><script>window.__pwned="title"</script>',
    '</pre><script>window.__pwned="pre"</script>',
    ']]><script>window.__pwned="cdata"</script><!--',
    'javascript:window.__pwned="url"',
    '\x00\x1b[2J\udce9<a href="javascript:window.__pwned=\'href\'">x</a>',
)
HOSTILE = " ".join(PAYLOADS)

DOM_JS = """
const bad = [];
for (const el of document.querySelectorAll('*')) {
  for (const a of el.attributes) {
    if (/^on/i.test(a.name) || /javascript:/i.test(a.value) || a.name === 'srcdoc') {
      bad.push(el.tagName + ' ' + a.name + '=' + a.value);
    }
  }
}
return {pwned: window.__pwned === undefined ? null : String(window.__pwned), bad: bad,
        scripts: document.scripts.length,
        foreign: document.querySelectorAll('img, iframe, object, embed, a:not([href^="#"]), '
                                           + 'form, base, link, meta[http-equiv=refresh]').length,
        text: document.body.innerText};
"""


async def test_what_an_agent_and_a_profile_sent_never_runs_in_the_report(tmp_path: Path) -> None:
    """Agent-controlled strings (a failure reason), profile-controlled ones (run, scenario and
    fault names, gates) and the profile copy, all holding markup: opened in Chromium, none of
    it runs or becomes an element, the page's own script is the only one (no CSP refusal in
    the console: nothing even tried), and each payload reads as text."""
    driver = _browser(tmp_path)
    try:
        from tests.report.test_html import call, write_run

        out = tmp_path / "r"
        records = [call(0, outcome="dropped", reason=HOSTILE, scenario=HOSTILE,
                        faults=(HOSTILE,)),
                   call(1, reason=HOSTILE, scenario=HOSTILE, faults=(HOSTILE,))]
        run = {"name": HOSTILE, "transport": HOSTILE, "target": f"wss://127.0.0.1/{HOSTILE}",
               "users": HOSTILE, "ended_by": HOSTILE}
        write_run(out, records, phases=True, run=run, failure=HOSTILE,
                  gates=[{"gate": HOSTILE, "phase": HOSTILE, "value": HOSTILE,
                          "unit": HOSTILE, "passed": False}],
                  ground_truth={"out_of_bounds": HOSTILE})
        (out / "profile.yaml").write_bytes(f"name: x\n# {HOSTILE}\n".encode("utf-8", "replace"))
        from loadcaller.report.html import write_report

        page = write_report(out, exit_code=1)
        driver.get(page.resolve().as_uri())
        state = driver.execute_script(DOM_JS)
        console = driver.get_log("browser")
        assert state["pwned"] is None, state["pwned"]
        assert state["bad"] == [] and state["foreign"] == 0, state
        assert state["scripts"] == 1, state["scripts"]  # the page's own (legend toggles)
        assert [e for e in console if e["level"] in ("SEVERE", "WARNING")] == [], console
        for payload in ('<script>window.__pwned="script"</script>',
                        '<img src=x onerror="window.__pwned=\'img\'">',
                        '</style><script>window.__pwned="style"</script>', "\\x1b[2J\\xe9"):
            assert payload in state["text"], payload
        assert "FAILED" in driver.find_element("id", "verdict").text
    finally:
        driver.quit()
