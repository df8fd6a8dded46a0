"""The streaming energy VAD: levels, hysteresis, hangover, click rejection, trimming."""

from __future__ import annotations

import numpy as np
import pytest

from loadcaller.audio.frames import FRAME_BYTES, SILENCE_FRAME_ULAW
from loadcaller.audio.g711 import ulaw_encode
from loadcaller.audio.vad import (
    SILENCE_DBFS,
    SpeechEnd,
    SpeechStart,
    StreamingVad,
    VadConfig,
    VadEvent,
    trim_silence,
    ulaw_frame_dbfs,
)

MS = 1_000_000


def tone_frame(dbfs: float, freq: float = 440.0) -> bytes:
    """One mu-law frame of a sine whose RMS is ``dbfs``."""
    amplitude = 32768 * 10 ** (dbfs / 20) * np.sqrt(2)
    t = np.arange(FRAME_BYTES) / 8000
    return ulaw_encode(np.rint(amplitude * np.sin(2 * np.pi * freq * t)).astype(np.int16))


def run(levels: list[float], config: VadConfig | None = None) -> list[tuple[int, VadEvent]]:
    """Feed levels as consecutive 20 ms frames from t=0; return (frame index, event)."""
    vad = StreamingVad(config or VadConfig())
    events: list[tuple[int, VadEvent]] = []
    for i, level in enumerate(levels):
        event = vad.feed(level, i * 20 * MS)
        if event is not None:
            events.append((i, event))
    return events


# --- frame level -----------------------------------------------------------------


@pytest.mark.parametrize("dbfs", [-3.0, -20.0, -40.0, -55.0])
def test_frame_level_of_a_sine(dbfs: float) -> None:
    assert ulaw_frame_dbfs(tone_frame(dbfs)) == pytest.approx(dbfs, abs=0.5)


def test_frame_level_of_full_scale_square_wave_is_near_zero_dbfs() -> None:
    square = np.where(np.arange(160) % 20 < 10, 32767, -32768).astype(np.int16)
    assert ulaw_frame_dbfs(ulaw_encode(square)) == pytest.approx(0.0, abs=0.2)  # 32124/32768


def test_digital_silence_is_minus_120() -> None:
    assert ulaw_frame_dbfs(SILENCE_FRAME_ULAW) == -120.0
    assert ulaw_frame_dbfs(b"\x7f" * 160) == -120.0  # mu-law negative zero
    assert ulaw_frame_dbfs(b"") == -120.0


# --- configuration ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"on_dbfs": -50.0, "off_dbfs": -40.0}, "off_dbfs"),
        ({"min_speech_frames": 0}, "min_speech_frames"),
        ({"hangover_ms": 10}, "hangover_ms"),
        ({"on_dbfs": float("nan")}, "finite"),
    ],
)
def test_config_validation(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        VadConfig(**kwargs)  # type: ignore[arg-type]


# --- state machine -----------------------------------------------------------------

SPEECH, MID, QUIET = -20.0, -45.0, -70.0  # MID is between off (-50) and on (-40)


def test_start_is_stamped_with_the_first_frame_of_the_run() -> None:
    events = run([QUIET] * 5 + [SPEECH] * 5)
    assert events == [(6, SpeechStart(5 * 20 * MS))]  # confirmed at frame 6, began at 5


def test_end_is_stamped_with_the_last_speech_frame_after_the_hangover() -> None:
    levels = [SPEECH] * 10 + [QUIET] * 20
    events = run(levels)
    # 200 ms hangover = 10 quiet frames (10..19); the event comes on the 10th.
    assert events == [(1, SpeechStart(0)), (19, SpeechEnd(9 * 20 * MS))]


def test_a_pause_shorter_than_the_hangover_does_not_end_speech() -> None:
    levels = [SPEECH] * 5 + [QUIET] * 9 + [SPEECH] * 5 + [QUIET] * 10
    events = run(levels)
    assert events == [(1, SpeechStart(0)), (28, SpeechEnd(18 * 20 * MS))]


def test_single_frame_click_is_not_speech() -> None:
    assert run([QUIET, SPEECH, QUIET, QUIET, 0.0, QUIET, SPEECH, QUIET]) == []


def test_frames_between_off_and_on_neither_start_nor_end_speech() -> None:
    # Hysteresis: MID frames cannot open a run, but they keep speech alive...
    assert run([MID] * 30) == []
    events = run([SPEECH, SPEECH] + [MID] * 30 + [QUIET] * 10)
    assert events == [(1, SpeechStart(0)), (41, SpeechEnd(31 * 20 * MS))]
    # ...and they confirm a run opened by a loud frame.
    assert run([QUIET, SPEECH, MID, QUIET]) == [(2, SpeechStart(20 * MS))]


def test_run_opens_only_on_a_loud_first_frame() -> None:
    # The MID frame before the loud one is not part of the run.
    assert run([MID, SPEECH, SPEECH]) == [(2, SpeechStart(20 * MS))]


def test_min_speech_frames_and_hangover_are_configurable() -> None:
    config = VadConfig(min_speech_frames=3, hangover_ms=60)
    assert run([SPEECH, SPEECH, QUIET], config) == []
    events = run([SPEECH] * 3 + [QUIET] * 3, config)
    assert events == [(2, SpeechStart(0)), (5, SpeechEnd(40 * MS))]
    assert run([SPEECH], VadConfig(min_speech_frames=1)) == [(0, SpeechStart(0))]


def test_speaking_property_flush_and_reset() -> None:
    vad = StreamingVad(VadConfig())
    assert not vad.speaking
    vad.feed(SPEECH, 0)
    assert not vad.speaking  # not confirmed yet
    vad.feed(SPEECH, 20 * MS)
    assert vad.speaking
    assert vad.flush() == SpeechEnd(20 * MS)
    assert not vad.speaking
    vad.feed(SPEECH, 40 * MS)
    vad.reset()
    assert vad.feed(SPEECH, 60 * MS) is None  # the earlier pending frame was forgotten
    assert vad.feed(SPEECH, 80 * MS) == SpeechStart(60 * MS)


# --- trimming ------------------------------------------------------------------------


def test_trim_keeps_exactly_the_speech_frames() -> None:
    speech = [tone_frame(-20.0, 300.0 + 50 * i) for i in range(6)]
    pause = [tone_frame(-70.0)] * 5  # shorter than the hangover: kept
    audio = SILENCE_FRAME_ULAW * 7 + b"".join(speech[:3] + pause + speech[3:])
    audio += SILENCE_FRAME_ULAW * 4 + b"\xff" * 37  # ragged tail
    trimmed = trim_silence(audio)
    assert trimmed == b"".join(speech[:3] + pause + speech[3:])


def test_trim_result_starts_and_ends_with_speech_by_the_vad() -> None:
    audio = tone_frame(-70.0) * 3 + tone_frame(-30.0) * 4 + tone_frame(-45.0) * 2
    audio += tone_frame(-70.0) * 12
    trimmed = trim_silence(audio)
    assert len(trimmed) == 6 * FRAME_BYTES  # 4 loud frames and 2 above off_dbfs
    assert ulaw_frame_dbfs(trimmed[:FRAME_BYTES]) >= VadConfig().on_dbfs
    assert ulaw_frame_dbfs(trimmed[-FRAME_BYTES:]) >= VadConfig().off_dbfs


def test_trim_of_audio_without_speech_is_empty() -> None:
    assert trim_silence(SILENCE_FRAME_ULAW * 10 + tone_frame(-10.0)) == b""  # a click
    assert trim_silence(b"") == b""


def test_trim_of_a_partial_final_speech_frame_pads_it() -> None:
    audio = tone_frame(-20.0) * 3 + tone_frame(-20.0)[:50]
    trimmed = trim_silence(audio)
    assert len(trimmed) == 4 * FRAME_BYTES
    assert trimmed.startswith(audio) and trimmed.endswith(b"\xff" * 110)


def test_a_stream_shorter_than_the_start_up_verdict_still_spoke() -> None:
    # a stream that begins between -40 and -26 dBFS waits up to 25 frames for the
    # verdict (speech or a noise bed); one that ends before it gives its events at the end
    vad = StreamingVad(VadConfig())
    levels = [-30.0, -28.0, -27.0, -29.0, -31.0]
    assert [vad.feed(level, i * 20 * MS) for i, level in enumerate(levels)] == [None] * 5
    assert vad.finish() == [SpeechStart(0), SpeechEnd(4 * 20 * MS)]
    assert vad.finish() == []


def test_a_stream_that_starts_speaking_gets_its_onset_once_it_varies() -> None:
    # speech spreads wider than a bed: the onset (stamped at frame 0) comes as soon as
    # the first frames spread over noise_spread_db, not after the whole half second
    levels = [-34.0, -28.0, -20.0, -14.0, -16.0, -30.0, -18.0] + [-20.0] * 30
    events = run(levels)
    assert events[0][1] == SpeechStart(0) and events[0][0] <= 6


def test_a_short_word_at_a_streams_start_is_speech_not_a_bed():
    # "no." said slowly (espeak-ng en-us at 130 words a minute): half a second that
    # starts at -27 dBFS and spreads only 10 dB, then silence. A noise bed would go on;
    # this stops, so it is speech (it was once trimmed away whole as a bed).
    levels = [-27, -28, -28, -28, -27, -25, -23, -21, -19, -18, -18, -18, -18, -18, -19,
              -18, -18, -19, -20, -23, -21, -23, -24, -23, -27, -27] + [SILENCE_DBFS] * 30
    vad = StreamingVad()
    events = [e for i, level in enumerate(levels) if (e := vad.feed(level, i)) is not None]
    events += vad.finish()
    assert [type(e) for e in events] == [SpeechStart, SpeechEnd]
    assert events[0].t_ns == 0
