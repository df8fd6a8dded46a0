"""The profiles we ship (issue 11): each passes `loadcaller validate` and the printed JSON
Schema, asks for what its name promises, and (audio tools installed) compiles."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from loadcaller import yamlload
from loadcaller.compile import compile_profile
from loadcaller.errors import ProfileError
from loadcaller.profile import Profile, RampShape, SpikeShape, load_profile
from loadcaller.redact import REDACTED
from loadcaller.report.profile_copy import PROFILE_COPY, write_profile_copy
from loadcaller.stepmodels import IfStep, RepeatStep, SilenceStep
from tests.peers import require_binary

ROOT = Path(__file__).resolve().parents[1]
PROFILES = sorted((ROOT / "profiles").glob("*.yaml"))
NAMES = {p.stem for p in PROFILES}
REQUIRED = {"smoke", "prelaunch-500", "spike", "soak-1h", "chaos-nightly", "noisy-callers",
            "dead-air"}


@pytest.fixture(autouse=True)
def _twilio_token(monkeypatch: pytest.MonkeyPatch) -> None:
    """profiles/pstn.yaml reads its auth token from the environment, as documented there."""
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", os.environ.get("TWILIO_AUTH_TOKEN", "placeholder"))


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "loadcaller", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)


def _load(name: str) -> Profile:
    return load_profile(ROOT / "profiles" / f"{name}.yaml")


def _steps(steps: list) -> list:
    """Every step, nested ones (if, repeat) included."""
    out = []
    for st in steps:
        out.append(st)
        inner = getattr(st, "if_", None)
        if inner is not None:
            out += _steps(inner.then) + _steps(inner.else_)
        rep = getattr(st, "repeat", None)
        if rep is not None and hasattr(rep, "steps"):
            out += _steps(rep.steps)
    return out


def _kinds(p: Profile) -> set[str]:
    return {next(iter(type(st).model_fields)).rstrip("_") for sc in p.scenarios
            for st in _steps(sc.steps)}


def test_the_issue_s_profiles_are_all_shipped() -> None:
    assert REQUIRED <= NAMES


def test_loadcaller_validate_passes_every_shipped_profile() -> None:
    proc = _cli("validate", *map(str, PROFILES))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("ok ") == len(PROFILES)


def test_every_shipped_profile_matches_the_json_schema() -> None:
    proc = _cli("schema")
    assert proc.returncode == 0, proc.stderr
    validator = jsonschema.Draft202012Validator(json.loads(proc.stdout))
    for path in PROFILES:
        _root, data, problems = yamlload.load(path.read_text())
        assert not problems
        errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(data)]
        assert errors == [], path.name


def test_each_profile_asks_for_what_its_name_promises() -> None:
    smoke = _load("smoke")
    assert smoke.load.users == 5 and smoke.load.duration == 60
    pre = _load("prelaunch-500")
    assert isinstance(pre.load.shape, RampShape) and pre.load.shape.end_users == 500
    assert isinstance(_load("spike").load.shape, SpikeShape)
    assert _load("soak-1h").load.duration == 3600
    nightly = _load("chaos-nightly")
    assert nightly.chaos is not None
    types = {f["type"] for f in nightly.chaos["faults"]}
    assert {"latency", "schema_drift"} <= types and any("udp" in t for t in types)
    assert all("at" in f and "for" in f for f in nightly.chaos["faults"])  # windows
    noisy = _load("noisy-callers")
    personas = noisy.all_personas()
    assert len({p.voice.name for p in personas if p.voice}) >= 5  # accents and variants
    assert {p.noise.kind for p in personas if p.noise} >= {"street", "car", "babble"}
    assert "barge_in" in _kinds(noisy)
    assert "silence" in _kinds(_load("dead-air"))


SILENCE_OUTCOMES = {"reprompted", "no_reprompt"}  # all an `if` right after a silence sees


def _ifs_after_a_silence(steps: list) -> list:
    """The `if` steps whose last measured turn is a `silence` (directly, or first in a repeat)."""
    found, after_silence = [], False
    for st in steps:
        first = st.repeat.steps[0] if isinstance(st, RepeatStep) else st
        if after_silence and isinstance(first, IfStep):
            found.append(first)
        after_silence = isinstance(st, SilenceStep)
        if isinstance(st, IfStep):
            found += _ifs_after_a_silence(st.if_.then) + _ifs_after_a_silence(st.if_.else_)
        elif isinstance(st, RepeatStep):
            found += _ifs_after_a_silence(st.repeat.steps)
    return found


@pytest.mark.parametrize("path", PROFILES, ids=lambda p: p.stem)
def test_an_if_after_a_silence_tests_what_a_silence_can_end_in(path: Path) -> None:
    """dead-air's callers were to say "Hello?" after the agent's silence, but its `if`
    asked for no_response, which a silence never is: they never said it."""
    for scenario in load_profile(path).scenarios:
        for step in _ifs_after_a_silence(scenario.steps):
            assert SILENCE_OUTCOMES & set(step.if_.outcome), (scenario.name, step.if_.outcome)


def test_chaos_profiles_serve_the_fault_windows_where_prometheus_scrapes_them() -> None:
    """Without the control API no chaos_fault_active: no fault windows on the dashboards,
    and the SLO alerts fire during the faults the run injects on purpose."""
    scrape = yaml.safe_load((ROOT / "grafana" / "prometheus" / "prometheus.yml").read_text())
    (chaos_job,) = [j for j in scrape["scrape_configs"] if j["job_name"] == "chaos"]
    (target,) = chaos_job["static_configs"][0]["targets"]
    for name in ("backend-chaos", "chaos-nightly"):
        chaos = _load(name).chaos
        assert chaos is not None and chaos["control"]["listen"] == target, name


@pytest.mark.parametrize("name", ["noisy-callers", "dead-air", "prelaunch-500"])
def test_persona_profiles_compile_with_their_audio(name: str, tmp_path: Path) -> None:
    require_binary("espeak-ng", "espeak-ng")
    require_binary("sox", "sox")  # noisy-callers has a gsm caller
    path = ROOT / "profiles" / f"{name}.yaml"
    spec = compile_profile(load_profile(path), source=str(path), base_dir=path.parent,
                           cache_dir=tmp_path)
    profile = load_profile(path)
    assert [p.name for p in spec.personas] == [p.name for p in profile.all_personas()]
    for persona, spec_p in zip(spec.personas, profile.all_personas(), strict=True):
        assert bool(persona.policy.noise_bed) == (spec_p.noise is not None)


def test_every_shipped_profile_survives_its_results_copy(tmp_path: Path) -> None:
    # The results directory's profile.yaml must run again as the same profile.
    copies = []
    for path in PROFILES:
        original = load_profile(path)
        out = tmp_path / path.stem
        write_profile_copy(original, out)
        copy = out / PROFILE_COPY
        copies.append(copy)
        text = copy.read_text()
        if f"'{REDACTED}'" in text:  # a secret (pstn's token): the copy asks for it again
            with pytest.raises(ProfileError, match="redacted secret"):
                load_profile(copy)
            copy.write_text(text.replace(f"'{REDACTED}'", "${TWILIO_AUTH_TOKEN}"))
        assert load_profile(out / PROFILE_COPY) == original, path.name
    proc = _cli("validate", *map(str, copies))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("ok ") == len(PROFILES)
