"""Broken profiles through the real command line: exit 2, file:line: field, no traceback.

Every case is a hostile or careless input found in review (infinite durations,
non-UTF-8 bytes, YAML nested 20,000 deep, an alias bomb, a WAV declaring
4 GHz, ...). Validation fails before any call, so no agent is needed:

- each case goes through ``loadcaller validate FILE`` via the command line's
  own entry point (:func:`loadcaller.cli.main`: argparse, dispatch, the
  ``except`` clauses), in this process: an exception escaping it fails the test;
- all of them at once through ``python -m loadcaller validate FILE...`` in a
  subprocess, whose stderr must hold every file's error and no traceback;
- a few through ``python -m loadcaller run FILE`` (concurrently).

One subprocess per case would cost 0.5 s of imports each, 25 s in all on two
cores; this way the module takes a few seconds.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from loadcaller.cli import main

S = "scenarios: [{name: a, steps: [wait_for_agent, hangup]}]\n"  # line 1 of most cases


def _wav(rate: int, data: bytes = b"\x80" * 100) -> bytes:
    """A PCM 8-bit mono WAV declaring ``rate`` (144 bytes with the default data)."""
    fmt = struct.pack("<IHHIIHH", 16, 1, 1, rate, rate, 1, 8)
    body = b"WAVEfmt " + fmt + b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _steps(*steps: str) -> str:
    """A profile whose scenario's steps start on line 4, one per line."""
    return "scenarios:\n  - name: a\n    steps:\n" + "".join(f"      - {s}\n" for s in steps)


BOMB = "".join(
    f"{k}: &{k} [{', '.join([f'*{p}'] * 10) if p else ', '.join(['x'] * 10)}]\n"
    for p, k in zip(["", "a", "b", "c", "d", "e", "f", "g"], "abcdefgh", strict=True)
)  # line 1 defines a; line n+1 repeats the one before ten times: h is 10^8 nodes


@dataclass(frozen=True)
class Case:
    id: str
    text: str | bytes
    line: int
    field: str
    message: str
    files: dict[str, bytes] = field(default_factory=dict)


CASES = [
    # numbers that only fail later, far from the file
    Case("inf_duration", S + "call: {turn_timeout: .inf}\n", 2, "call.turn_timeout",
         "not a finite number"),
    Case("nan_duration", S + "call:\n  max_reply: .nan\n", 3, "call.max_reply",
         "not a finite number"),
    Case("inf_duration_string", S + "load: {duration: inf}\n", 2, "load.duration",
         "a duration must be a finite number"),
    Case("overflowing_duration_string", S + "load:\n  stop_timeout: 1e400\n", 3,
         "load.stop_timeout", "a duration must be a finite number"),
    Case("duration_over_30_days", S + "load: {duration: 1000000h}\n", 2, "load.duration",
         "at most 30 days (2,592,000 s)"),
    Case("negative_duration", _steps("pause: -1s"), 4, "scenarios[0].steps[0].pause",
         "bad duration"),
    Case("boolean_duration", _steps("wait_for_agent: {timeout: true}"), 4,
         "scenarios[0].steps[0].wait_for_agent.timeout", "expected a duration"),
    Case("inf_spawn_rate", S + "load: {spawn_rate: .inf}\n", 2, "load.spawn_rate",
         "not a finite number"),
    Case("huge_integer", S + "load: {users: " + "9" * 5000 + "}\n", 2, "load.users",
         "too large an integer"),
    Case("zero_users", S + "load:\n  users: 0\n", 3, "load.users",
         "greater than or equal to 1"),
    Case("nan_weight", "scenarios:\n  - name: a\n    weight: .nan\n    steps: [hangup]\n", 3,
         "scenarios[0].weight", "not a finite number"),
    # bytes and characters
    Case("latin1_byte", (S + "name: caf\xe9\n").encode("latin-1"), 2, "name", "not UTF-8 text"),
    Case("utf16_file", ("\ufeff" + S).encode("utf-16"), 1, "(top level)", "not UTF-8 text"),
    Case("control_character", S + "name: a\x01b\n", 2, "name", "U+0001 is not allowed"),
    # YAML structure
    Case("nested_20000_deep", "scenarios: " + "[" * 20000 + "]" * 20000 + "\n", 1,
         "scenarios", "nesting depth"),
    Case("nested_block_mappings", S + "media:\n" + "".join(
        "  " * (i + 1) + f"k{i}:\n" for i in range(80)), 65,
         "media." + ".".join(f"k{i}" for i in range(11)) + "...(51 more levels)",
         "nested deeper than 64 levels"),
    # Validation passed (a schema_drift value is any JSON), then every response the
    # proxy rewrote would have carried 10^8 nodes.
    Case("alias_bomb", S + "chaos:\n  routes: [{name: r, kind: http, listen: '127.0.0.1:0', "
         "upstream: 'http://127.0.0.1:1'}]\n  faults:\n    - type: schema_drift\n"
         "      route: r\n      op: add_field\n      path: $\n      key: k\n      value:\n"
         + "".join(f"        - {line.split(': ', 1)[1]}\n" for line in BOMB.splitlines()),
         16, "chaos.faults[0].value[5][0]", "aliases expand the document past 200,000 nodes"),
    Case("recursive_alias", S + "media: &m {outbound: *m}\n", 2, "media.outbound",
         "recursive structure"),
    Case("undefined_alias", S + "seed: *nope\n", 2, "seed", "undefined alias"),
    Case("python_tag", S + "name: !!python/object/apply:os.system ['echo pwned']\n", 2,
         "name", "could not determine a constructor"),
    Case("impossible_date", S + "name: 2024-13-45\n", 2, "name", "month must be in 1..12"),
    Case("unclosed_flow_sequence", "scenarios:\n  - name: a\n    steps: [hangup\nseed: 1\n", 4,
         "scenarios[0].steps", "YAML syntax error"),
    Case("tab_indentation", S + "load:\n\tusers: 3\n", 3, "load", "YAML syntax error"),
    Case("duplicate_key", S + "load: {users: 2, users: 500}\n", 2, "load.users",
         "duplicate key 'users' (first on line 2)"),
    Case("duplicate_scenarios", S + "seed: 1\nscenarios: [{name: b, steps: [hangup]}]\n", 3,
         "scenarios", "duplicate key 'scenarios' (first on line 1)"),
    Case("two_documents", S + "---\n" + S, 2, "(top level)", "another document"),
    Case("oversized_profile", S + "# " + "x" * (1024 * 1024) + "\n", 1, "(top level)",
         "over 1024 KiB"),
    Case("top_level_list", "- name: a\n", 1, "(top level)", "a profile is a YAML mapping"),
    # fields
    Case("misspelt_step", _steps("wait_for_agent", "wait_for_agnt"), 5,
         "scenarios[0].steps[1]", "a step is one of"),
    Case("say_two_sources", _steps("say: {text: hi, phrase: hello_order}"), 4,
         "scenarios[0].steps[0].say", "exactly one of"),
    Case("say_text_too_long", _steps("say: " + "a" * 2001), 4,
         "scenarios[0].steps[0].say.text", "at most 2000 characters"),
    Case("dtmf_too_long", _steps("dtmf: '" + "1" * 65 + "'"), 4, "scenarios[0].steps[0].dtmf",
         "at most 64"),
    Case("dtmf_bad_digit", _steps("dtmf: '12x'"), 4, "scenarios[0].steps[0].dtmf",
         "'x' is not a DTMF digit"),
    Case("voice_name_like_an_option", S + "voice: {name: '--stdout'}\n", 2, "voice.name",
         "should match pattern"),
    # counts and rates: within load.users' limits, and numbers, not booleans
    Case("boolean_users", S + "load: {users: true}\n", 2, "load.users", "not true or false"),
    Case("boolean_repeat_times", _steps("repeat: {times: true, steps: [hangup]}"), 4,
         "scenarios[0].steps[0].repeat.times", "not true or false"),
    Case("ramp_billion_users", S + "load:\n  shape: {type: ramp, start_users: 1000000000}\n",
         3, "load.shape.start_users", "less than or equal to 100000"),
    Case("ramp_end_users", S + "load: {shape: {type: ramp, end_users: 100001}}\n", 2,
         "load.shape.end_users", "less than or equal to 100000"),
    Case("step_max_users", S + "load: {shape: {type: step, max_users: 1000000}}\n", 2,
         "load.shape.max_users", "less than or equal to 100000"),
    Case("spike_users", S + "load: {shape: {type: spike, spike_users: 1000000}}\n", 2,
         "load.shape.spike_users", "less than or equal to 100000"),
    Case("open_max_concurrency", S + "load: {shape: {type: open, rate: 1, "
         "max_concurrency: 1000000}}\n", 2, "load.shape.max_concurrency",
         "less than or equal to 100000"),
    Case("open_rate_1e300", S + "load: {shape: {type: open, rate: 1e300}}\n", 2,
         "load.shape.rate", "less than or equal to 10000"),
    Case("spawn_rate_1e300", S + "load: {spawn_rate: 1e300}\n", 2, "load.spawn_rate",
         "less than or equal to 10000"),
    # the name becomes a directory under loadcaller-results/
    Case("name_escapes_results_dir", S + "name: ../../escaped\n", 2, "name",
         "should match pattern"),
    Case("name_absolute_path", S + "name: /tmp/elsewhere\n", 2, "name", "should match pattern"),
    Case("name_300_characters", S + "name: " + "a" * 300 + "\n", 2, "name",
         "at most 100 characters"),
    # a limit of 0 would end every call at once
    Case("zero_turn_timeout", S + "call: {turn_timeout: 0}\n", 2, "call.turn_timeout",
         "greater than 0"),
    Case("zero_max_call_duration", S + "call:\n  max_call_duration: 0s\n", 3,
         "call.max_call_duration", "greater than 0"),
    Case("zero_max_reply", S + "call: {max_reply: 0ms}\n", 2, "call.max_reply",
         "greater than 0"),
    Case("zero_wait_timeout", _steps("wait_for_agent: {timeout: 0}"), 4,
         "scenarios[0].steps[0].wait_for_agent.timeout", "greater than 0"),
    Case("zero_twilio_setup_timeout", S + "target: {url: 'ws://127.0.0.1:1/x', "
         "setup_timeout: 0}\n", 2, "target.setup_timeout", "greater than 0"),
    Case("zero_sip_setup_timeout", S + "target: {url: 'sip:a@127.0.0.1', setup_timeout: 0}\n",
         2, "target.setup_timeout", "greater than 0"),
    Case("zero_sip_no_media_timeout", S + "target: {url: 'sip:a@127.0.0.1', "
         "no_media_timeout: 0}\n", 2, "target.no_media_timeout", "greater than 0"),
    Case("zero_webrtc_setup_timeout", S + "target: {url: 'webrtc+http://127.0.0.1:1/api/offer',"
         " setup_timeout: 0}\n", 2, "target.setup_timeout", "greater than 0"),
    Case("unknown_top_level_field", S + "scenario: typo\n", 2, "scenario",
         "Extra inputs are not permitted"),
    Case("target_http_url", S + "target:\n  url: http://agent.example/media\n", 3,
         "target.url", "is not a ws:// or wss:// URL"),
    Case("unknown_transport", S + "target: {transport: carrier_pigeon}\n", 2, "target",
         "does not match any of the expected tags"),
    Case("missing_secret_variable", S + "target: {auth_token: '${LC_TEST_SURELY_UNSET}'}\n", 2,
         "target.auth_token", "LC_TEST_SURELY_UNSET is not set"),
    Case("secret_file_endless", S + "target: {auth_token: {file: /dev/zero}}\n", 2,
         "target.auth_token", "the secret file /dev/zero is over 65536 bytes"),
    Case("secret_file_is_a_directory", S + "target:\n  auth_token: {file: /}\n", 3,
         "target.auth_token", "cannot read the secret file /: Is a directory"),
    Case("unknown_media_model", S + "media:\n  inbound: {type: static}\n", 3, "media",
         "gilbert_elliott"),
    Case("media_type_is_a_list", S + "media: {inbound: {type: [1]}}\n", 2, "media",
         "not a packet model spec"),
    Case("unknown_chaos_fault", S + "chaos:\n  routes:\n    - {name: r, kind: http, "
         "listen: '127.0.0.1:0', upstream: 'http://127.0.0.1:1'}\n  faults:\n"
         "    - {type: teleport, route: r}\n", 6, "chaos.faults[0].type", "unknown fault type"),
    # was: valid, and the nightly chaos run passed without its chaos
    Case("chaos_fault_after_the_run", S + "load: {duration: 1m, stop_timeout: 30s}\nchaos:\n"
         "  routes:\n    - {name: r, kind: http, listen: '127.0.0.1:0', "
         "upstream: 'http://127.0.0.1:1'}\n  faults:\n    - {type: reset, route: r, at: 2m}\n",
         7, "chaos.faults[0].at", "switches on 120 s into the run, but the run is over by 90 s"),
    Case("chaos_proxy_config_as_profile", "routes: []\nfaults: []\n", 1, "(top level)",
         "looks like a chaos-proxy config"),
    # audio files the scenario loads
    Case("wav_declaring_4ghz", _steps("wait_for_agent", "say: {wav: huge-rate.wav}"), 5,
         "scenarios[0].steps[1].say.wav", "sample rate 4000000007 Hz is outside",
         files={"huge-rate.wav": _wav(4_000_000_007)}),
    Case("wav_at_4khz", _steps("say: {wav: low.wav}"), 4, "scenarios[0].steps[0].say.wav",
         "sample rate 4000 Hz is outside", files={"low.wav": _wav(4000)}),
    Case("wav_endless_device", _steps("say: {wav: /dev/zero}"), 4,
         "scenarios[0].steps[0].say.wav", "over 64 MiB"),
    Case("wav_not_riff", _steps("say: {wav: notes.wav}"), 4, "scenarios[0].steps[0].say.wav",
         "not a RIFF/WAVE file", files={"notes.wav": b"just some text\n"}),
    Case("wav_missing", _steps("hangup", "say: {wav: absent.wav}"), 5,
         "scenarios[0].steps[1].say.wav", "cannot read"),
    Case("unknown_pack_phrase", _steps("say: {phrase: open_the_pod_bay_doors}"), 4,
         "scenarios[0].steps[0].say.phrase", "unknown pack phrase"),
]

RUN_TOO = ["inf_duration", "latin1_byte", "wav_declaring_4ghz", "name_escapes_results_dir"]


def _cli(*args: str, cwd: Path) -> tuple[int, str, str]:
    proc = subprocess.run([sys.executable, "-m", "loadcaller", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120,
                          env=os.environ, stdin=subprocess.DEVNULL)
    return proc.returncode, proc.stdout, proc.stderr


BY_ID = {c.id: c for c in CASES}


@pytest.fixture(scope="module")
def paths(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every case written to its own directory, with the files it refers to."""
    out: dict[str, Path] = {}
    for case in CASES:
        directory = tmp_path_factory.mktemp(case.id)
        for name, data in case.files.items():
            (directory / name).write_bytes(data)
        path = directory / f"{case.id}.yaml"
        if isinstance(case.text, bytes):
            path.write_bytes(case.text)
        else:
            path.write_text(case.text, encoding="utf-8")
        out[case.id] = path
    return out


def _expect(case: Case, path: Path, err: str) -> None:
    assert f"{path}:{case.line}: {case.field}: " in err, err
    assert case.message in err, err


def test_there_are_at_least_30_cases() -> None:
    assert len(CASES) >= 30
    assert len(BY_ID) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_validate_names_file_line_and_field(case: Case, paths: dict[str, Path],
                                            capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["validate", str(paths[case.id])])  # raises if anything escapes
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    assert out == ""  # no "ok" line for a broken file
    _expect(case, paths[case.id], err)


def test_every_case_in_one_validate_process(paths: dict[str, Path]) -> None:
    code, out, err = _cli("validate", *map(str, paths.values()), cwd=Path.cwd())
    assert "Traceback" not in err and "Error:" not in err, err
    assert code == 2 and out == ""
    for case in CASES:
        _expect(case, paths[case.id], err)


@pytest.fixture(scope="module")
def runs(paths: dict[str, Path]) -> dict[str, tuple[int, str, str]]:
    """``loadcaller run FILE`` for the cases of RUN_TOO, concurrently."""
    def one(case_id: str) -> tuple[int, str, str]:
        path = paths[case_id]
        return _cli("run", str(path), "--results-dir", str(path.parent / "results"),
                    "--metrics-port", "-1", cwd=path.parent)

    with ThreadPoolExecutor(max_workers=len(RUN_TOO)) as pool:
        return dict(zip(RUN_TOO, pool.map(one, RUN_TOO), strict=True))


@pytest.mark.parametrize("case_id", RUN_TOO)
def test_run_refuses_before_any_call(case_id: str, paths: dict[str, Path],
                                     runs: dict[str, tuple[int, str, str]]) -> None:
    code, _out, err = runs[case_id]
    assert "Traceback" not in err, err
    assert code == 2, (code, err)
    assert err.startswith("loadcaller: invalid profile\n"), err
    _expect(BY_ID[case_id], paths[case_id], err)
    assert not (paths[case_id].parent / "results").exists()  # nothing ran


def test_validate_lists_every_error_of_every_file(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(S)
    bad = tmp_path / "bad.yaml"
    bad.write_text("load: {users: 0, duration: .inf}\nseed: 2024-02-30\n"
                   + _steps("dtmf: '#x'", "hangup"))
    worse = tmp_path / "worse.yaml"
    worse.write_text("scenarios: [\n")
    code, out, err = _cli("validate", str(good), str(bad), str(worse), cwd=tmp_path)
    assert code == 2 and "Traceback" not in err
    assert out == f"ok {good}\n"
    assert f"{bad}:1: load.users: Input should be greater than or equal to 1" in err
    assert f"{bad}:1: load.duration: '.inf' is not a finite number" in err
    assert f"{bad}:2: seed: cannot read '2024-02-30': day is out of range" in err
    assert err.count(f"{bad}:2: seed: ") == 1  # not also "should be a valid integer"
    assert f"{bad}:6: scenarios[0].steps[0].dtmf: " in err
    assert f"{worse}:2: scenarios: YAML syntax error" in err
