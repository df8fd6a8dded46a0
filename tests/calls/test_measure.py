"""The per-turn measurement on a fake clock: onsets as heard, overlap, hangover."""

from loadcaller.audio.pack import load_pack_audio
from loadcaller.calls.measure import Listener, TurnResult, reply_onset
from loadcaller.calls.script import LISTEN_VAD
from loadcaller.calls.utterance import make_utterance
from loadcaller.media.frames import PlayedFrame

MS = 1_000_000
SPEECH = make_utterance("reply", load_pack_audio("agent_goodbye")).frames


def hear(listener: Listener, start_ms: int, frames: list[bytes]) -> int:
    listener.hear([PlayedFrame((start_ms + 20 * i) * MS, f) for i, f in enumerate(frames)])
    return start_ms + 20 * len(frames)


def test_reply_onset_is_the_first_speech_frame_heard_after_the_caller_stopped():
    ear = Listener(LISTEN_VAD)
    t = hear(ear, 0, [b""] * 50)  # 1 s of silence
    t = hear(ear, t, list(SPEECH))  # the reply starts at 1000 ms
    assert reply_onset(ear, 400 * MS) == (1000 * MS, False)
    assert reply_onset(ear, 1000 * MS) == (1000 * MS, False)
    # the caller stopped 1 ms into the reply: the agent talked over it, known once final
    assert reply_onset(ear, 1001 * MS) is None
    assert reply_onset(ear, 1001 * MS, final=True) == (1000 * MS, True)


def test_caller_stopping_just_after_the_agent_is_not_an_overlap():
    # The agent's speech ends at t; the caller stops 250 ms later, before the
    # listener's 400 ms hangover has confirmed the end. That is not the agent
    # talking over the caller: the turn waits for the real reply.
    ear = Listener(LISTEN_VAD)
    t = hear(ear, 0, list(SPEECH))
    speech_end = t + 250
    hear(ear, t, [b""] * 15)  # 300 ms of silence heard so far: end not confirmed
    assert reply_onset(ear, speech_end * MS) is None
    t = hear(ear, t + 300, [b""] * 10)  # hangover runs out
    assert reply_onset(ear, speech_end * MS) is None  # nothing yet: keep waiting
    t = hear(ear, t, list(SPEECH))  # the reply
    onset, overlap = reply_onset(ear, speech_end * MS)
    assert not overlap and onset == (t - 20 * len(SPEECH)) * MS


def test_agent_still_talking_when_the_caller_stops_is_an_overlap():
    ear = Listener(LISTEN_VAD)
    hear(ear, 0, list(SPEECH))
    mid = 10 * 20 * MS  # the caller stopped while the agent was speaking
    assert reply_onset(ear, mid) is None  # the run has not ended yet: unknown
    assert reply_onset(ear, mid, final=True) == (0, True)
    hear(ear, 20 * len(SPEECH), [b""] * 30)
    assert reply_onset(ear, mid) == (0, True)


def test_silence_only_never_answers():
    ear = Listener(LISTEN_VAD)
    hear(ear, 0, [b""] * 200)
    assert ear.onsets == []
    assert reply_onset(ear, 0, final=True) is None


def test_turn_latency_is_reply_onset_minus_speech_end_exactly():
    turn = TurnResult(0, "answered", t_speech_end_ns=1_000_000_123, t_reply_onset_ns=1_734_500_456)
    assert turn.latency_ns == 734_500_333
    assert TurnResult(0, "answered", 5 * MS, 5 * MS).latency_ns == 0
    assert TurnResult(0, "no_response", 5 * MS).latency_ns is None


def test_overlap_boundary_is_the_end_of_the_agents_run_exactly():
    # The agent speaks, its run ends (VAD end) at some instant E. A caller that
    # stops at E or before was talked over; one that stops 1 ns after E was not.
    ear = Listener(LISTEN_VAD)
    t = hear(ear, 0, list(SPEECH))
    hear(ear, t, [b""] * 40)  # the hangover runs out: the run's end is known
    (end,) = ear.ends
    assert reply_onset(ear, end) == (0, True)
    assert reply_onset(ear, end - 1) == (0, True)
    assert reply_onset(ear, end + 1) is None  # not an overlap: wait for the reply
    assert reply_onset(ear, end + 1, final=True) is None
    # and a stop 300 ms after the end is not an overlap either
    assert reply_onset(ear, end + 300 * MS, final=True) is None


def test_levels_given_for_the_frames_with_audio_match_the_listeners_own():
    # the media clock hands the listener one level per frame with audio (silence,
    # empty audio, has none): gaps of silence between speech must not shift them
    from loadcaller.audio.vad import ulaw_frames_dbfs

    loud, faint = bytes([0x00, 0x80]) * 80, bytes([0xFE]) * 160  # full scale; about -80 dBFS
    # ticks whose first frames are loud and the last faint: each must get its own level
    audio = [b""] * 7 + list(SPEECH) + [b""] * 30 + list(SPEECH[:20]) + [b""] * 25
    audio += [b""] * (-len(audio) % 3) + [loud, loud, faint] * 6 + [faint] * 30
    frames = [PlayedFrame(i * 20 * MS, a) for i, a in enumerate(audio)]
    own, batched = Listener(LISTEN_VAD), Listener(LISTEN_VAD)
    own.hear(frames)
    for i in range(0, len(frames), 3):  # ticks of up to three frames, as the clock gives them
        chunk = frames[i:i + 3]
        batched.hear(chunk, ulaw_frames_dbfs([f.audio for f in chunk if f.audio]))
    assert own.onsets and own.ends
    assert (batched.onsets, batched.ends) == (own.onsets, own.ends)
