"""Profile validation: every mistake names the file, the line and the field."""

import re

import pytest

from loadcaller.errors import ProfileError
from loadcaller.profile import parse_profile

BASE = "scenarios: [{name: a, steps: [wait_for_agent, {say: {phrase: 'no'}}, hangup]}]\n"


def test_yaml_12_booleans_let_a_caller_say_no():
    p = parse_profile("scenarios: [{name: a, steps: [{say: {phrase: no}}]}]\n")
    assert p.scenarios[0].steps[0].say.phrase == "no"


def test_durations_in_every_form():
    p = parse_profile(
        BASE + "load: {duration: 1m30s, stop_timeout: 500ms}\ncall: {turn_timeout: 2}\n")
    assert (p.load.duration, p.load.stop_timeout, p.call.turn_timeout) == (90.0, 0.5, 2.0)


def test_bad_chaos_section_is_reported_with_its_line_and_field():
    text = BASE + (
        "chaos:\n"
        "  routes:\n"
        "    - {name: crm, kind: http, listen: '127.0.0.1:0', upstream: 'http://127.0.0.1:1'}\n"
        "  faults:\n"
        "    - {type: latency, route: crm, delay: soonish}\n"
        "    - {type: teleport, route: crm}\n"
    )
    with pytest.raises(ProfileError) as info:
        parse_profile(text, "p.yaml")
    msg = str(info.value)
    assert "p.yaml:6: chaos.faults[0].delay: bad duration 'soonish'" in msg
    assert "p.yaml:7: chaos.faults[1].type: unknown fault type 'teleport'" in msg
    assert "schema_drift" in msg  # the known types are listed


def test_chaos_faults_are_checked_against_the_length_of_the_run():
    chaos = ("chaos:\n  routes:\n"
             "    - {name: crm, kind: http, listen: '127.0.0.1:0', upstream: 'http://127.0.0.1:1'}\n"
             "  faults:\n    - {type: reset, route: crm, %s}\n")
    load = "load: {duration: 6s, stop_timeout: 30s}\n"
    # calls in progress run on after load.duration: a fault then still acts on them
    parse_profile(BASE + load + chaos % "at: 8s, for: 6s", "p.yaml")
    parse_profile(BASE + load + chaos % "window: {start: 35s}", "p.yaml")
    with pytest.raises(ProfileError, match=r"faults\[0\]\.at: .* would never act"):
        parse_profile(BASE + load + chaos % "at: 36s", "p.yaml")
    with pytest.raises(ProfileError, match=r"faults\[0\]\.window\.start: .* never act"):
        parse_profile(BASE + load + chaos % "window: {start: 1m}", "p.yaml")
    # --duration 0 (a dry run) has no timeline to check; --duration shortening a run does
    parse_profile(BASE + load + chaos % "at: 1h", "p.yaml", {"load.duration": 0})
    with pytest.raises(ProfileError, match="never act"):
        parse_profile(BASE + load + chaos % "at: 1m", "p.yaml", {"load.duration": "10s"})


def test_unknown_media_impairment_lists_the_known_ones():
    with pytest.raises(ProfileError) as info:
        parse_profile(BASE + "media: {inbound: {type: static}}\n", "p.yaml")
    assert "p.yaml:2: media" in str(info.value) and "gilbert_elliott" in str(info.value)


def test_overrides_apply_before_validation():
    p = parse_profile(BASE, "p.yaml", {"target.url": "wss://agent.example/ws", "load.users": 3})
    assert p.target.url == "wss://agent.example/ws" and p.load.users == 3
    with pytest.raises(ProfileError, match=r"target\.url"):
        parse_profile(BASE, "p.yaml", {"target.url": "http://nope"})


# ---- numbers that only failed later (hostile review, item 12) ---------------------

SC = "scenarios:\n  - name: a\n    steps:\n"  # steps from line 4
# every Duration field of a profile, as (YAML on line 2 or step on line 4, field path)
DURATIONS = [
    ("load: {{duration: {v}}}", "load.duration"),
    ("load: {{stop_timeout: {v}}}", "load.stop_timeout"),
    ("load: {{shape: {{type: ramp, ramp: {v}}}}}", "load.shape.ramp"),
    ("load: {{shape: {{type: step, step_time: {v}}}}}", "load.shape.step_time"),
    ("load: {{shape: {{type: spike, spike_users: 5, at: {v}}}}}", "load.shape.at"),
    ("load: {{shape: {{type: spike, spike_users: 5, hold: {v}}}}}", "load.shape.hold"),
    ("load: {{shape: {{type: soak, ramp: {v}}}}}", "load.shape.ramp"),
    ("load: {{shape: {{type: open, rate: 1, late_after: {v}}}}}", "load.shape.late_after"),
    ("call: {{turn_timeout: {v}}}", "call.turn_timeout"),
    ("call: {{max_reply: {v}}}", "call.max_reply"),
    ("call: {{max_call_duration: {v}}}", "call.max_call_duration"),
    ("target: {{url: 'ws://h/x', setup_timeout: {v}}}", "target.setup_timeout"),
    ("target: {{url: 'sip:a@h', setup_timeout: {v}}}", "target.setup_timeout"),
    ("target: {{url: 'sip:a@h', no_media_timeout: {v}}}", "target.no_media_timeout"),
    ("      - pause: {v}", "scenarios[0].steps[0].pause"),
    ("      - wait_for_agent: {{timeout: {v}}}", "scenarios[0].steps[0].wait_for_agent.timeout"),
]
NOT_FINITE = {".inf": "not a finite number", "-.inf": "not a finite number",
              ".nan": "not a finite number", "inf": "finite number of seconds",
              "nan": "finite number of seconds", "'Infinity'": "finite number of seconds",
              "1e400": "finite number of seconds", "720h1s": "at most 30 days (2,592,000 s)",
              "1" + "0" * 30: "too large an integer"}


@pytest.mark.parametrize(("template", "field"), DURATIONS, ids=[f for _, f in DURATIONS])
@pytest.mark.parametrize("value", NOT_FINITE, ids=NOT_FINITE.keys())
def test_no_duration_accepts_infinite_nan_or_absurd_values(template: str, field: str,
                                                           value: str) -> None:
    snippet = template.format(v=value)
    if snippet.startswith("      - "):
        text, line = SC + snippet + "\n", 4
    else:
        text, line = SC + "      - hangup\n" + snippet + "\n", 5
    with pytest.raises(ProfileError) as info:
        parse_profile(text, "p.yaml")
    assert f"p.yaml:{line}: {field}: " in str(info.value)
    assert NOT_FINITE[value] in str(info.value)


def test_durations_at_the_limits_are_accepted() -> None:
    p = parse_profile(BASE + "load: {duration: 720h, stop_timeout: 0}\n")
    assert (p.load.duration, p.load.stop_timeout) == (2_592_000.0, 0.0)


@pytest.mark.parametrize(("yaml_value", "field"), [
    ("load: {spawn_rate: .inf}", "load.spawn_rate"),
    ("load: {shape: {type: open, rate: .nan}}", "load.shape.rate"),
    ("scenarios: [{name: b, weight: .inf, steps: [hangup]}]", "scenarios[0].weight"),
    ("media: {inbound: {type: delay, delay: .inf}}", "media.inbound.delay"),
    ("chaos: {faults: [{type: latency, delay: .inf}]}", "chaos.faults[0].delay"),
])
def test_no_number_anywhere_is_infinite(yaml_value: str, field: str) -> None:
    text = yaml_value + "\n" if yaml_value.startswith("scenarios") else BASE + yaml_value + "\n"
    with pytest.raises(ProfileError, match=rf"p\.yaml:\d: {re.escape(field)}: .*finite"):
        parse_profile(text, "p.yaml")


def test_override_durations_are_checked_too() -> None:
    with pytest.raises(ProfileError, match=r"load\.duration: .*finite"):
        parse_profile(BASE, "p.yaml", {"load.duration": "inf"})


def test_dtmf_digits_are_checked_capped_and_upper_cased() -> None:
    p = parse_profile(SC + "      - dtmf: '0123456789*#abcdABCD'\n")
    assert p.scenarios[0].steps[0].dtmf == "0123456789*#ABCDABCD"
    parse_profile(SC + f"      - dtmf: '{'1' * 64}'\n")
    for digits, message in [("1" * 65, "65 DTMF digits; at most 64"), ("12E", "'E' is not"),
                            ("1 2", "' ' is not"), ("", "no DTMF digits")]:
        with pytest.raises(ProfileError, match=rf"p\.yaml:4: scenarios\[0\]\.steps\[0\]\.dtmf: "
                           rf".*{re.escape(message)}"):
            parse_profile(SC + f"      - dtmf: '{digits}'\n", "p.yaml")


def test_compile_errors_name_the_line_of_the_step(tmp_path) -> None:
    from loadcaller.compile import compile_profile
    from loadcaller.profile import load_profile

    (tmp_path / "fast.wav").write_bytes(
        b"RIFF" + (36 + 4).to_bytes(4, "little") + b"WAVEfmt " + (16).to_bytes(4, "little")
        + (1).to_bytes(2, "little") + (1).to_bytes(2, "little")
        + (4_000_000_007).to_bytes(4, "little") + (4_000_000_007).to_bytes(4, "little")
        + (1).to_bytes(2, "little") + (8).to_bytes(2, "little") + b"data" + bytes(4))
    path = tmp_path / "p.yaml"
    path.write_text(SC + "      - say: {phrase: nope}\n      - hangup\n"
                    "      - say:\n          wav: fast.wav\n")
    profile = load_profile(path)
    with pytest.raises(ProfileError) as info:
        compile_profile(profile, source=str(path), base_dir=tmp_path)
    lines = str(info.value).splitlines()
    assert lines[0].startswith(f"{path}:4: scenarios[0].steps[0].say.phrase: unknown pack")
    assert lines[1].startswith(f"{path}:7: scenarios[0].steps[2].say.wav: ")
    assert "4000000007 Hz is outside" in lines[1]


def test_where_a_profile_came_from_is_not_part_of_its_value() -> None:
    assert parse_profile(BASE, "a.yaml") == parse_profile("\n\n" + BASE, "b.yaml")
