"""The expect: decision: real pocketsphinx on the reference agent's voice (pack audio).

Runs the worker's recognition function in-process (the worker process adds
nothing to the decision) on the agent's own 8 kHz mu-law replies from the pack.
"""

from __future__ import annotations

import pytest

from loadcaller.audio.pack import load_pack_audio
from loadcaller.calls import asr
from loadcaller.calls.scenario import Expect

pytestmark = pytest.mark.skipif(not asr.available(), reason="pocketsphinx not installed")


@pytest.fixture(scope="module")
def heard() -> dict[str, str]:
    asr._init_worker()
    return {pid: asr._recognise(load_pack_audio(pid))
            for pid in ("agent_goodbye", "agent_ask_number")}


def test_the_agents_reply_passes_its_own_words(heard: dict[str, str]) -> None:
    ok, reason = asr.verdict(heard["agent_goodbye"], Expect(words=("great", "day")))
    assert ok, (reason, heard["agent_goodbye"])


def test_another_reply_fails_those_words_and_says_which_are_missing(
        heard: dict[str, str]) -> None:
    ok, reason = asr.verdict(heard["agent_ask_number"], Expect(words=("great", "day")))
    assert not ok and "missing" in reason, heard["agent_ask_number"]


def test_every_rate_is_kept_for_people_to_read(heard: dict[str, str]) -> None:
    text = heard["agent_goodbye"]
    assert [part.split(":", 1)[0] for part in text.split(" | ")] == [
        f"{r:g}" for r in asr.RATES]


def test_the_words_must_all_be_in_one_transcript() -> None:
    text = "1: have a great night | 0.8: what a day"
    assert not asr.verdict(text, Expect(words=("great", "day")))[0]
    assert asr.verdict(text + " | 0.75: a great day", Expect(words=("great", "day")))[0]
    assert asr.verdict(text, Expect(regex="great ni"))[0]
    assert asr.verdict("", Expect(words=("x",))) == (False, "missing 'x'")


def test_silence_is_an_empty_transcript_not_an_error() -> None:
    asr._init_worker()
    assert asr._recognise(b"") == ""
    assert not asr.verdict(asr._recognise(b"\xff" * 800), Expect(words=("hello",)))[0]


def test_a_reply_that_meets_its_expect_is_decoded_once() -> None:
    # the slower rates cost a decode each: they run only when the ones before missed
    asr._init_worker()
    audio = load_pack_audio("agent_goodbye")
    text = asr._recognise(audio, Expect(words=("great", "day")))
    assert text.startswith("1: ") and " | " not in text, text
    missed = asr._recognise(audio, Expect(words=("thursday",)))
    assert [p.split(":", 1)[0] for p in missed.split(" | ")] == [f"{r:g}" for r in asr.RATES]
    assert not asr.verdict(missed, Expect(words=("thursday",)))[0]
