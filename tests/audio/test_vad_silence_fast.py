"""The VAD's fast paths (over digital silence, while speaking) reach the full step's states.

A caller hears digital silence whenever the agent is quiet, and the agent's
speech much of the rest of a call; StreamingVad.feed takes a shortcut for both.
These tests feed the same levels to a VAD through feed and to one through the
full step (_feed) and compare every event and, after every frame, all the state
that decides later events.
"""

from __future__ import annotations

import random

import pytest

from loadcaller.audio.vad import SILENCE_DBFS, SpeechEnd, SpeechStart, StreamingVad, VadConfig


def _state(vad: StreamingVad) -> tuple[object, ...]:
    noise = vad._noise
    floor = None
    if noise is not None:
        floor = (list(noise._levels), noise._count, noise._streak, noise._ceiling,
                 noise.on_dbfs, noise.off_dbfs, noise.median_dbfs, noise.lookback_dbfs,
                 noise.jitter_db, noise._jitter_due, noise.raised, noise.version,
                 vad._quiet.thresholds(noise), list(vad._quiet._levels), vad._quiet.ref)
    return (vad._state, list(vad._recent), vad._run_start_ns, vad._run_frames,
            vad._last_speech_ns, vad._quiet_frames, vad._startup, list(vad._held), floor)


def _levels(rng: random.Random, n: int) -> list[float]:
    """Runs of digital silence, speech, a noise bed and clicks, in random order."""
    out: list[float] = []
    while len(out) < n:
        kind = rng.choice(["silence", "silence", "speech", "bed", "click", "soft"])
        length = rng.randint(1, 180)
        if kind == "silence":
            out += [SILENCE_DBFS] * length
        elif kind == "speech":
            out += [rng.uniform(-35.0, -8.0) for _ in range(length)]
        elif kind == "bed":
            base = rng.uniform(-58.0, -30.0)
            out += [base + rng.uniform(-2.5, 2.5) for _ in range(length)]
        elif kind == "soft":
            out += [rng.uniform(-75.0, -55.0) for _ in range(length)]
        else:
            out += [rng.uniform(-30.0, -15.0)] * rng.randint(1, 2)
    return out[:n]


@pytest.mark.parametrize("config", [VadConfig(), VadConfig(noise_window_ms=0),
                                    VadConfig(noise_window_ms=400, min_speech_frames=1)],
                         ids=["default", "no-noise-floor", "short-window"])
def test_fast_path_matches_the_full_step(config: VadConfig) -> None:
    fast_frames = speaking_frames = 0
    for seed in range(40):
        rng = random.Random(seed)
        fast, full = StreamingVad(config), StreamingVad(config)
        for i, level in enumerate(_levels(rng, 1500)):
            t = 1_000_000 + i * 20_000_000
            steady = fast._hush >= fast._hush_steady and level <= SILENCE_DBFS
            fast_frames += steady
            speaking_frames += fast.speaking and level > SILENCE_DBFS
            # the full step for every frame: no shortcut over silence or while speaking
            assert fast.feed(level, t) == full._feed(level, t), (seed, i)
            assert _state(fast) == _state(full), (seed, i)
        assert fast.finish() == full.finish()
    assert fast_frames > 10_000  # the shortcuts did run
    assert speaking_frames > 10_000


def test_speech_after_a_long_silence_is_heard_from_its_first_frame() -> None:
    vad = StreamingVad()
    events = [vad.feed(SILENCE_DBFS, i) for i in range(500)]
    assert vad._hush >= vad._hush_steady
    events += [vad.feed(-20.0, 500 + i) for i in range(30)]
    events += [vad.feed(SILENCE_DBFS, 530 + i) for i in range(30)]
    assert [e for e in events if e is not None] == [SpeechStart(500), SpeechEnd(529)]
