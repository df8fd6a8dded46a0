"""Twilio's playout of an agent's audio, as the caller hears it.

How this works: Twilio plays what an agent sends at 8000 bytes/s of mu-law, no
matter how fast it arrives. Audio is queued; a ``mark`` is echoed when the
playout reaches it; ``clear`` empties the queue and echoes every pending mark.

Sans-I/O: :meth:`Playout.push` takes bytes and the receive instant, and
:meth:`Playout.advance` returns the 20 ms frames whose playout has begun by
``now``, each stamped with the instant it began to play. Those instants are
computed, not observed: the first byte of a burst plays when it arrives (or when
the audio before it ends), and each further byte 125 us after the one before.
So the onset the caller "hears" is exact to the receive timestamp, however
coarse the tick that calls :meth:`advance`. When nothing plays, silence frames
are emitted on the same grid so a listener's VAD sees time pass.

The queue is bounded: an agent may send audio faster than real time (TTS often
arrives in bursts), but one that sent twenty minutes of audio in a second held
9.2 MiB per call in the caller. :meth:`Playout.push` refuses audio beyond
``max_bytes`` (60 s by default) and :meth:`Playout.mark` marks beyond
``max_marks`` pending or ``max_mark_bytes`` of pending names, with
:class:`PlayoutOverflow`: the call ends as the agent's error instead of the
caller's memory growing.
"""

from __future__ import annotations

from collections import deque

from loadcaller.errors import RemoteError
from loadcaller.media.frames import (
    FRAME_BYTES,
    FRAME_NS,
    NS_PER_BYTE,
    SAMPLE_RATE,
    SILENT,
    PlayedFrame,
)

__all__ = ["DEFAULT_MAX_BYTES", "DEFAULT_MAX_MARKS", "Playout", "PlayoutOverflow"]

DEFAULT_MAX_BYTES = 60 * SAMPLE_RATE  # one minute of mu-law
DEFAULT_MAX_MARKS = 10_000  # an agent marks a reply or a chunk of one, not every byte
DEFAULT_MAX_MARK_BYTES = 1 << 20  # names of pending marks (a name may be a whole message)


class PlayoutOverflow(RemoteError):
    """The agent queued more audio (or marks) than the playout holds."""


class Playout:
    """The playout queue of one stream."""

    __slots__ = ("_buf", "_mark_bytes", "_marks", "_played", "_queued", "_t_next", "max_bytes",
                 "max_mark_bytes", "max_marks")

    def __init__(self, now_ns: int, *, max_bytes: int = DEFAULT_MAX_BYTES,
                 max_marks: int = DEFAULT_MAX_MARKS,
                 max_mark_bytes: int = DEFAULT_MAX_MARK_BYTES) -> None:
        self.max_bytes = max_bytes
        self.max_marks = max_marks
        self.max_mark_bytes = max_mark_bytes
        self._mark_bytes = 0  # length of the pending marks' names
        self._buf = bytearray()
        self._queued = 0  # bytes ever queued (stream offset of the buffer's end)
        self._played = 0  # bytes ever played (stream offset of the buffer's start)
        self._t_next = now_ns  # when the next byte (or silence frame) starts to play
        self._marks: deque[tuple[int, str]] = deque()  # (stream offset, name)

    @property
    def queued_bytes(self) -> int:
        """Audio waiting to be played."""
        return len(self._buf)

    def push(self, payload: bytes, now_ns: int) -> None:
        """Queue audio received at ``now_ns``; :class:`PlayoutOverflow` past ``max_bytes``."""
        if len(self._buf) + len(payload) > self.max_bytes:
            queued = (len(self._buf) + len(payload)) / SAMPLE_RATE
            raise PlayoutOverflow(
                f"agent sent audio faster than real time: {queued:.1f} s queued for playout "
                f"(limit {self.max_bytes / SAMPLE_RATE:g} s)")
        if not self._buf and self._t_next < now_ns:
            # Idle: the silence grid ran up to _t_next; this audio plays on arrival.
            self._t_next = now_ns
        self._buf += payload
        self._queued += len(payload)

    def mark(self, name: str, now_ns: int) -> None:
        """Queue a mark after the audio queued so far; :class:`PlayoutOverflow` past
        ``max_marks`` pending or ``max_mark_bytes`` of their names."""
        if len(self._marks) >= self.max_marks:
            raise PlayoutOverflow(f"agent queued over {self.max_marks} marks for playout "
                                  "without the audio before them having played")
        if self._mark_bytes + len(name) > self.max_mark_bytes:
            raise PlayoutOverflow(f"agent queued marks whose names take over "
                                  f"{self.max_mark_bytes} bytes before their audio played")
        self._marks.append((self._queued, name))
        self._mark_bytes += len(name)

    def clear(self, now_ns: int) -> list[str]:
        """Drop queued audio; return the pending marks, echoed now."""
        dropped = len(self._buf)
        self._buf.clear()
        self._played += dropped
        if self._t_next > now_ns:
            self._t_next = now_ns
        names = [name for _, name in self._marks]
        self._marks.clear()
        self._mark_bytes = 0
        return names

    def cut(self, now_ns: int) -> tuple[list[PlayedFrame], list[str]]:
        """A ``clear`` at ``now_ns``: what was heard until then, and every mark echoed.

        The heard frames are those whose playout began before ``now_ns``, the last
        one cut at the byte ``now_ns`` falls in: audio that arrived and was cleared
        at the same instant was never heard (an agent sending media, mark and clear
        in a loop once had each whole frame counted as heard).
        """
        frames, marks = self.advance(now_ns)
        if frames:
            last = frames[-1]
            begun = -((last.t_ns - now_ns) // NS_PER_BYTE)  # its bytes begun before now
            if begun < len(last.audio):
                frames[-1:] = [PlayedFrame(last.t_ns, last.audio[:begun])] if begun > 0 else []
        return frames, marks + self.clear(now_ns)

    def advance(self, now_ns: int) -> tuple[list[PlayedFrame], list[str]]:
        """Frames whose playout has begun by ``now_ns``, and marks now passed."""
        t = self._t_next
        buf = self._buf
        frames: list[PlayedFrame] = []
        if not buf:  # the agent is quiet (most ticks of most calls): silence only
            if t + FRAME_NS <= now_ns:
                k = (now_ns - t) // FRAME_NS
                frames = [PlayedFrame(t + i * FRAME_NS, SILENT) for i in range(k)]
                self._t_next = t + k * FRAME_NS
        else:
            played = self._played
            while t <= now_ns:
                if buf:
                    n = len(buf)
                    if n >= FRAME_BYTES:
                        n = FRAME_BYTES
                    elif t + n * NS_PER_BYTE > now_ns:
                        break  # a partial tail: wait, more audio may complete the frame
                    frames.append(PlayedFrame(t, bytes(buf[:n])))
                    del buf[:n]
                    played += n
                    t += n * NS_PER_BYTE
                else:
                    if t + FRAME_NS > now_ns:
                        break  # silence is heard once its 20 ms have passed
                    frames.append(PlayedFrame(t, SILENT))
                    t += FRAME_NS
            self._t_next, self._played = t, played
        if not self._marks:
            return frames, []
        # A mark is passed once the audio before it has finished playing.
        finished = self._played - max(0, -((now_ns - self._t_next) // NS_PER_BYTE))
        marks: list[str] = []
        while self._marks and self._marks[0][0] <= finished:
            name = self._marks.popleft()[1]
            self._mark_bytes -= len(name)
            marks.append(name)
        return frames, marks
