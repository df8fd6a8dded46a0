"""The new steps in a profile: what compiles, and the errors that say why not."""

from __future__ import annotations

import pytest

from loadcaller.calls import asr
from loadcaller.calls.scenario import BargeIn, Expect, If, Repeat, Say, Silence, WaitForAgent
from loadcaller.compile import compile_profile
from loadcaller.errors import ProfileError
from loadcaller.profile import parse_profile

MS = 1_000_000


def profile(steps: str) -> str:
    return "scenarios:\n  - name: a\n    steps:\n" + "".join(
        f"      {line}\n" for line in steps.strip().splitlines())


def error(steps: str) -> str:
    with pytest.raises(ProfileError) as exc:
        parse_profile(profile(steps), "p.yaml")
    return str(exc.value)


def test_the_new_steps_compile_to_the_script_s_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(asr, "available", lambda: True)
    p = parse_profile(profile("""
- say: {phrase: hello_order}
- barge_in: {say: {phrase: human_please}, after: 300ms..900ms, stop_timeout: 2s}
- wait_for_agent: {expect: {words: ships tomorrow, regex: "order|parcel"}}
- silence: 6s
- if: {outcome: [no_response, caller_abandoned], then: [say: {phrase: no}, wait_for_agent]}
- repeat: {times: 3, steps: [barge_in: {say: {phrase: no}, after: 1s}, wait_for_agent]}
"""))
    steps = compile_profile(p).scenarios[0].steps
    say, barge, wait, silence, branch, loop = steps
    assert isinstance(say, Say)
    assert isinstance(barge, BargeIn)
    assert (barge.after_ns, barge.after_max_ns, barge.stop_timeout_ns) == (
        300 * MS, 900 * MS, 2_000 * MS)
    assert isinstance(wait, WaitForAgent)
    assert wait.expect == Expect(("ships", "tomorrow"), "order|parcel")
    assert silence == Silence(6_000 * MS)
    assert isinstance(branch, If)
    assert branch.outcomes == {"no_response", "caller_abandoned"} and branch.orelse == ()
    assert isinstance(loop, Repeat) and loop.times == 3
    assert isinstance(loop.steps[0], BargeIn) and loop.steps[0].after_max_ns is None


def test_unknown_outcome_in_if_names_the_line_and_the_known_ones() -> None:
    msg = error("""
- say: hi
- wait_for_agent
- if: {outcome: no_answer, then: [say: hello?]}
""")
    assert msg.startswith("p.yaml:6: scenarios[0].steps[2].if.outcome")
    assert "unknown turn outcome 'no_answer'; one of: answered, no_response" in msg


def test_repeat_without_a_cap_is_refused() -> None:
    msg = error("- repeat: {steps: [say: hi]}")
    assert "repeat needs times (how many rounds): a loop without a cap would never end" in msg


def test_loops_multiplied_beyond_the_step_cap_are_refused() -> None:
    msg = error("""
- repeat:
    times: 1000
    steps:
      - repeat: {times: 1000, steps: [say: hi]}
""")
    assert "the scenario could run over 10,000 steps" in msg


def test_expect_without_the_asr_extra_says_what_to_install(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(asr, "available", lambda: False)
    msg = error("""
- say: hi
- wait_for_agent: {expect: ships}
""")
    assert msg.startswith("p.yaml:5: scenarios[0].steps[1].wait_for_agent.expect")
    assert "pip install 'loadcaller[asr]'" in msg


def test_bad_barge_in_and_expect_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(asr, "available", lambda: True)
    assert "before its start" in error("- barge_in: {say: hi, after: 900ms..300ms}")
    assert "not a regular expression" in error("- wait_for_agent: {expect: {regex: '('}}")
    assert "expect needs words or a regex" in error("- wait_for_agent: {expect: {}}")
    assert "say needs exactly one of" in error("- barge_in: {say: {}, after: 1s}")


def test_a_nested_say_that_cannot_be_resolved_names_its_line() -> None:
    p = parse_profile(profile("""
- say: hi
- if: {outcome: none, then: [say: {phrase: no_such_phrase}]}
"""), "p.yaml")
    with pytest.raises(ProfileError) as exc:
        compile_profile(p, source="p.yaml")
    assert str(exc.value).startswith("p.yaml:5: scenarios[0].steps[1].if.then[0].say.phrase")
