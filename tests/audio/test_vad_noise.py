"""The VAD in noise: onsets at 10 dB SNR, ends heard, noise beds not taken for speech.

Issue 11 asks that the VAD find speech onsets in noisy audio at 10 dB SNR within
40 ms of the clean onset. Speech here is the bundled pack's caller phrases (every
phrase in every accent, at the level espeak-ng rendered them: about -21 dBFS
active, so the noise sits near -31 dBFS, above the VAD's fixed -40 dBFS), each
after 3 s of its noise bed, as a persona's caller sends its bed from the start of
the call. The clean onset is the same VAD's onset on the speech alone.

Measured (48 utterances per kind; docs/personas.md has the table): white 100%
within 40 ms, babble 98%, pink 98%, car 96%, brown 96% (all within 60 ms), and
street 88% (max 340 ms: its traffic can swell by 1 dB a frame, as fast as a
soft onset, out of a bed too low to raise the thresholds). Before the 200 ms
floor, the start-up verdict and the deeper lookback: 100, 96, 98, 94, 92 and
81%. The assertions keep a margin under those figures.
"""

from __future__ import annotations

import random
from functools import cache

import numpy as np
import pytest

from loadcaller.agent.session import END_OF_TURN_VAD
from loadcaller.audio import noise
from loadcaller.audio.frames import split_frames
from loadcaller.audio.g711 import ulaw_decode, ulaw_encode
from loadcaller.audio.noisefloor import STARTUP_FRAMES
from loadcaller.audio.pack import load_pack_audio, pack_entries
from loadcaller.audio.vad import (
    SpeechEnd,
    SpeechStart,
    StreamingVad,
    VadConfig,
    VadEvent,
    ulaw_frame_dbfs,
)
from loadcaller.calls.script import LISTEN_VAD

CALLER_PHRASES = [e for e in pack_entries() if not e.id.startswith("agent_")]
PRE_ROLL_S = 3.0
SNR_DB = 10.0

# kind: (least share of onsets within 40 ms, largest error allowed in ms)
REACHED = {
    "white": (0.98, 40),
    "pink": (0.95, 60),
    "babble": (0.95, 60),
    "car": (0.94, 60),
    "brown": (0.94, 60),
    "street": (0.85, 400),
}


def _ulaw(x: noise.Signal) -> bytes:
    return ulaw_encode(np.clip(np.rint(x * 32768.0), -32768, 32767).astype(np.int16))


def _levels(x: noise.Signal) -> list[float]:
    return [ulaw_frame_dbfs(f) for f in split_frames(_ulaw(x))]


def _events(levels: list[float], config: VadConfig) -> list[tuple[int, VadEvent]]:
    """(frame index, event) for every event, the stream's end flushed."""
    vad, out = StreamingVad(config), []
    for i, level in enumerate(levels):
        event = vad.feed(level, i * 20)
        if event is not None:
            out.append((i, event))
    out += [(len(levels), e) for e in vad.finish()]
    return out


def _onsets(levels: list[float], config: VadConfig) -> list[int]:
    return [e.t_ns for _, e in _events(levels, config) if isinstance(e, SpeechStart)]


@cache
def _utterances(kind: str) -> list[tuple[list[float], list[float]]]:
    """(clean levels, noisy levels) per caller phrase: 3 s of bed, the phrase, 1 s of bed."""
    out = []
    for seed, entry in enumerate(CALLER_PHRASES):
        speech = ulaw_decode(load_pack_audio(entry.id, entry.accent)).astype(np.float64) / 32768
        clean = np.concatenate([np.zeros(int(PRE_ROLL_S * 8000)), speech, np.zeros(8000)])
        # from 1 s into the bed: babble's talkers start at random offsets in its first second
        bed = noise.make_noise(kind, len(clean) / 8000 + 1.01, seed=seed)[8000:8000 + len(clean)]
        _, scaled = noise.mix_at_snr(speech, bed, SNR_DB)
        noisy = clean + bed * float(np.sqrt(np.mean(np.square(scaled))))
        out.append((_levels(clean), _levels(noisy)))
    return out


def onset_errors_ms(kind: str, config: VadConfig = LISTEN_VAD) -> list[int]:
    """Per utterance, the distance from the clean onset to the nearest noisy onset (10**6: none)."""
    errors = []
    for clean, noisy in _utterances(kind):
        truth = _onsets(clean, config)[0]
        found = _onsets(noisy, config)
        errors.append(min((abs(t - truth) for t in found), default=10**6))
    return errors


@pytest.mark.parametrize("kind", noise.NOISE_KINDS)
def test_onsets_at_10db_snr_at_normal_speaking_level(kind: str) -> None:
    errors = np.array(onset_errors_ms(kind))
    within, p95, worst = float(np.mean(errors <= 40)), np.percentile(errors, 95), errors.max()
    figures = f"{kind}: {within:.0%} within 40 ms, p95 {p95:.0f} ms, max {worst} ms"
    print(figures)  # the table in docs/personas.md: pytest -s
    least, largest = REACHED[kind]
    assert within >= least, figures
    assert worst <= largest, figures
    assert np.median(errors) <= 20, figures


@pytest.mark.parametrize("kind", noise.NOISE_KINDS)
def test_the_agent_hears_a_noisy_caller_stop(kind: str) -> None:
    # what the noisy personas' turns needed: the reference agent's end-of-turn VAD ends
    # the caller's speech within the second of bed after it, although the bed goes on.
    # The end mostly comes early, as the speech's fading tail is under the noise; street
    # traffic swelling just after the speech can hold it (up to 500 ms measured), or
    # keep it open past the second (4 in 48 measured).
    late: list[int | None] = []
    for clean, noisy in _utterances(kind):
        clean_events = _events(clean, END_OF_TURN_VAD)
        onset = next(e.t_ns for _, e in clean_events if isinstance(e, SpeechStart))
        clean_end = [e.t_ns for _, e in clean_events if isinstance(e, SpeechEnd)][-1]
        heard = [e.t_ns for i, e in _events(noisy, END_OF_TURN_VAD)
                 if isinstance(e, SpeechEnd) and i < len(noisy) and e.t_ns >= onset]
        late.append(heard[-1] - clean_end if heard else None)
    ends = [t for t in late if t is not None]
    figures = (f"{kind}: {len(ends)}/{len(late)} ends heard, from {min(ends)} to {max(ends)} ms "
               "of the clean end")
    print(figures)
    if kind == "street":
        assert len(ends) >= 0.85 * len(late) and max(ends) <= 600, figures
    else:
        assert len(ends) == len(late) and max(ends) <= 40, figures


@pytest.mark.parametrize("config", [LISTEN_VAD, END_OF_TURN_VAD, VadConfig()],
                         ids=["caller", "agent", "default"])
def test_clean_audio_gives_exactly_the_fixed_threshold_events(config: VadConfig) -> None:
    # every turn-latency figure on clean audio stays as it was: random sequences of the
    # whole pack (agent phrases too), back to back or with pauses, event for event and
    # frame for frame; only the stream's first onset (it begins with speech) is
    # confirmed when the start-up verdict comes, within its 25 frames
    fixed = VadConfig(on_dbfs=config.on_dbfs, off_dbfs=config.off_dbfs,
                      min_speech_frames=config.min_speech_frames,
                      hangover_ms=config.hangover_ms, noise_window_ms=0)
    rng, entries = random.Random(11), pack_entries()
    for _ in range(30):
        parts = []
        for _ in range(6):
            e = rng.choice(entries)
            parts += [load_pack_audio(e.id, e.accent), b"\xff" * 160 * rng.randint(0, 40)]
        levels = [ulaw_frame_dbfs(f) for f in split_frames(b"".join(parts))]
        got, want = _events(levels, config), _events(levels, fixed)
        assert [e for _, e in got] == [e for _, e in want]
        assert [i for i, _ in got[1:]] == [i for i, _ in want[1:]]
        assert want[0][0] <= got[0][0] < STARTUP_FRAMES


def test_speech_that_stays_level_for_a_second_is_not_taken_for_noise() -> None:
    # flite's "rms" voice holds -15..-21 dBFS for 0.9 s without a pause: the floor
    # learned it as noise and cut the sentence in two (the pack's render had to trim
    # its own output again and again). A level second louder than -22 dBFS inside a
    # run waits 0.6 s more before it counts as noise: level speech up to 1.4 s is safe.
    rng = np.random.default_rng(3)
    level = list(-18.0 + rng.uniform(-3.0, 3.0, 65))  # 1.3 s of level speech
    levels = [-120.0] * 10 + [-30.0, -22.0] + level + [-120.0] * 40
    events = [e for _, e in _events(levels, LISTEN_VAD)]
    assert events == [SpeechStart(10 * 20), SpeechEnd((len(levels) - 41) * 20)]  # to its end


@pytest.mark.parametrize("kind", noise.NOISE_KINDS)
def test_a_noise_bed_alone_is_not_a_reply(kind: str) -> None:
    # 60 s of bed at -31 dBFS from the stream's first frame: its first half second is
    # stationary, so it is learned as the floor and never heard as speech (it was one
    # 1.5 s "reply" before); street's passing traffic still opens a run now and then
    x = noise.make_noise(kind, 61.0, seed=5)[8000:] * 10 ** (-31 / 20)
    starts = [e.t_ns for _, e in _events(_levels(x), LISTEN_VAD) if isinstance(e, SpeechStart)]
    assert all(t >= 1000 for t in starts), starts  # nothing in the bed's first second
    assert len(starts) <= (2 if kind == "street" else 1), starts


@pytest.mark.parametrize("kind", noise.NOISE_KINDS)
def test_a_noise_bed_never_delays_the_onset_of_speech_at_the_start(kind: str) -> None:
    # the other side of the start-up verdict: a stream that begins with speech keeps its
    # onset at the first frame, for every caller phrase, alone or over its bed
    for clean, _noisy in _utterances(kind)[:8]:
        speech = clean[int(PRE_ROLL_S * 50):]
        got = _events(speech, LISTEN_VAD)
        assert isinstance(got[0][1], SpeechStart) and got[0][1].t_ns == 0
        assert got[0][0] < STARTUP_FRAMES  # confirmed within the verdict's half second
    x = noise.make_noise(kind, 2.0, seed=9) * 10 ** (-31 / 20)
    speech = ulaw_decode(load_pack_audio(CALLER_PHRASES[0].id)).astype(np.float64) / 32768
    y = x.copy()
    y[: len(speech)] += speech[: len(y)]
    starts = [e.t_ns for _, e in _events(_levels(y), LISTEN_VAD) if isinstance(e, SpeechStart)]
    assert starts and starts[0] <= 40, starts


def hold_music(seconds: float) -> noise.Signal:
    """Major chords changing every 2 s under a 120 bpm pulse of 60-100% amplitude."""
    t = np.arange(int(seconds * 8000)) / 8000
    out = np.zeros(len(t))
    for k in range(0, len(t), 16000):
        root = (261.63, 196.0, 220.0, 174.61)[(k // 16000) % 4]
        for ratio in (1.0, 1.25, 1.5, 2.0):
            out[k:k + 16000] += np.sin(2 * np.pi * root * ratio * t[k:k + 16000])
    out *= 0.6 + 0.4 * (0.5 + 0.5 * np.cos(2 * np.pi * 2.0 * t))
    return out / float(np.sqrt(np.mean(np.square(out))))


@pytest.mark.parametrize("dbfs", [-50.0, -40.0, -30.0])
def test_hold_music_is_not_a_reply(dbfs: float) -> None:
    # the pulse swings 4.4 dB: from the first frame it is a bed, learned in its first
    # half second (before: one onset at its start and 2% of the minute "speaking")
    starts = _onsets(_levels(hold_music(60.0) * 10 ** (dbfs / 20)), LISTEN_VAD)
    assert starts == []


def test_speech_over_hold_music_is_found() -> None:
    # every caller phrase after 3 s of music at -30 dBFS: 92% of onsets within 40 ms of
    # the clean onset, the rest at 60 ms (90% and 60 ms before)
    music = hold_music(10.0) * 10 ** (-30 / 20)
    errors = []
    for entry in CALLER_PHRASES:
        speech = ulaw_decode(load_pack_audio(entry.id, entry.accent)).astype(np.float64) / 32768
        clean = np.concatenate([np.zeros(24000), speech, np.zeros(8000)])
        noisy = clean + np.resize(music, len(clean))
        truth = _onsets(_levels(clean), LISTEN_VAD)[0]
        errors.append(min((abs(t - truth) for t in _onsets(_levels(noisy), LISTEN_VAD)),
                          default=10**6))
    assert np.mean(np.array(errors) <= 40) >= 0.9 and max(errors) <= 60, errors


@pytest.mark.parametrize("dbfs", [-60.0, -50.0, -45.0, -42.0])
@pytest.mark.parametrize("kind", ["white", "pink"])
def test_comfort_noise_under_the_on_threshold_never_opens_a_run(kind: str, dbfs: float) -> None:
    # pink comfort noise at -42 dBFS peaks over -40: the fixed VAD was "speaking" 97% of it
    x = noise.make_noise(kind, 60.0, seed=1) * 10 ** (dbfs / 20)
    assert _onsets(_levels(x), LISTEN_VAD) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"noise_window_ms": 100}, "noise_window_ms"),
        ({"noise_spread_db": -1.0}, "margins"),
        ({"on_margin_db": float("inf")}, "margins"),
        ({"on_margin_db": 2.0, "off_margin_db": 3.0}, "off_margin_db"),
        ({"onset_lookback_frames": -1}, "onset_lookback_frames"),
    ],
)
def test_noise_tracking_config_errors_are_clear(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        VadConfig(**kwargs)  # type: ignore[arg-type]
