"""Config loading: located errors, unknown types, the CLI's exit code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from chaos.config import load_config, parse_config
from chaos.errors import ConfigError, UnknownFaultType
from chaos.faults import REGISTRY
from chaos.units import parse_duration

GOOD = """\
seed: 3
control:
  listen: 127.0.0.1:0
routes:
  - name: llm
    kind: http
    listen: 127.0.0.1:0
    upstream: http://127.0.0.1:8000
  - name: rtp
    kind: udp
    listen: 127.0.0.1:0
    upstream: 127.0.0.1:4000
faults:
  - type: latency
    route: llm
    delay: 250ms
    at: 30s
    for: 1m
  - type: udp_gilbert_elliott
    mean_loss: 0.05
    mean_burst: 3
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "chaos.yaml"
    path.write_text(text)
    return path


def test_good_config_loads(tmp_path):
    config = load_config(write(tmp_path, GOOD))
    assert [r.name for r in config.routes] == ["llm", "rtp"]
    latency, loss = config.faults
    assert latency.params.delay == 0.25 and latency.schedule.start == 30
    assert latency.schedule.length == 60 and latency.name == "latency-0"
    assert loss.settings.route is None and config.seed == 3


def test_bad_field_names_file_line_and_field(tmp_path):
    path = write(tmp_path, GOOD.replace("delay: 250ms", "delay: soonish"))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    issue = info.value.first
    assert (issue.source, issue.line, issue.field) == (str(path), 16, "faults[0].delay")
    assert "bad duration" in issue.message
    assert str(issue).startswith(f"{path}:16: faults[0].delay:")


def test_missing_and_unknown_fields_are_located(tmp_path):
    text = GOOD.replace("    kind: udp\n", "").replace("mean_burst: 3", "mean_brust: 3")
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    found = {(i.line, i.field) for i in info.value.issues}
    assert (9, "routes[1].kind") in found  # a missing field points at its mapping
    text = GOOD.replace("mean_burst: 3", "mean_brust: 3")
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    by_field = {i.field: i for i in info.value.issues}
    assert by_field["faults[1].mean_brust"].line == 21
    assert "mean_burst" in by_field["faults[1].mean_brust"].message  # lists real parameters
    assert by_field["faults[1].mean_burst"].message == "Field required"


def test_unknown_fault_type_lists_known_ones(tmp_path):
    with pytest.raises(UnknownFaultType) as info:
        load_config(write(tmp_path, GOOD.replace("type: latency", "type: latenzy")))
    message = str(info.value)
    assert "latenzy" in message and ":14:" in message
    for name in ("latency", "schema_drift", "sse_stall", "ws_close", "udp_gilbert_elliott"):
        assert name in message
    assert sorted(info.value.known) == sorted(REGISTRY)


def test_route_checks():
    base = {"routes": [{"name": "a", "kind": "http", "listen": "127.0.0.1:0",
                        "upstream": "http://x"}]}
    with pytest.raises(ConfigError, match="unknown route 'b'"):
        parse_config({**base, "faults": [{"type": "reset", "route": "b"}]})
    with pytest.raises(ConfigError, match="acts on ws routes"):
        parse_config({**base, "faults": [{"type": "ws_drop", "route": "a"}]})
    with pytest.raises(ConfigError, match="must start with"):
        parse_config({"routes": [{"name": "a", "kind": "ws", "listen": "127.0.0.1:0",
                                  "upstream": "http://x"}]})
    with pytest.raises(ConfigError, match="a ramp needs `over`"):
        parse_config({**base, "faults": [{"type": "reset", "ramp": {"from": 0, "to": 1}}]})
    with pytest.raises(ConfigError, match="cannot ramp 'status'"):
        parse_config({**base, "faults": [{"type": "status", "status": 500,
                                          "ramp": {"field": "status", "from": 1, "to": 2}}]})


def test_yaml_syntax_error_has_a_line(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, "routes:\n  - name: [unclosed\n"))
    assert info.value.first.line is not None and "invalid YAML" in str(info.value)


def test_durations():
    assert parse_duration("250ms") == 0.25
    assert parse_duration("1m30s") == 90
    assert parse_duration(2) == 2.0
    for bad in ("-1s", "fast", "", "1x", True, -3):
        with pytest.raises(ValueError):
            parse_duration(bad)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "chaos.cli", *args], capture_output=True,
                          text=True, timeout=30, cwd=Path(__file__).resolve().parents[2])


def test_cli_bad_config_exits_2_without_traceback(tmp_path):
    path = write(tmp_path, GOOD.replace("mean_loss: 0.05", "mean_loss: lots"))
    done = _cli("--config", str(path))
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert f"{path}:20: faults[1].mean_loss:" in done.stderr


def test_cli_check_and_unknown_type(tmp_path):
    done = _cli("--config", str(write(tmp_path, GOOD)), "--check")
    assert done.returncode == 0 and "ok (2 routes, 2 faults)" in done.stdout
    done = _cli("--config", str(write(tmp_path, GOOD.replace("latency", "nope"))))
    assert done.returncode == 2 and "known types:" in done.stderr
    assert "Traceback" not in done.stderr
    done = _cli("--config", str(tmp_path / "missing.yaml"))
    assert done.returncode == 2 and "cannot read" in done.stderr


def test_cli_refuses_public_control_without_token(tmp_path):
    done = _cli("--config", str(write(tmp_path, GOOD)), "--control", "0.0.0.0:0", "--check")
    assert done.returncode == 2 and "needs a token" in done.stderr


def test_cli_help_lists_options():
    done = _cli("--help")
    assert done.returncode == 0
    for option in ("--config", "--control", "--token", "--seed", "examples:"):
        assert option in done.stdout


def test_no_fault_parameter_shadows_a_shared_setting():
    from chaos.config import _SETTING_KEYS

    for name, cls in REGISTRY.items():
        clash = set(cls.Params.model_fields) & _SETTING_KEYS
        assert not clash, f"{name}: {clash} would be taken by the wrapper"


def test_settings_that_cannot_apply_are_errors():
    from chaos.config import parse_fault

    with pytest.raises(ConfigError, match="`direction` applies"):
        parse_fault({"type": "latency", "direction": "downstream"})
    with pytest.raises(ConfigError, match="`direction` applies"):
        parse_fault({"type": "ws_handshake_reject", "direction": "upstream"})
    with pytest.raises(ConfigError, match=r"match\.message"):
        parse_fault({"type": "status", "status": 500, "match": {"message": "text"}})
    with pytest.raises(ConfigError, match="UDP faults cannot match"):
        parse_fault({"type": "udp_loss", "loss": 0.1, "match": {"path": "/x"}})
    assert parse_fault({"type": "ws_drop", "direction": "upstream",
                        "match": {"message": "binary", "path": "/tts/*"}})


def test_cli_address_in_use_and_unresolvable_upstream_exit_1(tmp_path):
    import socket

    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        path = write(tmp_path, f"routes:\n  - {{name: a, kind: http, listen: '127.0.0.1:{port}', "
                               "upstream: 'http://127.0.0.1:9'}\n")
        done = _cli("--config", str(path))
    assert done.returncode == 1 and "cannot listen" in done.stderr
    assert "Traceback" not in done.stderr and "Unclosed" not in done.stderr
    path = write(tmp_path, "routes:\n  - {name: a, kind: udp, listen: '127.0.0.1:0', "
                           "upstream: 'no-such-host.invalid:9'}\n")
    done = _cli("--config", str(path))
    assert done.returncode == 1 and "cannot resolve upstream" in done.stderr
    assert "Traceback" not in done.stderr


def test_cli_token_from_environment_and_token_without_control(tmp_path):
    import os

    path = write(tmp_path, GOOD)
    env = {**os.environ, "CHAOS_PROXY_TOKEN": "from-env"}
    done = subprocess.run([sys.executable, "-m", "chaos.cli", "--config", str(path),
                           "--control", "0.0.0.0:0", "--check"], capture_output=True,
                          text=True, timeout=30, env=env,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr  # the token came from the environment
    no_control = write(tmp_path, GOOD.replace("control:\n  listen: 127.0.0.1:0\n", ""))
    done = _cli("--config", str(no_control), "--token", "t", "--check")
    assert done.returncode == 2 and "--token needs a control API" in done.stderr
