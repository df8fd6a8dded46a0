"""Prometheus's own promtool checks the rules, runs their unit tests, checks the config."""

from __future__ import annotations

import re
import subprocess

import pytest
import yaml

from tests.peers import require_binary

from .helpers import GRAFANA, RULES, dashboards, queries

RULE_FILES = sorted(p for p in RULES.glob("*.yml") if not p.name.endswith("_test.yml"))
TEST_FILES = sorted(RULES.glob("*_test.yml"))


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = require_binary("promtool", "prometheus")
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=120,
                          cwd=RULES, stdin=subprocess.DEVNULL)


def test_promtool_check_rules():
    assert RULE_FILES
    done = promtool("check", "rules", *map(str, RULE_FILES))
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("path", TEST_FILES, ids=lambda p: p.name)
def test_promtool_test_rules(path):
    done = promtool("test", "rules", str(path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_promtool_check_config():
    done = promtool("check", "config", str(GRAFANA / "prometheus" / "prometheus.yml"))
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_rule_file_is_loaded_and_unit_tested():
    config = yaml.safe_load((GRAFANA / "prometheus" / "prometheus.yml").read_text())
    loaded = {p.split("/")[-1] for p in config["rule_files"]}
    assert loaded == {p.name for p in RULE_FILES}
    tested = set()
    for path in TEST_FILES:
        tested |= set(yaml.safe_load(path.read_text())["rule_files"])
    assert tested == {p.name for p in RULE_FILES}


def test_a_broken_rule_fails_promtool(tmp_path):
    """The check is not a formality: a typo in an expression is refused."""
    bad = tmp_path / "bad.yml"
    bad.write_text("groups:\n  - name: x\n    rules:\n      - record: a:b\n"
                   "        expr: sum by (le (rate(x[1m]))\n")
    done = promtool("check", "rules", str(bad))
    assert done.returncode != 0


def test_every_recorded_series_the_dashboards_read_is_recorded():
    recorded = set()
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            recorded |= {r["record"] for r in group["rules"] if "record" in r}

    for name, dash in dashboards().items():
        for where, expr in queries(dash):
            for used in re.findall(r"\b[a-z_]*:[a-z0-9_:]+", expr):
                assert used in recorded, f"{name} {where}: {used} is not a recording rule"
