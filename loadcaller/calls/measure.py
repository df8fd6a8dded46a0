"""What the caller hears, and the per-turn measurement (sans-I/O).

How this works: every frame the caller hears (a :class:`PlayedFrame`, stamped
with the instant its playout began) goes through the streaming VAD. The
:class:`Listener` keeps the agent's speech onsets and ends as instants.
A turn's latency is the interval from the caller's end of speech (the instant
its last speech frame was handed to the socket) to the first onset of agent
speech at or after it: the first frame of a run of speech frames, as heard.
If the agent was already speaking when the caller stopped (it talked over the
caller) the turn is answered with latency 0 and marked ``overlap``.

Nothing here waits or reads a clock; the call runner asks and the media clock
feeds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from loadcaller.audio.vad import SpeechEnd, SpeechStart, StreamingVad, VadConfig, ulaw_frame_dbfs
from loadcaller.media.frames import PlayedFrame
from loadcaller.media.outcomes import TurnOutcome

SILENCE_DBFS = -120.0


@dataclass(frozen=True, slots=True)
class TurnResult:
    """One measured turn."""

    index: int
    outcome: TurnOutcome
    t_speech_end_ns: int
    t_reply_onset_ns: int | None = None
    overlap: bool = False
    faults: tuple[str, ...] = ()  # chaos faults active while the turn ran
    # "say", "barge_in" (the caller's turn began by talking over the agent) or "silence"
    # (t_speech_end_ns: when the line went quiet; outcome reprompted or no_reprompt)
    step: str = "say"
    bargein: str | None = None  # a BargeInOutcome
    t_bargein_ns: int | None = None  # the caller's first interrupting frame left
    t_agent_stop_ns: int | None = None  # the end of the agent's audio as heard
    t_reprompt_ns: int | None = None  # silence: the onset of the agent's reprompt
    heard_text: str | None = None  # expect: what speech recognition heard in the reply
    expect_ok: bool | None = None  # expect: the verdict (None: not checked)
    expect_reason: str | None = None
    # measured while this process's generator was saturated (calls/stretches.py)
    generator_saturated: bool = False
    # the agent began speaking while the caller was mid-utterance (in a persona's pause):
    # the onset as heard, and the caller's last speech frame sent before it
    t_cut_in_ns: int | None = None
    t_cut_in_after_ns: int | None = None
    # when ``faults`` was complete: the reply onset when a fault began while the caller
    # waited (None: at the end of speech). Orders the run's chaos phases (results.py)
    t_faults_ns: int | None = None

    @property
    def latency_ns(self) -> int | None:
        if self.t_reply_onset_ns is None:
            return None
        return max(0, self.t_reply_onset_ns - self.t_speech_end_ns)

    @property
    def bargein_reaction_ns(self) -> int | None:
        """From the caller's interrupting onset to the end of the agent's audio as heard."""
        if self.t_bargein_ns is None or self.t_agent_stop_ns is None:
            return None
        return self.t_agent_stop_ns - self.t_bargein_ns

    @property
    def cut_in_ns(self) -> int | None:
        """How long into the caller's pause the agent began to reply (None: it did not)."""
        if self.t_cut_in_ns is None or self.t_cut_in_after_ns is None:
            return None
        return max(0, self.t_cut_in_ns - self.t_cut_in_after_ns)

    @property
    def reprompt_ns(self) -> int | None:
        """Silence: from the line going quiet to the agent's reprompt."""
        if self.t_reprompt_ns is None:
            return None
        return max(0, self.t_reprompt_ns - self.t_speech_end_ns)


class Listener:
    """The caller's ear: VAD over heard frames, onsets and ends kept in order."""

    __slots__ = ("_vad", "ends", "onsets")

    def __init__(self, config: VadConfig) -> None:
        self._vad = StreamingVad(config)
        self.onsets: list[int] = []
        self.ends: list[int] = []

    def hear(self, frames: list[PlayedFrame], levels: Sequence[float] | None = None) -> bool:
        """Feed heard frames; True when an onset or an end was found.

        ``levels``: the levels in dBFS of the frames with audio, in order, when
        the media clock computed them in one batch for all its calls (a frame
        with empty audio is silence and has none).
        """
        changed = False
        vad = self._vad
        j = 0
        for frame in frames:
            audio = frame.audio
            if not audio:
                dbfs = SILENCE_DBFS
            elif levels is not None:
                dbfs = levels[j]
                j += 1
            else:
                dbfs = ulaw_frame_dbfs(audio)
            event = vad.feed(dbfs, frame.t_ns)
            if event is None:
                continue
            changed = True
            if isinstance(event, SpeechStart):
                self.onsets.append(event.t_ns)
            elif isinstance(event, SpeechEnd):
                self.ends.append(event.t_ns)
        return changed

    def onset_at_or_after(self, t_ns: int) -> int | None:
        """The first onset at or after ``t_ns``."""
        for onset in self.onsets:
            if onset >= t_ns:
                return onset
        return None

    def run_around(self, t_ns: int) -> tuple[int, int | None] | None:
        """The agent's speech run that began before ``t_ns``: (onset, end or None)."""
        last = None
        for onset in self.onsets:
            if onset >= t_ns:
                break
            last = onset
        if last is None:
            return None
        return last, self.end_after(last)

    def end_after(self, t_ns: int) -> int | None:
        """The first end of agent speech at or after ``t_ns``."""
        for end in self.ends:
            if end >= t_ns:
                return end
        return None


def reply_onset(listener: Listener, t_speech_end_ns: int,
                final: bool = False) -> tuple[int, bool] | None:
    """The reply onset for a turn ending at ``t_speech_end_ns``: (onset, overlap).

    If the agent's last run of speech began before the caller stopped and its end
    is not known yet (the VAD's hangover has not run out), the answer is not
    known either: None, unless ``final`` (the wait is over), when the agent is
    taken to have talked over the end of the caller's turn.
    """
    run = listener.run_around(t_speech_end_ns)
    if run is not None:
        onset, end = run
        if end is None:
            return (onset, True) if final else None
        if end >= t_speech_end_ns:
            return onset, True
    after = listener.onset_at_or_after(t_speech_end_ns)
    return (after, False) if after is not None else None
