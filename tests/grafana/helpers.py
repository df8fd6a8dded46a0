"""What the Grafana tests share: the generator, the committed dashboards, their queries."""

from __future__ import annotations

import importlib.util
import json
import re
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

GRAFANA = Path(__file__).resolve().parents[2] / "grafana"
DASHBOARDS = GRAFANA / "dashboards"
RULES = GRAFANA / "prometheus" / "rules"

# Grafana's global variables the dashboards may use without defining them
BUILTIN_VARIABLES = frozenset({"__rate_interval", "__interval", "__range", "__all"})
VARIABLE = re.compile(r"\$(?:\{(\w+)(?::\w+)?\}|(\w+))")


def generator() -> ModuleType:
    """grafana/build_dashboards.py, imported from its file (grafana/ is no package)."""
    spec = importlib.util.spec_from_file_location("build_dashboards",
                                                  GRAFANA / "build_dashboards.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def dashboards() -> dict[str, dict[str, Any]]:
    """The committed dashboards by file name."""
    return {p.name: json.loads(p.read_text(encoding="utf-8"))
            for p in sorted(DASHBOARDS.glob("*.json"))}


def panels(dash: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, rows' nested panels included."""
    for panel in dash.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def queries(dash: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, PromQL) of every panel target and Prometheus annotation."""
    for panel in panels(dash):
        for t in panel.get("targets", []):
            yield f"panel {panel['id']} {panel['title']!r} {t['refId']}", t["expr"]
    for ann in dash["annotations"]["list"]:
        if "expr" in ann:
            yield f"annotation {ann['name']!r}", ann["expr"]


def variables_used(text: str) -> set[str]:
    return {a or b for a, b in VARIABLE.findall(text)}
