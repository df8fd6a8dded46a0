"""``loadcaller report``: one self-contained HTML file per run.

The page opens offline and fetches nothing: plots are inline SVG
(:mod:`loadcaller.report.svg`), styles and the few lines of script (legend
toggles) are inline, and a Content-Security-Policy of ``default-src 'none'``
with the style's and script's own hashes forbids every request and every other
script. So a reason an agent sent that reads ``<script>...`` is shown, escaped,
and would not run even if an escape were missed.

Every ``loadcaller run`` and ``loadcaller demo`` writes ``report.html`` into its
results directory at the end (:func:`write_run_report`, which never fails the run);
``loadcaller report DIR`` writes it again from the files, for older runs or a
different output path.
"""

from __future__ import annotations

import base64
import hashlib
import os
import sys
from pathlib import Path

from loadcaller.report import data as rd
from loadcaller.report import plots, sections
from loadcaller.report.svg import esc

REPORT_FILE = "report.html"
NAV = (("latency", "latency"), ("distribution", "distribution"), ("outcomes", "outcomes"),
       ("gates", "gates"), ("generator", "generator"), ("media", "media"),
       ("slowest", "slowest calls"), ("failed", "failed calls"), ("profile", "profile"))

CSS = """
:root{--fg:#1d2330;--mut:#5b6475;--bg:#fff;--line:#d9dde5;--bad:#c62828;--ok:#2e7d32;
--warn:#b26a00;--band:#ffb74d}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:var(--fg);
background:var(--bg);margin:0 auto;max-width:940px;padding:16px 24px 64px}
h1{font-size:22px;margin:8px 0}h2{font-size:18px;border-bottom:1px solid var(--line);
padding-bottom:4px;margin-top:32px}h3{font-size:14px;margin:18px 0 2px}
small,.note{color:var(--mut)}.note{font-size:13px}
nav a{margin-right:12px;color:var(--mut)}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:2px 16px;margin:8px 0}
dt{color:var(--mut)}dd{margin:0;word-break:break-all}
.verdict{padding:8px 12px;border-radius:6px;margin:10px 0;border:1px solid}
.verdict ul{margin:4px 0 0;padding-left:20px}
.verdict.ok{background:#e8f5e9;border-color:var(--ok)}
.verdict.bad{background:#ffebee;border-color:var(--bad)}
.verdict.warn,.verdict.incomplete,.banner{background:#fff3e0;border-color:var(--warn)}
.banner{border:1px solid var(--warn);padding:8px 12px;border-radius:6px;margin:8px 0}
table{border-collapse:collapse;margin:8px 0;font-variant-numeric:tabular-nums}
th,td{border-bottom:1px solid var(--line);padding:3px 10px;text-align:right}
th:first-child,td:first-child{text-align:left}table.kv td{text-align:left}
.pass{color:var(--ok);font-weight:600}.fail{color:var(--bad);font-weight:600}
.reason{margin:0;color:var(--mut);word-break:break-word}
pre{background:#f6f8fa;padding:10px;overflow:auto;font-size:12px;max-height:480px}
figure{margin:12px 0}figcaption{font-weight:600;margin-bottom:4px}
svg{width:100%;height:auto;display:block}
.grid{stroke:#eef0f4}.axis,.tickmark{stroke:#9aa3b2}
.tick,.label,.note,.bandlabel,.barlabel{font-size:11px;fill:var(--mut)}
.band rect{fill:var(--band);opacity:.22}.bandlabel{fill:#8a4b00}
.sat rect{fill:#7e57c2}.sat .bandlabel{fill:#4a2a8a}
.series polyline{fill:none;stroke-width:2}.series.off{display:none}
.s0 circle{fill:#3f6fd8;opacity:.55}.miss circle{fill:var(--bad)}
.p50 polyline{stroke:#1b2a4a}.p95 polyline{stroke:#8e24aa;stroke-dasharray:5 3}
.s0 polyline{stroke:#3f6fd8}.s1 polyline{stroke:#e65100}.s2 polyline{stroke:#2e7d32}
.s3 polyline{stroke:#8e24aa}.s4 polyline{stroke:#00838f}.s5 polyline{stroke:#c62828}
.s6 polyline{stroke:#6d4c41}.s7 polyline{stroke:#546e7a}
.legend{font-size:12px;color:var(--mut)}.key{margin-right:14px;cursor:pointer}
.key.off{opacity:.35}.key i{display:inline-block;width:12px;height:3px;margin-right:4px;
vertical-align:middle;background:#3f6fd8}.key.s1 i{background:#e65100}
.key.s2 i{background:#2e7d32}.key.s3 i,.key.p95 i{background:#8e24aa}
.key.s4 i{background:#00838f}.key.s5 i,.key.miss i{background:#c62828}
.key.s6 i{background:#6d4c41}.key.s7 i{background:#546e7a}.key.p50 i{background:#1b2a4a}
.bar rect{fill:#3f6fd8}.bar.bad rect{fill:var(--bad)}
.tl rect{fill:#90a4ae}.tl.setup rect{fill:#b0bec5}.tl.connected rect{fill:#cfd8dc}
.tl.bad rect{fill:#ef9a9a}.tl.speech rect{fill:#3f6fd8}.tl.wait rect{fill:#ffe082}
.tl.wait.bad rect{fill:#ef5350}.tl.reply rect,.tl.onset rect{fill:#2e7d32}
.tl.fault rect{fill:var(--band);opacity:.6}.barlabel{fill:#1d2330}
.call{border-top:1px dashed var(--line)}
"""

# Legend entries toggle their series; nothing else runs.
JS = """document.querySelectorAll('.legend .key').forEach(function(k){
k.addEventListener('click',function(){var f=k.closest('figure');
var s=k.getAttribute('data-series');f.querySelectorAll('.series').forEach(function(g){
if(g.getAttribute('data-series')===s){g.classList.toggle('off');}});
k.classList.toggle('off');});});"""


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


CSP = (f"default-src 'none'; style-src {_sha256(CSS)}; script-src {_sha256(JS)}; "
       "img-src 'none'; connect-src 'none'; form-action 'none'; base-uri 'none'")


def render(data: rd.RunData, *, exit_code: int | None = None) -> str:
    """The whole page for one run."""
    windows = plots.chaos_windows(data.turns.items)
    parts = [
        sections.latency(data, windows),
        sections.distribution(data),
        sections.outcomes(data),
        sections.gates(data),
        sections.health(data),
        sections.media(data),
        sections.calls(data, windows),
        sections.profile(data),
    ]
    shown = "".join(parts)
    nav = "".join(f'<a href="#{a}">{esc(t)}</a>' for a, t in NAV
                  if f'<section id="{a}">' in shown)
    body = [sections.header(data, exit_code), sections.banners(data), f"<nav>{nav}</nav>",
            *parts]
    name = sections._d(data.summary.get("run")).get("name", data.directory.name)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            '<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>loadcaller report: {esc(name)}</title><style>{CSS}</style></head>"
            f"<body>{''.join(body)}<script>{JS}</script></body></html>\n")


def write_report(directory: Path, out: Path | None = None, *,
                 exit_code: int | None = None) -> Path:
    """Read ``directory``'s results, write the report (atomically); return its path.

    Raises ``FileNotFoundError`` when ``directory`` is not a results directory
    (no summary.json, turns.jsonl or calls.jsonl), ``OSError`` when it cannot write.
    """
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory} is not a directory")
    if not any((directory / f).exists() for f in ("summary.json", "turns.jsonl",
                                                   "calls.jsonl")):
        raise FileNotFoundError(f"{directory} holds no summary.json, turns.jsonl or "
                                "calls.jsonl: not a loadcaller results directory")
    target = out or directory / REPORT_FILE
    page = render(rd.load(directory), exit_code=exit_code)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(page, encoding="utf-8")
        tmp.replace(target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OSError(f"cannot write the report to {target}: {exc.strerror or exc}") from exc
    except BaseException:  # no half-written page left behind, whatever stopped it
        tmp.unlink(missing_ok=True)
        raise
    return target


def write_run_report(directory: Path | None, exit_code: int | None) -> Path | None:
    """The end of a run: write its report; any error is a warning, never the run's."""
    if directory is None:
        return None
    try:
        path = write_report(directory, exit_code=exit_code)
    except Exception as exc:  # the run's results are safe on disk: only the page is lost
        print(f"loadcaller: warning: could not write the report: {type(exc).__name__}: "
              f"{exc}", file=sys.stderr, flush=True)
        return None
    print(f"  report: {path}", flush=True)  # stdout, beside the summary: stderr ends with why
    return path
