"""The committed dashboards load as Grafana expects them and are the generator's output."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from .helpers import (
    BUILTIN_VARIABLES,
    DASHBOARDS,
    GRAFANA,
    dashboards,
    generator,
    panels,
    queries,
    variables_used,
)

PROVISIONED = yaml.safe_load(
    (GRAFANA / "provisioning" / "datasources" / "prometheus.yaml").read_text())
UIDS = {ds["uid"] for ds in PROVISIONED["datasources"]}
ALL = dashboards()


def test_the_dashboards_are_committed_as_the_generator_writes_them():
    gen = generator()
    assert sorted(ALL) == sorted(gen.DASHBOARDS) == ["chaos.json", "voice-load.json"]
    for name, build in gen.DASHBOARDS.items():
        committed = (DASHBOARDS / name).read_text(encoding="utf-8")
        assert committed == gen.render(build), (
            f"grafana/dashboards/{name} differs from its generator: "
            "run `python grafana/build_dashboards.py` and commit the result")


@pytest.mark.parametrize("name", sorted(ALL))
def test_structure(name: str):
    dash = ALL[name]
    assert dash["schemaVersion"] >= 36 and dash["uid"] and dash["title"]
    ids = [p["id"] for p in panels(dash)]
    assert len(ids) == len(set(ids)), f"duplicate panel ids in {name}"
    taken: set[tuple[int, int]] = set()
    for panel in panels(dash):
        pos = panel["gridPos"]
        assert pos["w"] > 0 and pos["h"] > 0 and pos["x"] >= 0 and pos["y"] >= 0, panel["title"]
        assert pos["x"] + pos["w"] <= 24, f"{panel['title']!r} is wider than the grid"
        cells = {(x, y) for x in range(pos["x"], pos["x"] + pos["w"])
                 for y in range(pos["y"], pos["y"] + pos["h"])}
        assert not cells & taken, f"{panel['title']!r} overlaps another panel"
        taken |= cells
        if panel["type"] != "row":
            assert panel["targets"], f"{panel['title']!r} has no query"


def datasource_refs(node: Any) -> list[dict[str, Any]]:
    """Every `datasource` object anywhere in the dashboard."""
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasource" and isinstance(value, dict):
                found.append(value)
            else:
                found.extend(datasource_refs(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(datasource_refs(item))
    return found


@pytest.mark.parametrize("name", sorted(ALL))
def test_every_datasource_is_the_provisioned_one(name: str):
    refs = datasource_refs(ALL[name])
    prometheus_refs = [r for r in refs if r.get("type") != "grafana"]
    assert prometheus_refs
    for ref in prometheus_refs:
        assert ref == {"type": "prometheus", "uid": ref["uid"]} and ref["uid"] in UIDS, ref
    # the built-in annotation is Grafana's own; nothing else is
    assert all(r["uid"] == "-- Grafana --" for r in refs if r.get("type") == "grafana")


@pytest.mark.parametrize("name", sorted(ALL))
def test_every_variable_used_is_defined(name: str):
    dash = ALL[name]
    defined = {v["name"] for v in dash["templating"]["list"]}
    used = set()
    for _, expr in queries(dash):
        used |= variables_used(expr)
    for v in dash["templating"]["list"]:
        used |= variables_used(v["definition"])
    assert used - BUILTIN_VARIABLES <= defined, f"undefined: {used - BUILTIN_VARIABLES - defined}"
    assert defined <= used, f"defined but never used: {defined - used}"


def test_voice_load_has_what_the_review_needs():
    dash = ALL["voice-load.json"]
    assert {v["name"] for v in dash["templating"]["list"]} == {"run", "scenario", "transport"}
    exprs = " ".join(expr for _, expr in queries(dash))
    for needed in ("turn_latency_seconds:p50", "turn_latency_seconds:p95",
                   "turn_latency_seconds:p99", "greeting_latency", "call_setup",
                   "loadcaller:calls:rate1m", "loadcaller:turns:rate1m", "active_calls",
                   "agent_fallbacks", "media_clock_lag", "generator_cpu_ratio",
                   "generator_saturated"):
        assert needed in exprs, needed
    assert any(p["type"] == "heatmap" for p in panels(dash))
    windows = [a for a in dash["annotations"]["list"] if "chaos_fault_active" in a.get("expr", "")]
    assert windows and windows[0]["titleFormat"] == "{{fault}}"


def test_a_broken_layout_is_caught_by_the_generator():
    gen = generator()
    with pytest.raises(ValueError, match="overflows"):
        gen.layout([[(gen.row("a"), 20, 1), (gen.row("b"), 8, 1)]])

