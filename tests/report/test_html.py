"""The run report: SVG builders, bounded reading, edge cases, escaping, the CLI.

Results directories are written by the real writer (:class:`Results`), so the
report reads exactly what runs write.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest

from loadcaller.calls.call import CallRecord
from loadcaller.calls.measure import TurnResult
from loadcaller.calls.results import Results
from loadcaller.cli import main
from loadcaller.console import print_summary
from loadcaller.report import data as rd
from loadcaller.report import plots, svg
from loadcaller.report.html import CSP, render, write_report, write_run_report
from loadcaller.report.profile_copy import profile_yaml

S = 1_000_000_000  # ns
MS = 1_000_000
XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'
GEN = {"media_clock_lag_ms": {"p50": 0.1, "p99": 0.9, "max": 3.0}, "cpu_percent": 12.0,
       "skipped_ticks": 0, "saturated": False, "saturation_reasons": [],
       "saturation_lag_ms": 5.0}


def call(i: int, *, t0: float = 100.0, outcome: str = "completed", reason: str = "done",
         turns: int = 3, latency_ms: float = 800.0, faults: tuple[str, ...] = (),
         scenario: str = "order") -> CallRecord:
    start = int((t0 + i * 0.5) * S)
    ts = []
    for k in range(turns):
        end = start + (2 + 4 * k) * S
        onset = None if latency_ms < 0 else end + int((latency_ms + 10 * k) * MS)
        ts.append(TurnResult(k, "answered" if onset else "no_response", end, onset,
                             faults=faults))
    connected = outcome != "failed_setup"
    return CallRecord(call_id=f"c{i:05d}", transport="twilio", scenario=scenario,
                      outcome=outcome, reason=reason, t_start_ns=start,
                      t_end_ns=start + (3 + 4 * turns) * S,
                      setup_ns=8 * MS if connected else None,
                      greeting_ns=200 * MS if connected else None, turns=ts)


def write_run(directory: Path, records: list[CallRecord], *, phases: bool = False,
              run: dict[str, Any] | None = None, **extra: Any) -> Path:
    results = Results(directory, phases=phases)
    for rec in records:
        results.calls_started += 1
        results.record_call(rec)
    summary = results.summary(dict(GEN), run or {"name": "unit", "transport": "twilio",
                                                 "target": "ws://127.0.0.1:9/media",
                                                 "users": 2, "duration_s": 10.0})
    summary.update(extra)
    results.write_summary(summary)
    results.close()
    return directory


def plot(page: str, name: str) -> str:
    m = re.search(rf'<figure class="plot" data-plot="{name}">.*?</figure>', page, re.S)
    assert m, f"no plot {name}"
    return m.group(0)


def drawn(fragment: str) -> int:
    return sum(int(n) for n in re.findall(r'data-n="(\d+)"', fragment))


# ---- SVG builders -----------------------------------------------------------------------

def test_ticks_and_scale_cover_the_data() -> None:
    assert svg.nice_ticks(0, 2300) == [0, 500, 1000, 1500, 2000]
    assert svg.nice_ticks(0.0, 1.0)[-1] == 1.0
    assert svg.nice_ticks(5, 5) == [5]  # flat: no endless loop, one tick
    scale = svg.Scale(0, 10, 100, 200)
    assert scale(5) == 150 and svg.Scale(3, 3, 0, 10)(3) == 5  # flat span: the middle


def test_cdf_keeps_the_tail_when_thinned() -> None:
    values = sorted(float(v) for v in range(10_000))
    xs, ys = svg.quantile_points(values, limit=50)
    assert len(xs) <= 50 and xs[-1] == 9999.0 and ys[-1] == 1.0 and xs[0] == 0.0
    out = svg.cdf_chart("c", "t", [("a", values), ("empty", []), ("b", [5.0])])
    assert out.count("<polyline") == 2 and "no data" not in out
    assert "no data" in svg.cdf_chart("c", "t", [("a", [])])


def test_builders_escape_labels() -> None:
    out = svg.cdf_chart("c", XSS, [(XSS, [1.0, 2.0])])
    out += svg.bar_chart("b", "t", [(XSS, 3)])
    chart = svg.Chart.over("x", "t", (0, 1), (0, 1))
    chart.band(0, 1, XSS)
    out += chart.render()
    assert "<script" not in out and "<img" not in out and "&lt;script&gt;" in out


def test_chaos_windows_split_where_a_fault_stops() -> None:
    def t(at: float, *faults: str) -> rd.Turn:
        return rd.Turn(t=at, latency_ms=1.0, turn=0, outcome="answered", faults=faults)

    turns = [t(1), t(2, "lat"), t(3, "lat", "drift"), t(4, "drift"), t(5), t(6, "lat")]
    windows = plots.chaos_windows(turns)
    assert [(w.name, w.t0, w.t1) for w in windows] == [
        ("lat", 2, 3), ("drift", 3, 4), ("lat", 6, 6)]
    assert plots.chaos_windows([t(1), t(2)]) == []
    # turns straddling a fault's edges interleave with calm ones: still one window
    mixed = [t(10 + i * 0.1, *(("lat",) if i % 2 or 20 < i < 80 else ())) for i in range(100)]
    mixed.append(t(200))
    assert [(w.name, w.t0) for w in plots.chaos_windows(mixed)] == [("lat", 10.1)]


def test_rolling_percentiles_follow_a_step() -> None:
    pts = [(float(i), 100.0 if i < 200 else 1000.0) for i in range(400)]
    roll = plots.rolling(pts, steps=20)
    assert roll[0][1:] == (100.0, 100.0) and roll[-1][1:] == (1000.0, 1000.0)
    assert plots.rolling(pts[:3]) == []


# ---- whole reports ----------------------------------------------------------------------

def test_a_run_with_chaos_draws_every_plot(tmp_path: Path) -> None:
    recs = [call(i, faults=("backend_latency",) if i % 4 == 1 else ()) for i in range(8)]
    recs.append(call(8, outcome="failed_setup", reason="connect refused", turns=0))
    recs.append(call(9, outcome="dropped", reason="socket closed", turns=2, latency_ms=-1))
    page = (write_report(write_run(tmp_path, recs, phases=True), exit_code=1)).read_text()
    assert drawn(plot(page, "latency-over-time")) >= 24 + 2  # 24 dots, 2 rolling lines
    assert 'class="band"' in plot(page, "latency-over-time")
    assert "backend_latency" in plot(page, "latency-over-time")
    assert drawn(plot(page, "cdf-by-turn")) == 3 * (8 + 1)  # per turn index: 0 + 8 calls
    assert "backend_latency (n=6)" in plot(page, "cdf-by-phase")
    assert "no fault (n=18)" in plot(page, "cdf-by-phase")
    assert drawn(plot(page, "cdf-setup-greeting")) > 0
    assert "failed_setup: connect refused" in page and "exit 1" in page
    # 8 slowest (every answered call) + the dropped one; the one that never connected
    # has nothing to draw and says so
    assert page.count('data-plot="timeline"') == 9 and "Never connected" in page
    assert "Failed calls (2)" in page and "socket closed" in page


def test_zero_calls_and_no_files(tmp_path: Path) -> None:
    page = write_report(write_run(tmp_path, [])).read_text()
    assert "no turns measured" in page and "No call failed." in page
    assert "PASSED" in page  # nothing failed: a run that placed no call is not a failure
    only_summary = tmp_path / "only"
    only_summary.mkdir()
    (only_summary / "summary.json").write_text(json.dumps({"run": {"name": "bare"}}))
    page = write_report(only_summary).read_text()
    assert "Missing from the results directory: turns.jsonl, calls.jsonl" in page


def test_killed_run_without_summary_is_incomplete_and_figured_from_jsonl(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A killed run leaves no summary.json: never PASSED, and the latencies from the JSONL."""
    write_run(tmp_path / "done", [call(i, latency_ms=500.0 + 100 * i) for i in range(4)])
    killed = tmp_path / "killed"
    killed.mkdir()
    (killed / "calls.jsonl").write_text((tmp_path / "done" / "calls.jsonl").read_text())
    (killed / "profile.yaml").write_text("name: unit\n")
    turns = (tmp_path / "done" / "turns.jsonl").read_text()
    (killed / "turns.jsonl").write_text(turns[: len(turns) - 40])  # torn last line
    assert main(["report", str(killed), "-o", str(tmp_path / "x.html")]) == 0
    capsys.readouterr()
    page = (tmp_path / "x.html").read_text()
    verdict = re.search(r'<div class="verdict (\w+)" id="verdict">(.*?)</div>', page, re.S)
    assert verdict and verdict.group(1) == "incomplete"
    assert "PASSED" not in page and "INCOMPLETE" in verdict.group(2)
    assert "no summary.json: not judged" in verdict.group(2)
    assert "come from the JSONL files only" in page
    rows = {m[0]: m[1:] for m in re.findall(
        r"<tr><td>([^<]*)</td><td>([^<]*)</td><td>([^<]*)</td><td>([^<]*)</td>"
        r"<td>([^<]*)</td><td>([^<]*)</td></tr>",
        re.search(r'<section id="latency">.*?</table>', page, re.S).group(0))}
    assert rows["turn latency"][0] == "11"  # 12 turns, the last one torn
    assert rows["turn latency"][1:] == ("620.0 ms", "810.0 ms", "810.0 ms", "810.0 ms")
    assert rows["greeting latency"] == ("4", "200.0 ms", "200.0 ms", "200.0 ms", "200.0 ms")
    assert rows["call setup"] == ("4", "8 ms", "8 ms", "8 ms", "8 ms")
    # the summary's figures still win when it is there
    done = write_report(tmp_path / "done").read_text()
    assert "PASSED" in done and "JSONL files only" not in done


def test_unreadable_summary_is_incomplete(tmp_path: Path) -> None:
    write_run(tmp_path, [call(0)])
    (tmp_path / "summary.json").write_text('{"run": ')
    page = write_report(tmp_path).read_text()
    assert "PASSED" not in page and "INCOMPLETE" in page
    assert "summary.json could not be read" in page and "JSONL files only" in page
    assert write_report(tmp_path, exit_code=0).read_text().count("PASSED") == 0


def _paths(node: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path into a summary.json (the first items of its lists)."""
    items = (node.items() if isinstance(node, dict)
             else enumerate(node[:2]) if isinstance(node, list) else ())
    return [at] * bool(at) + [p for k, v in items for p in _paths(v, (*at, k))]


def test_a_summary_json_of_another_shape_is_read_as_far_as_it_goes(tmp_path: Path) -> None:
    """Any field of summary.json of another type (an older or newer version, an edit): the
    report is still written, with what it can read. Before, a ``phases`` or ``gates`` that
    was not a list, or a ``cpu_ratio_peak`` that was a string, was a traceback."""
    write_run(tmp_path, [call(0, faults=("lat",)), call(1, outcome="error", reason="x")],
              phases=True, gates=[{"gate": "g", "value": 1.0, "unit": "ms", "passed": False}],
              media={"calls": 1, "loss_ratio": 0.1, "jitter_ms": {"p50": 1}, "mos": {"p50": 4}},
              ground_truth={"out_of_bounds": ["x"]})
    base = json.loads((tmp_path / "summary.json").read_text())
    base["generator"].update(saturated=True, saturation_reasons=["lag"], cpu_ratio_mean=0.5,
                             cpu_ratio_peak=0.9, saturated_windows=[{"from": 100, "to": 101}])
    for path in _paths(base):
        for value in (1, "x", [1]):
            summary = json.loads(json.dumps(base))
            node = summary
            for key in path[:-1]:
                node = node[key]
            node[path[-1]] = value
            (tmp_path / "summary.json").write_text(json.dumps(summary))
            try:
                page = write_report(tmp_path).read_text()
            except Exception as exc:  # name the field that broke it
                raise AssertionError(f"summary.json {path} = {value!r}: {exc!r}") from exc
            assert "</html>" in page


def test_one_call_all_failed(tmp_path: Path) -> None:
    recs = [call(0, outcome="no_response", reason="the agent never spoke", latency_ms=-1)]
    page = write_report(write_run(tmp_path, recs, failure="no call answered")).read_text()
    assert "FAILED" in page and "no call answered" in page
    assert drawn(plot(page, "latency-over-time")) == 3  # the misses, on the top edge
    assert "Failed calls (1)" in page and "the agent never spoke" in page


def test_ten_thousand_turns_stay_small(tmp_path: Path) -> None:
    recs = [call(i, turns=5, latency_ms=300 + (i * 37) % 900, t0=1000.0) for i in range(2000)]
    path = write_report(write_run(tmp_path, recs))
    page = path.read_text()
    assert 2000 < plot(page, "latency-over-time").count("<circle") <= plots.MAX_POINTS
    assert "of 10,000 turns drawn" in page
    assert path.stat().st_size < 600_000


def test_a_reason_per_call_does_not_grow_memory_without_bound(tmp_path: Path) -> None:
    """An agent that puts a call id in each close reason: the run's summary and the report
    count at most MAX_REASONS distinct reasons (new ones pooled), and every call is counted."""
    from loadcaller.calls.results import MAX_REASONS, OTHER_REASONS

    n = MAX_REASONS + 500
    write_run(tmp_path, [call(i, outcome="dropped", reason=f"closed 1011 session {i}", turns=0)
                         for i in range(n)])
    summary = json.loads((tmp_path / "summary.json").read_text())
    top = summary["calls"]["top_failure_reasons"]
    assert top[f"dropped: {OTHER_REASONS}"] == 500 and sum(top.values()) == 509
    data = rd.load(tmp_path)
    assert len(data.reasons) == MAX_REASONS + 1 and data.reasons.total() == n
    assert data.reasons[f"dropped: {OTHER_REASONS}"] == 500


def test_sampling_and_malformed_lines_are_reported(tmp_path: Path) -> None:
    write_run(tmp_path, [call(i) for i in range(40)])
    with (tmp_path / "turns.jsonl").open("a") as f:
        f.write('{"call_id": "torn", "turn": 0, "t_speech_e\n[1, 2]\n{"turn": "x"}\n')
    data = rd.load(tmp_path, max_kept=50)
    assert data.bad_lines["turns.jsonl"] == 3 and data.turns.seen == 120
    assert len(data.turns.items) == 50 and data.turn_outcomes["answered"] == 120
    page = render(data)
    assert "3 malformed line(s) in turns.jsonl" in page and "uniform sample of 50" in page


def test_saturated_and_gates_and_media(tmp_path: Path) -> None:
    gen = dict(GEN, saturated=True, saturation_reasons=["media clock lag p99 9 ms"])
    gates = [{"gate": "turn_latency_p95 < 1.5s", "phase": None, "value": 1234.5,
              "unit": "ms", "passed": True},
             {"gate": "answered_ratio >= 0.98", "phase": "backend_latency", "value": 0.5,
              "unit": "", "passed": False}]
    media = {"calls": 1, "packets_sent": 10, "packets_received": 9, "loss_ratio": 0.1,
             "jitter_ms": {"p50": 0.3, "p95": 1.0}, "mos": {"p50": 4.3, "p5": 4.0, "min": 4}}
    page = write_report(write_run(tmp_path, [call(0)], generator=gen, gates=gates,
                                  media=media), exit_code=3).read_text()
    assert "The generator saturated." in page and "media clock lag p99 9 ms" in page
    assert "UNTRUSTED" in page
    gates_html = re.search(r'<section id="gates">.*?</section>', page, re.S).group(0)
    assert gates_html.count('class="pass"') == 1 and gates_html.count('class="fail"') == 1
    assert "1,234.5 ms" in gates_html and "<td>0.5</td>" in gates_html

    assert "10.00%" in page and "p50 4.3" in page


@pytest.mark.parametrize(("peak", "advice"), [
    (0.07, "other programs on this machine (the agent under test?) held the CPU"),
    (0.95, "Use fewer calls per process or more processes"),
])
def test_saturation_advice_follows_the_generators_own_cpu(tmp_path: Path, peak: float,
                                                          advice: str) -> None:
    """Lag while the generator idled (5 calls, 7% of a core beside a busy agent) is
    not cured by more processes: the console and the report say what is."""
    gen = dict(GEN, saturated=True, saturation_reasons=["media clock lag p99 97 ms"],
               cpu_ratio_mean=peak / 2, cpu_ratio_peak=peak)
    directory = write_run(tmp_path, [call(0)], generator=gen)
    out = io.StringIO()
    print_summary(json.loads((directory / "summary.json").read_text()), out)
    printed = " ".join(out.getvalue().split())
    assert "THE GENERATOR WAS SATURATED" in printed and advice in printed
    assert advice in " ".join(write_report(directory, exit_code=3).read_text().split())


def test_gate_values_show_as_the_gate_reads_them(tmp_path: Path) -> None:
    """A bool gate shows false/true (not 0/1), a count an integer (not 20.0)."""
    from loadcaller.gates.evaluate import evaluate
    from loadcaller.gates.parse import parse_gate

    write_run(tmp_path, [call(i) for i in range(7)])  # 21 turns, all answered
    summary = json.loads((tmp_path / "summary.json").read_text())
    results = evaluate([parse_gate("generator_saturated == false"),
                        parse_gate("turns_count >= 20"), parse_gate("turn_latency_p95 < 2s"),
                        parse_gate("answered_ratio >= 0.99")], summary)
    summary["gates"] = [r.to_json() for r in results]
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    gates_html = re.search(r'<section id="gates">.*?</section>',
                           write_report(tmp_path).read_text(), re.S).group(0)
    cells = re.findall(r"<tr><td>[^<]*</td><td>[^<]*</td><td>([^<]*)</td>", gates_html)
    assert cells[0] == "false" and cells[1] == "21" and cells[3] == "1"
    assert cells[2].endswith(" ms") and cells[2].startswith("8")


def test_everything_from_outside_is_escaped(tmp_path: Path) -> None:
    recs = [call(0, outcome="error", reason=XSS, scenario="s", faults=(XSS,)),
            call(1, reason=XSS)]
    run = {"name": XSS, "transport": XSS, "target": "wss://u:hunter2@agent/x?token=SECRET"}
    write_run(tmp_path, recs, phases=True, run=run, failure=XSS,
              gates=[{"gate": XSS, "phase": XSS, "value": XSS, "passed": False}])
    (tmp_path / "profile.yaml").write_text(f"name: x\n# </pre>{XSS}\n")
    page = write_report(tmp_path).read_text()
    assert page.count("<script") == 1 and "<img" not in page  # only the page's own script
    assert "onerror=alert" not in page.replace("&lt;img src=x onerror=alert", "")
    assert "hunter2" not in page and "SECRET" not in page


def test_bytes_that_are_not_text_do_not_cost_the_report(tmp_path: Path) -> None:
    """A Latin-1 SIP reason phrase reaches the results as a lone surrogate (\\udce9), and
    an agent's reason may hold control characters: the page is still written (UTF-8, each
    byte shown as an escape), and no half-written temporary file is left behind."""
    reason = "busy: SIP 486 Occup\udce9 \x00\x1b[2J\ud800"
    write_run(tmp_path, [call(0, outcome="busy", reason=reason)],
              run={"name": "unit", "transport": "sip\udcff", "target": "sip:a@127.0.0.1"})
    page = write_report(tmp_path).read_bytes().decode("utf-8")  # strict: all of it is text
    assert "Occup\\xe9 \\x00\\x1b[2J\ufffd" in page and "sip\\xff" in page
    assert "\x00" not in page and "\x1b" not in page
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_csp_allows_only_the_pages_own_style_and_script(tmp_path: Path) -> None:
    page = write_report(write_run(tmp_path, [call(0)])).read_text()
    assert "default-src 'none'" in CSP and "unsafe-inline" not in CSP
    for tag in ("style", "script"):
        body = re.search(rf"<{tag}>(.*?)</{tag}>", page, re.S).group(1)
        digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in CSP
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "").split(
        "<body>")[0]


def test_run_end_never_fails_on_the_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                           ) -> None:
    assert write_run_report(tmp_path / "missing", 0) is None
    assert "warning: could not write the report" in capsys.readouterr().err
    assert write_run_report(None, 0) is None
    write_run(tmp_path, [call(0)])
    assert write_run_report(tmp_path, 0) == tmp_path / "report.html"


def test_cli_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_run(tmp_path / "run", [call(0)])
    assert main(["report", str(tmp_path / "run"), "-o", str(tmp_path / "r.html")]) == 0
    assert (tmp_path / "r.html").read_text().startswith("<!DOCTYPE html>")
    assert main(["report", str(tmp_path)]) == 2  # no results there
    assert "not a loadcaller results directory" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "run"), "-o", str(tmp_path / "no" / "r.html")]) == 2


def test_profile_copy_keeps_no_secret(tmp_path: Path) -> None:
    from loadcaller.profile import parse_profile

    text = """
name: p
target:
  url: wss://alice:pw123@agent.invalid/media?token=tok456&lang=en
  auth_token: authsecret789
  custom_parameters: {api_key: key000, source: loadcaller}
scenarios:
  - name: s
    steps: [wait_for_agent, {say: hello}]
"""
    out = profile_yaml(parse_profile(text, "p.yaml"))
    for secret in ("pw123", "tok456", "authsecret789", "key000"):
        assert secret not in out
    assert "lang=en" in out and "source: loadcaller" in out and "name: p" in out


def test_timeline_draws_utterances_and_replies_when_recorded(tmp_path: Path) -> None:
    """Newer results may carry where an utterance began and a reply ended: drawn as bars."""
    write_run(tmp_path, [call(0, turns=1)])
    line = json.loads((tmp_path / "turns.jsonl").read_text())
    plain = svg_timeline(tmp_path)
    assert "caller speaking" not in plain and "caller stopped speaking" in plain
    line.update(t_speech_start=line["t_speech_end"] - 1.5, t_reply_end=line["t_reply_onset"] + 2)
    (tmp_path / "turns.jsonl").write_text(json.dumps(line) + "\n")
    full = svg_timeline(tmp_path)
    assert "turn 0: caller speaking" in full
    widths = [float(w) for w in re.findall(
        r'<g class="tl (?:speech|reply)"><title>[^<]*</title><rect x="[\d.]+" y="\d+" '
        r'width="([\d.]+)"', full)]
    assert len(widths) == 2 and min(widths) > 50  # 1.5 s and 2 s, not markers


def svg_timeline(directory: Path) -> str:
    return plot(render(rd.load(directory)), "timeline")
