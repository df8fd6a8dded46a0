"""The report's sections, each a function from the run's data to an HTML string.

Everything from outside this process (the agent's reasons, the profile's names,
fault names, the target URL) is escaped with :func:`~loadcaller.report.svg.esc`
on its way in; the page's Content-Security-Policy runs no script it did not
bring itself, as a second line of defence.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from loadcaller.console import saturation_advice
from loadcaller.hostcpu import BUSY_WARN
from loadcaller.media.outcomes import NOT_FAILED
from loadcaller.redact import redact_text, redact_url
from loadcaller.report import plots
from loadcaller.report.data import RunData
from loadcaller.report.svg import bar_chart, esc, fmt_num

# Every code of ``loadcaller --help`` (loadcaller.cli.EXIT_CODES_HELP; a test holds them equal)
EXIT_MEANING = {
    0: "the run finished and its numbers can be trusted",
    1: "the run failed (calls, gates, or the demo's ground-truth check)",
    2: "bad input",
    3: "the generator saturated: the numbers may be the tool's, not the agent's",
    4: "a master did not get its workers in time",
    5: "the results are incomplete: summary.json or some call records could not be written",
    130: "stopped by SIGINT",
    143: "stopped by SIGTERM",
}


def _d(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


def _l(v: Any) -> list[Any]:
    """``v`` if it is a list, else none: a summary.json of another version may differ."""
    return v if isinstance(v, list) else []


def _num(v: Any) -> float:
    return float(v) if isinstance(v, int | float) else 0.0


def num(v: float) -> str:
    """A measured figure: 1,234.5 / 12.3 / 0.987 (tick labels use the coarser fmt_num)."""
    return f"{v:,.1f}" if abs(v) >= 10 else f"{v:.3g}"


def _ms(v: Any) -> str:
    return f"{num(float(v))} ms" if isinstance(v, int | float) else "-"


def table(head: Sequence[str], rows: Sequence[Sequence[Any]], css: str = "") -> str:
    """An HTML table; every cell escaped (pass pre-built markup through :class:`Raw`)."""
    def cell(v: Any) -> str:
        return v.html if isinstance(v, Raw) else esc("-" if v is None else v)
    th = "".join(f"<th>{esc(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in r) + "</tr>" for r in rows)
    return f'<table class="{esc(css)}"><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>'


class Raw:
    """Markup built here (already escaped) to put in a table cell as is."""

    def __init__(self, html: str) -> None:
        self.html = html


def verdict(summary: dict[str, Any], exit_code: int | None, *,
            summary_lost: str | None = None) -> tuple[str, list[str]]:
    """(``ok`` / ``bad`` / ``warn`` / ``incomplete``, the reasons) for the header's verdict.

    ``summary_lost`` (summary.json missing or unreadable: a killed run) is never ``ok``:
    nothing judged the run, so nothing says it passed. Exit 5 (the run could not write
    all its results) is ``incomplete`` too.
    """
    why: list[str] = []
    if summary_lost:
        why.append(f"results incomplete: {summary_lost}: not judged")
    gen, run = _d(summary.get("generator")), _d(summary.get("run"))
    if run.get("ended_by") == "signal":
        why.append("stopped by a signal")
    if gen.get("saturated"):
        why.append("the generator saturated")
    if summary.get("failure"):
        why.append(str(summary["failure"]))
    failed_gates = [g for g in _l(summary.get("gates")) if isinstance(g, dict)
                    and not g.get("passed")]
    if failed_gates:
        why.append(f"{len(failed_gates)} gate(s) failed")
    gt = _d(summary.get("ground_truth"))
    if gt.get("out_of_bounds"):
        why.append(f"ground-truth check out of bounds: {gt['out_of_bounds']}")
    if exit_code is not None:
        meaning = EXIT_MEANING.get(exit_code, "")
        why.insert(0, f"exit {exit_code}" + (f": {meaning}" if meaning else ""))
        if exit_code == 5 or (exit_code == 0 and summary_lost):
            return "incomplete", why
        return ("ok" if exit_code == 0 else "warn" if exit_code == 3 else "bad"), why
    if summary_lost:
        return ("incomplete" if len(why) == 1 else "bad"), why
    return ("ok" if not why else "bad"), why or ["no failure recorded in summary.json"]


VERDICT_LABEL = {"ok": "PASSED", "bad": "FAILED", "warn": "UNTRUSTED",
                 "incomplete": "INCOMPLETE"}


def header(data: RunData, exit_code: int | None) -> str:
    s = data.summary
    run = _d(s.get("run"))
    state, why = verdict(s, exit_code, summary_lost=data.summary_lost)
    rows = [
        ("run", run.get("name", data.directory.name)),
        ("target", redact_url(str(run.get("target", "-")))),
        ("transport", run.get("transport")),
        ("users", run.get("users") if run.get("shape") is None else
         f"{run.get('users')} ({run.get('shape')} shape)"),
        ("duration", f"{fmt_num(run['duration_s'])} s planned" if isinstance(
            run.get("duration_s"), int | float) else None),
        ("elapsed", f"{fmt_num(run['elapsed_s'])} s, ended by {run.get('ended_by', '?')}"
         if isinstance(run.get("elapsed_s"), int | float) else None),
        ("processes", run.get("processes")),
        ("results", str(data.directory)),
    ]
    facts = "".join(f"<dt>{esc(k)}</dt><dd>{esc('-' if v is None else v)}</dd>"
                    for k, v in rows)
    reasons = "".join(f"<li>{esc(redact_text(w))}</li>" for w in why)
    return (f'<header><h1>loadcaller run report: {esc(run.get("name", "?"))}</h1>'
            f'<dl class="facts">{facts}</dl><div class="verdict {state}" id="verdict">'
            f'<b>{VERDICT_LABEL[state]}</b><ul>{reasons}</ul></div></header>')


def banners(data: RunData) -> str:
    """Warnings that change how every number below must be read."""
    out = []
    gen = _d(data.summary.get("generator"))
    if gen.get("saturated"):
        reasons = "; ".join(str(r) for r in _l(gen.get("saturation_reasons")))
        out.append("<b>The generator saturated.</b> The tool, not the agent, may have set "
                   "these numbers: its media clock ran late or it ran out of CPU"
                   + (f" ({esc(reasons)})" if reasons else "") + ". "
                   + esc(saturation_advice(gen)))
    if data.summary_error:
        out.append(f"summary.json could not be read ({esc(data.summary_error)}): figures "
                   "below come from the JSONL files only.")
    elif data.summary_lost:
        out.append("There is no summary.json (the run did not reach its end): figures "
                   "below come from the JSONL files only.")
    if data.missing:
        out.append(f"Missing from the results directory: {esc(', '.join(data.missing))}.")
    for name, n in sorted(data.bad_lines.items()):
        out.append(f"{n:,} malformed line(s) in {esc(name)} were skipped.")
    if data.turns.sampled:
        out.append(f"{data.turns.seen:,} turns: plots use a uniform sample of "
                   f"{len(data.turns.items):,} (counts and outcomes are exact).")
    return "".join(f'<div class="banner">{b}</div>' for b in out)


def from_jsonl(values: Sequence[float], count: int) -> dict[str, Any]:
    """A summary.json-like figure (count, p50, p95, p99, max) from the JSONL's values."""
    ordered = sorted(values)
    if not ordered:
        return {"count": count}
    return {"count": count, "max": ordered[-1],
            **{f"p{q}": plots.percentile(ordered, q) for q in (50, 95, 99)}}


def latency(data: RunData, windows: Sequence[plots.Window]) -> str:
    s = data.summary
    rows = []
    if data.summary_lost:  # a killed run: what the JSONL files hold (the kept sample)
        figures: list[tuple[str, Any]] = [
            ("turn latency", from_jsonl([t.latency_ms for t in data.turns.items
                                         if t.latency_ms is not None], data.latencies_seen)),
            ("greeting latency", from_jsonl(data.greeting_ms.items, data.greeting_ms.seen)),
            ("call setup", from_jsonl(data.setup_ms.items, data.setup_ms.seen))]
    else:
        figures = [("turn latency", _d(s.get("turns")).get("latency_ms")),
                   ("greeting latency", s.get("greeting_latency_ms")),
                   ("call setup", s.get("setup_ms"))]
    for label, fig in figures:
        f = _d(fig)
        rows.append((label, f.get("count", 0), _ms(f.get("p50")), _ms(f.get("p95")),
                     _ms(f.get("p99")), _ms(f.get("max"))))
    unsat = _d(s.get("turns")).get("latency_ms_unsaturated")
    if _d(s.get("turns")).get("generator_saturated") and isinstance(unsat, dict):
        rows.insert(1, ("turn latency, unsaturated turns", unsat.get("count", 0),
                        _ms(unsat.get("p50")), _ms(unsat.get("p95")), _ms(unsat.get("p99")),
                        _ms(unsat.get("max"))))
    svg, drawn = plots.latency_over_time(data, windows, plots.saturated_stretches(s))
    note = ""
    if data.summary_lost and (data.turns.sampled or data.setup_ms.sampled
                              or data.greeting_ms.sampled):
        note += ('<p class="note">Percentiles from the uniform sample the report keeps '
                 "(there are no summary.json histograms); counts are exact.</p>")
    if drawn < len(data.turns.items):
        note += (f'<p class="note">{drawn:,} of {len(data.turns.items):,} turns drawn '
                 "(evenly thinned); the rolling lines use them all.</p>")
    return (section("latency", "Latency", table(("", "count", "p50", "p95", "p99", "max"), rows)
                    + svg + note))


def distribution(data: RunData) -> str:
    rows = []
    for ph in _l(data.summary.get("phases")):
        ph = _d(ph)
        lat = _d(ph.get("latency_ms"))
        outcomes = _d(ph.get("outcomes"))
        unanswered = sum(int(n) for o, n in outcomes.items() if o != "answered"
                         and isinstance(n, int))
        rows.append((plots.phase_label(tuple(str(f) for f in _l(ph.get("faults")))),
                     ph.get("turns"), _ms(lat.get("p50")), _ms(lat.get("p95")), unanswered,
                     ph.get("agent_fallbacks", "-")))
    phase_table = table(("chaos phase", "turns", "p50", "p95", "unanswered", "agent fallbacks"),
                        rows) if rows else '<p class="note">No chaos fault touched a turn.</p>'
    return section("distribution", "Latency distribution",
                   plots.cdf_by_turn(data) + plots.cdf_by_phase(data) + phase_table
                   + plots.setup_greeting_cdf(data))


def outcomes(data: RunData) -> str:
    def bad_call(k: str) -> bool:
        return k not in NOT_FAILED

    calls = bar_chart("call-outcomes", f"Call outcomes ({data.calls_seen:,} calls)",
                      data.call_outcomes.most_common(), bad=bad_call)
    turns = bar_chart("turn-outcomes", f"Turn outcomes ({sum(data.turn_outcomes.values()):,} "
                      "turns)", data.turn_outcomes.most_common(), bad=lambda k: k != "answered")
    reasons = table(("failure reason", "calls"), data.reasons.most_common(10)) if (
        data.reasons) else ""
    return section("outcomes", "Outcomes", calls + turns + reasons)


def measured(value: Any, unit: str = "") -> str:
    """A gate's measured value: ``false``, ``20``, ``0.925``, ``1,234.5 ms`` (``-``: no data).

    A bool is checked before numbers (it is an int to Python) and a count stays an integer.
    """
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        text = f"{value:,}"
    elif isinstance(value, float):
        text = num(value)
    else:
        return str(value)
    return f"{text} {unit}".strip()


def gates(data: RunData) -> str:
    rows = []
    for g in _l(data.summary.get("gates")):
        g = _d(g)
        shown = measured(g.get("value"), str(g.get("unit") or ""))
        ok = bool(g.get("passed"))
        rows.append((g.get("gate"), g.get("phase") or "all", shown,
                     Raw(f'<span class="{"pass" if ok else "fail"}">'
                         f'{"pass" if ok else "FAIL"}</span>')))
    if not rows:
        return ""
    return section("gates", "Gates", table(("gate", "phase", "measured", "verdict"), rows))


def health(data: RunData) -> str:
    gen = _d(data.summary.get("generator"))
    if not gen:
        return section("generator", "Generator health", '<p class="note">Not recorded.</p>')
    lag, loop = _d(gen.get("media_clock_lag_ms")), _d(gen.get("event_loop_lag_ms"))
    cpu = (f"mean {100 * gen['cpu_ratio_mean']:.0f}%, peak "
           f"{100 * _num(gen.get('cpu_ratio_peak')):.0f}% of a core (busiest process)"
           if isinstance(gen.get("cpu_ratio_mean"), int | float)
           else f"{100 * gen['cpu_ratio']:.0f}%" if isinstance(gen.get("cpu_ratio"), int | float)
           else f"{gen['cpu_percent']:.0f}%" if isinstance(gen.get("cpu_percent"), int | float)
           else "-")
    rows = [("media clock lag", f"p50 {_ms(lag.get('p50'))}, p99 {_ms(lag.get('p99'))}, "
             f"max {_ms(lag.get('max'))}"),
            ("event loop lag", f"p99 {_ms(loop.get('p99'))}, max {_ms(loop.get('max'))}"),
            ("skipped media ticks", gen.get("skipped_ticks", "-")),
            ("CPU", cpu),
            ("this machine's CPUs", _host_cpu(gen.get("host_cpu"))),
            ("saturation threshold", _ms(gen.get("saturation_lag_ms"))),
            ("saturated", "YES: " + "; ".join(str(r) for r in _l(gen.get("saturation_reasons")))
             if gen.get("saturated") else "no")]
    for w in plots.saturated_stretches(data.summary)[:20]:
        rows.append(("saturated stretch", f"{w.t0 - (data.t_origin or 0.0):.1f} s to "
                     f"{w.t1 - (data.t_origin or 0.0):.1f} s after the first call"))
    return section("generator", "Generator health", table(("", ""), rows, "kv"))


def _host_cpu(host: Any) -> str:
    """The machines' CPUs, agent and all (loadcaller/hostcpu.py), and the warning."""
    h = _d(host)
    try:
        mean, peak, cpus = float(h["busy_mean"]), float(h["busy_peak"]), int(h["cpus"])
    except (KeyError, TypeError, ValueError):
        return "-"
    text = f"busy mean {100 * mean:.0f}%, peak {100 * peak:.0f}% of {cpus} CPUs"
    if peak >= BUSY_WARN:
        text += (": an agent (or its backend, or a proxy) on this machine waited for CPU, "
                 "and its latency includes that wait")
    return text


def media(data: RunData) -> str:
    m = _d(data.summary.get("media"))
    if not m:
        return ""
    jit, mos = _d(m.get("jitter_ms")), _d(m.get("mos"))
    loss = m.get("loss_ratio")
    rows = [("calls with media figures", m.get("calls")),
            ("packets sent / received", f"{m.get('packets_sent', '-')} / "
             f"{m.get('packets_received', '-')}"),
            ("loss", f"{100 * loss:.2f}%" if isinstance(loss, int | float) else "-"),
            ("jitter", f"p50 {_ms(jit.get('p50'))}, p95 {_ms(jit.get('p95'))}"),
            ("MOS", f"p50 {mos.get('p50', '-')}, p5 {mos.get('p5', '-')}, "
             f"min {mos.get('min', '-')}")]
    return section("media", "Media (RTP)", table(("", ""), rows, "kv"))


def calls(data: RunData, windows: Sequence[plots.Window]) -> str:
    def one(c: dict[str, Any], extra: str) -> str:
        turns = data.call_turns.get(str(c.get("call_id")), [])
        outcome = str(c.get("outcome", "?"))
        head = (f'<h3><span class="{"pass" if outcome in NOT_FAILED else "fail"}">'
                f'{esc(outcome)}</span> {esc(c.get("call_id"))} <small>{esc(c.get("scenario"))}'
                f' · {esc(extra)} · setup {_ms(c.get("setup_ms"))} · greeting '
                f'{_ms(c.get("greeting_ms"))}</small></h3>'
                f'<p class="reason">{esc(redact_text(str(c.get("reason", ""))))}</p>')
        if not turns and c.get("setup_ms") is None:  # never connected: nothing to draw
            return (f'<div class="call">{head}<p class="note">Never connected; gave up after '
                    f'{_ms(c.get("duration_ms"))}.</p></div>')
        return f'<div class="call">{head}{plots.call_timeline(c, turns, windows)}</div>'

    slow = "".join(one(c, f"slowest turn {_ms(c.get('slowest_turn_ms'))}") for c in data.slow)
    failed = "".join(one(c, f"{c.get('turns', 0)} turns") for c in data.failed)
    more = (f'<p class="note">Showing the first {len(data.failed)} of {data.failed_seen:,} '
            "failed calls.</p>") if data.failed_seen > len(data.failed) else ""
    known = any(t.t_speech_start is not None for ts in data.call_turns.values() for t in ts)
    legend = ('<p class="note">Lanes: the call (setup, then connected), the caller (the end '
              "of each utterance" + (", the utterance" if known else "") + "), the agent (the "
              "silence the caller heard until the reply began, labelled with the turn's "
              "latency, then the reply), and the chaos faults active. Hover a bar for "
              "details.</p>")
    return (section("slowest", "Slowest calls", legend + (slow or
                    '<p class="note">No answered turns.</p>'))
            + section("failed", f"Failed calls ({data.failed_seen:,})",
                      (failed + more) or '<p class="note">No call failed.</p>'))


def profile(data: RunData) -> str:
    if data.profile_text is None:
        body = ('<p class="note">This results directory keeps no profile.yaml (written by '
                "runs from this version on).</p>")
    else:
        body = f"<pre>{esc(data.profile_text)}</pre>"
    return section("profile", "Profile used", body)


def section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{esc(anchor)}"><h2>{esc(title)}</h2>{body}</section>'
