"""docs/faults.md documents every fault, and every YAML example in it loads."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from chaos.config import parse_config
from chaos.faults import REGISTRY

DOC = Path(__file__).resolve().parents[2] / "docs" / "faults.md"
ROUTES = [
    {"name": "api", "kind": "http", "listen": "127.0.0.1:0", "upstream": "http://127.0.0.1:1"},
    {"name": "llm", "kind": "http", "listen": "127.0.0.1:0", "upstream": "http://127.0.0.1:1"},
    {"name": "tts", "kind": "ws", "listen": "127.0.0.1:0", "upstream": "ws://127.0.0.1:1"},
    {"name": "rtp", "kind": "udp", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:1"},
]


def test_every_fault_has_a_section():
    headings = set(re.findall(r"^### (\w+)$", DOC.read_text(), flags=re.MULTILINE))
    missing = sorted(set(REGISTRY) - headings)
    assert not missing, f"docs/faults.md lacks sections for {missing}"


def test_every_yaml_example_loads():
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    assert len(blocks) > 30
    types_seen = set()
    for block in blocks:
        data = yaml.safe_load(block)
        if isinstance(data, dict):
            config = parse_config(data, "docs/faults.md")
        else:
            config = parse_config({"routes": ROUTES, "faults": data}, "docs/faults.md")
        types_seen |= {spec.cls.type for spec in config.faults}
    assert types_seen == set(REGISTRY)


def test_shipped_chaos_profiles_load():
    from chaos.config import load_config

    # chaos-proxy configs; profiles/ holds loadcaller profiles only
    profiles = sorted((DOC.parents[1] / "chaos" / "examples").glob("chaos-*.yaml"))
    assert len(profiles) >= 4
    for path in profiles:
        config = load_config(path)
        assert config.faults and config.seed is not None, path
