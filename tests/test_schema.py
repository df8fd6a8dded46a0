"""`loadcaller schema` accepts every profile we ship; `loadcaller validate` passes them all."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from loadcaller import yamlload
from loadcaller.profile import parse_profile, profile_json_schema

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = [*sorted((ROOT / "profiles").glob("*.yaml")), ROOT / "loadcaller" / "data" / "demo.yaml"]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    # profiles/pstn.yaml takes its auth token from the environment, as its comments say
    env = {**os.environ, "TWILIO_AUTH_TOKEN": os.environ.get("TWILIO_AUTH_TOKEN", "placeholder")}
    return subprocess.run([sys.executable, "-m", "loadcaller", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def printed() -> dict[str, Any]:
    """The schema exactly as `loadcaller schema` prints it."""
    proc = _cli("schema")
    assert proc.returncode == 0, proc.stderr
    schema: dict[str, Any] = json.loads(proc.stdout)
    return schema


@pytest.fixture(scope="module")
def validator(printed: dict[str, Any]) -> jsonschema.Draft202012Validator:
    jsonschema.Draft202012Validator.check_schema(printed)
    return jsonschema.Draft202012Validator(printed)


def _yaml(text: str) -> Any:
    _root, data, problems = yamlload.load(text)  # YAML 1.2 booleans, as profiles are read
    assert not problems
    return data


def _errors(validator: jsonschema.Draft202012Validator, data: Any) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(data)]


def test_printed_schema_is_the_library_one(printed: dict[str, Any]) -> None:
    assert printed == json.loads(json.dumps(profile_json_schema()))
    assert printed["$schema"] == "https://json-schema.org/draft/2020-12/schema"


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_every_shipped_profile_matches_the_printed_schema(
        path: Path, validator: jsonschema.Draft202012Validator) -> None:
    assert _errors(validator, _yaml(path.read_text())) == []


def test_profiles_dir_holds_loadcaller_profiles_only() -> None:
    """Every file in profiles/ validates; chaos-proxy configs live in chaos/examples/."""
    files = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "profiles").iterdir())
    assert files and all(f.endswith(".yaml") for f in files)
    proc = _cli("validate", *files)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [f"ok {f}" for f in files]
    assert proc.stderr == ""


# Every form validation accepts must match the schema too (the ones smoke.yaml
# used to fail on, and more).
ACCEPTED = {
    "durations_as_strings_and_numbers": "load: {duration: 30s, stop_timeout: 1.5}\n"
                                        "call: {turn_timeout: 1m30s, max_reply: '500ms'}\n",
    "bare_steps_and_say_text": "",  # the scenario below has them
    "wait_with_null_and_timeout": "scenarios: [{name: b, steps: [{wait_for_agent: null}, "
                                  "{wait_for_agent: {timeout: 5s}}, {hangup: null}]}]\n",
    "twilio_without_transport": "target: {url: 'wss://agent.example/media'}\n",
    "sip_without_transport": "target: {url: 'sip:bot@127.0.0.1:5080', codecs: [PCMA], "
                             "rtp_ports: 20000-20999, sip_ports: '5100-5199', "
                             "setup_timeout: 10s}\n",
    "sip_with_transport": "target: {transport: sip, url: 'sips:bot@example.com', "
                          "rtp_ports: [20000, 20999]}\n",
    "secret_forms": "target: {url: 'ws://127.0.0.1:1/x', auth_token: {file: token.txt}}\n",
    "behaviour_step_shorthands": "scenarios: [{name: b, steps: [wait_for_agent, "
                                 "{barge_in: {say: 'wait, no', after: 300ms..900ms}}, "
                                 "{if: {outcome: no_response, then: [{say: hello?}]}}, "
                                 "{repeat: {times: 2, steps: [{silence: 2s}]}}, hangup]}]\n",
    "dtmf_and_pause": "scenarios: [{name: c, steps: [{dtmf: '12#*AD'}, {pause: 500ms}]}]\n",
    "load_shape": "load: {shape: {type: open, rate: 2.5, late_after: 250ms}}\n",
    "media_and_chaos": "media: {inbound: [{type: loss, loss: 0.02}]}\n"
                       "chaos: {routes: [{name: r, kind: http, listen: '127.0.0.1:0', "
                       "upstream: 'http://127.0.0.1:1'}], faults: []}\n",
}
BASE = "scenarios: [{name: a, steps: [wait_for_agent, {say: Hello there}, hangup]}]\n"


@pytest.mark.parametrize("extra", ACCEPTED.values(), ids=ACCEPTED.keys())
def test_accepted_forms_match_the_schema(extra: str,
                                         validator: jsonschema.Draft202012Validator) -> None:
    data = _yaml(BASE + extra) if "scenarios:" not in extra else _yaml(extra)
    assert _errors(validator, data) == []


REFUSED = {
    "unknown_field": "scenarios: [{name: a, steps: [hangup]}]\nscenario: x\n",
    "no_scenarios": "name: x\n",
    "bad_duration": "scenarios: [{name: a, steps: [{pause: soon}]}]\n",
    "bare_say": "scenarios: [{name: a, steps: [say]}]\n",
    "dtmf_too_long": "scenarios: [{name: a, steps: [{dtmf: '" + "1" * 65 + "'}]}]\n",
    "unknown_transport": "scenarios: [{name: a, steps: [hangup]}]\n"
                         "target: {transport: pigeon}\n",
    "sip_field_on_twilio": "scenarios: [{name: a, steps: [hangup]}]\n"
                           "target: {transport: twilio, codecs: [PCMU]}\n",
}


@pytest.mark.parametrize("text", REFUSED.values(), ids=REFUSED.keys())
def test_refused_forms_fail_the_schema(text: str,
                                       validator: jsonschema.Draft202012Validator) -> None:
    assert _errors(validator, _yaml(text))


def test_schema_forms_are_what_validation_accepts(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The accepted forms above are real: the loader takes each of them."""
    (tmp_path / "token.txt").write_text("t0ken\n")
    monkeypatch.chdir(tmp_path)
    for extra in ACCEPTED.values():
        parse_profile(BASE + extra if "scenarios:" not in extra else extra)


def test_schema_into_a_closed_pipe_prints_no_traceback() -> None:
    proc = subprocess.run(f"{sys.executable} -m loadcaller schema | head -1", shell=True,
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.stdout == "{\n"
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr
