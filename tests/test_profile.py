"""Profile validation: every mistake names the file, the line and the field."""

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


def test_unknown_media_impairment_lists_the_known_ones():
    with pytest.raises(ProfileError) as info:
        parse_profile(BASE + "media: {inbound: {type: static}}\n", "p.yaml")
    assert "p.yaml:2: media" in str(info.value) and "gilbert_elliott" in str(info.value)


def test_overrides_apply_before_validation():
    p = parse_profile(BASE, "p.yaml", {"target.url": "wss://agent.example/ws", "load.users": 3})
    assert p.target.url == "wss://agent.example/ws" and p.load.users == 3
    with pytest.raises(ProfileError, match=r"target\.url"):
        parse_profile(BASE, "p.yaml", {"target.url": "http://nope"})
