"""Write grafana/dashboards/*.json: the "Voice load" and "Chaos" dashboards.

The committed JSON is what Grafana loads (grafana/provisioning/dashboards/
loadcaller.yaml); this script is how it is written, so that panels share one
layout and one way of selecting a run. Run it after an edit and commit both;
tests/grafana/test_dashboards.py fails when they differ:

    python grafana/build_dashboards.py

How a run is selected: every loadcaller target serves
``loadcaller_run_info{run, profile} 1`` (run: the results directory's name).
The recording rules in grafana/prometheus/rules/loadcaller.yml join it on
(job, instance), so recorded series carry ``run``; panels that read raw series
join it themselves (:data:`RUN_JOIN`). The chaos proxy and the reference agent
serve one run at a time and carry no run label: the time range picks them.

Only the standard library: the output is plain JSON in Grafana's schema 39.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUT = HERE / "dashboards"
DATASOURCE_UID = "loadcaller-prometheus"  # provisioning/datasources/prometheus.yaml
DS = {"type": "prometheus", "uid": DATASOURCE_UID}
SCHEMA_VERSION = 39
WIDTH = 24  # Grafana's grid columns

SEL = 'run=~"$run", scenario=~"$scenario", transport=~"$transport"'
RUN_JOIN = '* on (job, instance) group_left (run) loadcaller_run_info{run=~"$run"}'

Panel = dict[str, Any]


def target(expr: str, legend: str = "", ref: str = "A", **extra: Any) -> dict[str, Any]:
    return {"datasource": DS, "expr": expr, "legendFormat": legend, "refId": ref,
            "range": True, **extra}


def timeseries(title: str, targets: list[dict[str, Any]], *, unit: str = "short",
               description: str = "", stack: bool = False, **options: Any) -> Panel:
    custom: dict[str, Any] = {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10,
                              "showPoints": "never", "spanNulls": False}
    if stack:
        custom["stacking"] = {"mode": "normal", "group": "A"}
    return {"type": "timeseries", "title": title, "description": description,
            "datasource": DS, "targets": targets,
            "fieldConfig": {"defaults": {"unit": unit, "custom": custom}, "overrides": []},
            "options": {"legend": {"displayMode": "table", "placement": "right",
                                   "calcs": ["lastNotNull", "max"]},
                        "tooltip": {"mode": "multi", "sort": "desc"}, **options}}


def stat(title: str, expr: str, *, unit: str = "short", description: str = "",
         thresholds: list[tuple[float | None, str]] | None = None) -> Panel:
    steps = [{"color": c, "value": v} for v, c in (thresholds or [(None, "green")])]
    return {"type": "stat", "title": title, "description": description, "datasource": DS,
            "targets": [target(expr)],
            "fieldConfig": {"defaults": {"unit": unit, "thresholds": {"mode": "absolute",
                                                                      "steps": steps}},
                            "overrides": []},
            "options": {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "",
                                          "values": False},
                        "colorMode": "value", "graphMode": "area", "textMode": "auto"}}


def heatmap(title: str, expr: str, description: str = "") -> Panel:
    return {"type": "heatmap", "title": title, "description": description, "datasource": DS,
            "targets": [target(expr, "{{le}}", format="heatmap")],
            "fieldConfig": {"defaults": {}, "overrides": []},
            "options": {"calculate": False, "yAxis": {"unit": "s"},
                        "cellGap": 1, "color": {"mode": "scheme", "scheme": "Oranges",
                                                "exponent": 0.5, "steps": 64},
                        "rowsFrame": {"layout": "le"}, "tooltip": {"show": True}}}


def row(title: str) -> Panel:
    return {"type": "row", "title": title, "collapsed": False, "panels": []}


def layout(rows: list[list[tuple[Panel, int, int]]]) -> list[Panel]:
    """Place panels left to right, row after row: (panel, width, height); ids from 1."""
    out: list[Panel] = []
    y = 0
    for line in rows:
        x = 0
        height = 0
        for panel, w, h in line:
            if x + w > WIDTH:
                raise ValueError(f"row overflows at {panel['title']!r}")
            out.append({"id": len(out) + 1, "gridPos": {"x": x, "y": y, "w": w, "h": h},
                        **panel})
            x += w
            height = max(height, h)
        y += height
    return out


def variable(name: str, label: str, query: str, *, multi: bool = True) -> dict[str, Any]:
    return {"name": name, "label": label, "type": "query", "datasource": DS,
            "query": {"query": query, "refId": f"{name}-values"}, "definition": query,
            "refresh": 2, "sort": 1, "multi": multi, "includeAll": True, "allValue": ".*",
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
            "options": [], "hide": 0}


CHAOS_WINDOWS = {
    "name": "Chaos windows", "enable": True, "datasource": DS,
    "iconColor": "rgba(255, 96, 96, 0.4)",
    "expr": "max by (fault) (chaos_fault_active) > 0", "step": "1s",
    "titleFormat": "{{fault}}", "textFormat": "chaos fault {{fault}} active",
    "tagKeys": "fault", "useValueForTime": False,
}


def dashboard(uid: str, title: str, description: str, panels: list[Panel],
              variables: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "uid": uid, "title": title, "description": description, "tags": ["loadcaller"],
        "schemaVersion": SCHEMA_VERSION, "version": 1, "editable": True,
        "graphTooltip": 1, "timezone": "", "refresh": "5s",
        "time": {"from": "now-15m", "to": "now"}, "timepicker": {},
        "fiscalYearStartMonth": 0, "liveNow": False, "links": [],
        "annotations": {"list": [
            {"builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"},
             "enable": True, "hide": True, "iconColor": "rgba(0, 211, 255, 1)",
             "name": "Annotations & Alerts", "type": "dashboard"},
            CHAOS_WINDOWS]},
        "templating": {"list": variables},
        "panels": panels,
    }


def voice_load() -> dict[str, Any]:
    lat = "loadcaller:turn_latency_seconds"
    quantiles = [target(f"{lat}:p{q}_1m{{{SEL}}}", f"p{q} {{{{scenario}}}} {{{{transport}}}}",
                        ref) for q, ref in (("50", "A"), ("95", "B"), ("99", "C"))]
    # greeting and set-up happen once per call, at its start: over the run so far (a 1 m
    # rate of them is empty while long calls go on; grafana/prometheus/rules/loadcaller.yml)
    greeting = [target(f"loadcaller:greeting_latency_seconds:p{q}_run{{{SEL}}}",
                       f"p{q} {{{{scenario}}}} {{{{transport}}}}", ref)
                for q, ref in (("50", "A"), ("95", "B"))]
    setup = [target(f'loadcaller:call_setup_seconds:p{q}_run{{run=~"$run", '
                    f'transport=~"$transport"}}', f"p{q} {{{{transport}}}}", ref)
             for q, ref in (("50", "A"), ("95", "B"))]
    panels = layout([
        [(row("Overview"), 24, 1)],
        [(stat("Active calls", f"sum(loadcaller_active_calls {RUN_JOIN})"), 6, 4),
         (stat("Turn latency p95",
               'max(run:loadcaller_turn_latency_seconds:p95_1m{run=~"$run"})', unit="s",
               thresholds=[(None, "green"), (1.5, "red")]), 6, 4),
         (stat("Answered ratio", 'min(run:loadcaller_turns_answered:ratio_1m{run=~"$run"})',
               unit="percentunit", thresholds=[(None, "red"), (0.98, "green")]), 6, 4),
         (stat("Generator saturated", f"max(loadcaller_generator_saturated {RUN_JOIN})",
               description="1: the load generator, not the agent, may have set the numbers",
               thresholds=[(None, "green"), (1, "red")]), 6, 4)],
        [(row("Agent latency"), 24, 1)],
        [(timeseries("Turn latency p50 / p95 / p99", quantiles, unit="s",
                     description="End of the caller's speech to the onset of the agent's "
                     "reply as heard, per scenario and transport (1 m window). Red regions: "
                     "chaos faults active."), 12, 9),
         (heatmap("Turn latency distribution",
                  f"sum by (le) ({lat}_bucket:rate1m{{{SEL}}})",
                  "Turns per second in each latency bucket"), 12, 9)],
        [(timeseries("Greeting latency (run so far)", greeting, unit="s",
                     description="Call answered to the agent's first speech, over every "
                     "call of the run so far"), 12, 8),
         (timeseries("Call setup (run so far)", setup, unit="s",
                     description="Dial to call set up (connect and upgrade, or SIP INVITE "
                     "to 200), over every call of the run so far"), 12, 8)],
        [(row("Calls and turns"), 24, 1)],
        [(timeseries("Calls by outcome", [target(
            'sum by (outcome) (loadcaller:calls:rate1m{run=~"$run"})', "{{outcome}}")],
            unit="reqps", stack=True, description="Calls finished per second"), 8, 8),
         (timeseries("Turns by outcome", [target(
             'sum by (outcome) (loadcaller:turns:rate1m{run=~"$run"})', "{{outcome}}")],
             unit="reqps", stack=True, description="Turns measured per second"), 8, 8),
         (timeseries("Active calls", [target(f"sum(loadcaller_active_calls {RUN_JOIN})",
                                             "active"),
                                      target(f"sum(loadcaller_users {RUN_JOIN})", "users",
                                             "B")]), 8, 8)],
        [(timeseries("Agent fallbacks", [
            target("sum by (reason) (rate(loadcaller_agent_fallbacks_total"
                   "[$__rate_interval]))", "fallback: {{reason}}"),
            target('sum(rate(loadcaller_agent_replies_total{reply="backend"}'
                   '[$__rate_interval]))', "backend replies", "B")],
            unit="reqps", description="Replies the agent made up because its backend "
            "timed out or failed (served by the reference agent's /metrics): a fault the "
            "agent masks this way shows here, not in latency"), 12, 8),
         (timeseries("Chaos faults active", [target("max by (fault) (chaos_fault_active)",
                                                    "{{fault}}")],
                     description="1 while the chaos proxy injects the fault"), 12, 8)],
        [(row("Load generator health (the tool, not the agent)"), 24, 1)],
        [(timeseries("Media clock lag p99", [target(
            'loadcaller:media_clock_lag_seconds:p99_1m{run=~"$run"}', "lag p99")], unit="s",
            description="How late the callers' 20 ms ticks began; a few ms and up means "
            "latency figures include the tool's own delay"), 8, 8),
         (timeseries("Caller CPU", [target(f"max by (process) (loadcaller_generator_cpu_ratio "
                                           f"{RUN_JOIN})", "process {{process}}")],
                     unit="percentunit", description="Each caller process's CPU (1 = one "
                     "core busy)"), 8, 8),
         (timeseries("Generator saturated", [target(
             f"max(loadcaller_generator_saturated {RUN_JOIN})", "saturated")],
             description="1: do not trust the latency figures of this window"), 8, 8)],
    ])
    variables = [
        variable("run", "Run", "label_values(loadcaller_run_info, run)"),
        variable("scenario", "Scenario",
                 "label_values(loadcaller_turn_latency_seconds_bucket, scenario)"),
        variable("transport", "Transport",
                 "label_values(loadcaller_turn_latency_seconds_bucket, transport)"),
    ]
    return dashboard("loadcaller-voice-load", "Voice load",
                     "Per-turn latency of a voice agent under load, with chaos windows and "
                     "the load generator's own health", panels, variables)


def chaos() -> dict[str, Any]:
    sel = 'route=~"$route"'
    upstream = [target(f"chaos:upstream_latency_seconds:p{q}_1m{{{sel}}}",
                       f"p{q} {{{{route}}}}", ref)
                for q, ref in (("50", "A"), ("95", "B"), ("99", "C"))]
    panels = layout([
        [(timeseries("Faults active", [target("max by (fault) (chaos_fault_active)",
                                              "{{fault}}")]), 24, 6)],
        [(timeseries("Injections per fault and route", [target(
            f"sum by (fault, route) (chaos:faults_injected:rate1m{{{sel}}})",
            "{{fault}} on {{route}}")], unit="reqps", stack=True,
            description="Times a fault acted, per second"), 12, 8),
         (timeseries("Requests by outcome", [target(
             f"sum by (route, outcome) (rate(chaos_requests_total{{{sel}}}"
             "[$__rate_interval]))", "{{route}} {{outcome}}")], unit="reqps", stack=True,
             description="Requests and messages through each route"), 12, 8)],
        [(timeseries("Upstream latency", upstream, unit="s",
                     description="Time to the upstream's response headers, as the proxy "
                     "saw it (the fault's delay is not in it)"), 24, 8)],
    ])
    variables = [variable("route", "Route",
                          "label_values(chaos_upstream_latency_seconds_bucket, route)")]
    return dashboard("loadcaller-chaos", "Chaos", "What the chaos proxy injected and how "
                     "the upstream behaved", panels, variables)


DASHBOARDS = {"voice-load.json": voice_load, "chaos.json": chaos}


def render(build: Any) -> str:
    return json.dumps(build(), indent=2, sort_keys=True) + "\n"


def main(argv: list[str]) -> int:
    OUT.mkdir(exist_ok=True)
    for name, build in DASHBOARDS.items():
        (OUT / name).write_text(render(build), encoding="utf-8")
        print(f"wrote {OUT / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
