"""Streaming energy VAD shared by the synthetic caller and the reference agent.

How this works: each 20 ms mu-law frame is reduced to one level in dBFS
(``ulaw_frame_dbfs``, a table lookup and a sum) and fed to ``StreamingVad``,
a three-state machine with hysteresis (on_dbfs and off_dbfs: the thresholds in
force, raised over a noise bed as described below):

    state      frame level          next state   event
    ---------  -------------------  -----------  -----------------------------
    silent     >= on_dbfs           pending      (SpeechStart if min_speech_frames == 1)
    pending    >= off_dbfs          pending      SpeechStart(first frame) once
                                                 min_speech_frames are in a row
    pending    <  off_dbfs          silent       -- (a click is not speech)
    speaking   >= off_dbfs          speaking     -- (remember it as the last speech frame)
    speaking   <  off_dbfs          speaking     SpeechEnd(last speech frame) once
                                                 hangover_ms of such frames followed it

Events carry the timestamp of the frame that defines them, not of the frame
that confirmed them: turn latency is measured from the last speech frame to the
first reply frame, and the hangover/confirmation delay must not leak into it.

Noise. A caller in a street or an office is never silent: a noise bed at 10 dB
SNR under normal speech sits near -31 dBFS, above the fixed -40 dBFS, so a
fixed-threshold VAD hears one endless utterance. The VAD therefore tracks the
noise it hears (``audio/noisefloor.py``): over the last second, when it looks
like stationary noise (10th to 90th percentile within ``noise_spread_db``), the
thresholds become ``max(on_dbfs, ceiling + on_margin_db)`` and ``max(off_dbfs,
ceiling + off_margin_db)``, the ceiling being its 90th percentile; over a known
bed they also stand that far over the median of the last 200 ms heard while
silent (plus the bed's frame-to-frame jitter) when that is higher, which is
what follows a street's swelling traffic. A second that holds speech is not
stationary, so speech never raises the floor. In noise the onset of a run is
looked back over at most ``onset_lookback_frames`` frames that stand above the
noise's median and that, the noise's power taken off, would have been speech to
the fixed VAD (speech rising out of noise is under it for its first frames),
and over up to two frames just under that line (a soft onset's first frames are
buried: measured, 2 to 4 more onsets in 100 within 40 ms in babble, car and
brown noise, with the line lowered by at most the bed's jitter). A stream whose
first frame is between ``on_dbfs`` and -26 dBFS is held for up to 1 s
(``noisefloor.startup_verdict``): speech spreads wider than a noise bed or stops
(a short word), and a stationary start is learned as the floor instead of being
heard as a reply. The
thresholds move only for a stationary second whose 90th percentile is above -53
dBFS (off) or -44 dBFS (on), or over 200 ms of steady noise above -60 dBFS.
Clean speech has neither (its pauses are digital silence or fading tails), so
on clean audio the VAD is the fixed one, event for event, except that an onset
in a stream's very first frame is confirmed when the start-up verdict comes
(its timestamp is the same; tests/audio/test_vad_noise.py). docs/personas.md
has the figures.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from enum import Enum
from typing import Final

import numpy as np

from loadcaller.audio.frames import FRAME_BYTES, FRAME_MS, split_frames
from loadcaller.audio.g711 import ULAW_POWER
from loadcaller.audio.noisefloor import STARTUP_MAX_DBFS, NoiseFloor, QuietFloor, startup_verdict

__all__ = [
    "SILENCE_DBFS",
    "SpeechEnd",
    "SpeechStart",
    "StreamingVad",
    "VadConfig",
    "VadEvent",
    "trim_silence",
    "ulaw_frame_dbfs",
    "ulaw_frames_dbfs",
]

SILENCE_DBFS: Final = -120.0
"""Level reported for digital silence (log of zero is undefined)."""

_FULL_SCALE_POWER: Final = 32768.0**2
_BURIED_FRAMES: Final = 2
STOP_BELOW_OFF_DB: Final = 10.0
"""At a stream's start, a level this far under ``off_dbfs`` means the sound stopped."""
_BURIED_DB: Final = 1.0
"""An onset looks back over up to 2 frames less than 1 dB under the lookback line."""


def ulaw_frame_dbfs(frame: bytes) -> float:
    """RMS level of one mu-law frame in dBFS (full scale = 32768); -120.0 for silence."""
    if not frame:
        return SILENCE_DBFS
    # take().sum() measured fastest of the numpy and pure-Python variants for 160 bytes.
    power = float(ULAW_POWER.take(np.frombuffer(frame, dtype=np.uint8)).sum()) / len(frame)
    if power <= 0.0:
        return SILENCE_DBFS
    return max(SILENCE_DBFS, 10.0 * math.log10(power / _FULL_SCALE_POWER))


def ulaw_frames_dbfs(frames: list[bytes]) -> list[float]:
    """:func:`ulaw_frame_dbfs` of many frames at once, in order.

    The media clock asks this once per sub-tick for every frame its calls
    heard: one numpy pass over the 160-byte frames costs about 0.7 us per frame
    against 4.7 us one call at a time. Empty frames are silence; frames of
    another length go one at a time.
    """
    n = len(frames)
    full = [i for i, f in enumerate(frames) if len(f) == FRAME_BYTES]
    if len(full) == n:  # every frame whole: the agent talks to every call that heard one
        return _frames_dbfs(b"".join(frames), n) if n else []
    out = [SILENCE_DBFS] * n
    if full:
        levels = _frames_dbfs(b"".join([frames[i] for i in full]), len(full))
        for i, level in zip(full, levels, strict=True):
            out[i] = level
    for i, f in enumerate(frames):
        if f and len(f) != FRAME_BYTES:
            out[i] = ulaw_frame_dbfs(f)
    return out


_TINY_POWER: Final = 1e-300
"""Stands in for a power of 0 (digital silence) before the logarithm: its level is far
under the floor, as log10(0) would be, without numpy's divide-by-zero warning (whose
``errstate`` cost more than the logarithm for a sub-tick's frames)."""


def _frames_dbfs(data: bytes, rows: int) -> list[float]:
    power = ULAW_POWER.take(np.frombuffer(data, dtype=np.uint8)).reshape(rows, FRAME_BYTES)
    mean = np.add.reduce(power, axis=1) / FRAME_BYTES
    dbfs = 10.0 * np.log10(np.maximum(mean, _TINY_POWER) / _FULL_SCALE_POWER)
    levels: list[float] = np.maximum(SILENCE_DBFS, dbfs).tolist()
    return levels


@dataclass(frozen=True)
class VadConfig:
    """Thresholds of the energy VAD.

    A run of speech begins at a frame >= ``on_dbfs`` and is confirmed once
    ``min_speech_frames`` consecutive frames are >= ``off_dbfs``; speech ends
    after ``hangover_ms`` of frames below ``off_dbfs``. Over a stationary noise
    bed both thresholds rise to the noise's ceiling plus a margin (the module
    docstring); ``noise_window_ms=0`` turns that off.
    """

    on_dbfs: float = -40.0
    off_dbfs: float = -50.0
    min_speech_frames: int = 2
    hangover_ms: int = 200
    noise_window_ms: int = 1000
    noise_spread_db: float = 12.0
    on_margin_db: float = 4.0
    off_margin_db: float = 3.0
    onset_lookback_frames: int = 3

    def __post_init__(self) -> None:
        if not (math.isfinite(self.on_dbfs) and math.isfinite(self.off_dbfs)):
            raise ValueError("VAD thresholds must be finite numbers")
        if self.off_dbfs > self.on_dbfs:
            raise ValueError(f"off_dbfs ({self.off_dbfs}) must not exceed on_dbfs ({self.on_dbfs})")
        if self.min_speech_frames < 1:
            raise ValueError(f"min_speech_frames must be >= 1, got {self.min_speech_frames}")
        if self.hangover_ms < FRAME_MS:
            raise ValueError(
                f"hangover_ms must be at least one frame ({FRAME_MS} ms), got {self.hangover_ms}"
            )
        if self.noise_window_ms != 0 and self.noise_window_ms < 10 * FRAME_MS:
            raise ValueError(f"noise_window_ms must be 0 (off) or at least {10 * FRAME_MS} ms, "
                             f"got {self.noise_window_ms}")
        margins = (self.noise_spread_db, self.on_margin_db, self.off_margin_db)
        if not all(math.isfinite(m) and m >= 0.0 for m in margins):
            raise ValueError("noise_spread_db and the margins must be finite and >= 0")
        if self.off_margin_db > self.on_margin_db:
            raise ValueError(f"off_margin_db ({self.off_margin_db}) must not exceed "
                             f"on_margin_db ({self.on_margin_db})")
        if self.onset_lookback_frames < 0:
            raise ValueError(
                f"onset_lookback_frames must be >= 0, got {self.onset_lookback_frames}")

    @property
    def hangover_frames(self) -> int:
        """Number of consecutive quiet frames that end speech."""
        return self.hangover_ms // FRAME_MS


@dataclass(frozen=True)
class SpeechStart:
    """Speech began; ``t_ns`` is the timestamp of the first frame of the run."""

    t_ns: int


@dataclass(frozen=True)
class SpeechEnd:
    """Speech ended; ``t_ns`` is the timestamp of the last frame at or above off_dbfs."""

    t_ns: int


VadEvent = SpeechStart | SpeechEnd


class _State(Enum):
    SILENT = "silent"
    PENDING = "pending"
    SPEAKING = "speaking"


class StreamingVad:
    """Frame-by-frame speech detector; feed one level per 20 ms frame, in order."""

    def __init__(self, config: VadConfig | None = None) -> None:
        self.config = config if config is not None else VadConfig()
        self._hangover_frames = self.config.hangover_frames
        self.reset()

    def reset(self) -> None:
        """Forget all state, as if no frame had been fed."""
        cfg = self.config
        self._noise = NoiseFloor(cfg) if cfg.noise_window_ms else None
        self._quiet = QuietFloor(cfg)
        self._startup: list[float] | None = [] if cfg.noise_window_ms else None
        self._held: deque[VadEvent] = deque()
        self._recent: deque[tuple[float, int]] = deque(maxlen=cfg.onset_lookback_frames + 1)
        self._state = _State.SILENT
        self._run_start_ns = 0
        self._run_frames = 0
        self._last_speech_ns = 0
        self._quiet_frames = 0
        # digital silence heard in a row while silent (see feed's fast path)
        self._hush = 0
        self._hush_steady = (self._noise.silent_steady if self._noise is not None
                             else cfg.onset_lookback_frames + 1)

    @property
    def speaking(self) -> bool:
        """True between a SpeechStart and the matching SpeechEnd."""
        return self._state is _State.SPEAKING and self._startup is None

    @property
    def thresholds(self) -> tuple[float, float]:
        """The (on, off) levels of the one-second floor: the configured ones, or raised."""
        noise = self._noise
        if noise is None:
            return self.config.on_dbfs, self.config.off_dbfs
        return noise.on_dbfs, noise.off_dbfs

    def feed(self, dbfs: float, t_ns: int) -> SpeechStart | SpeechEnd | None:
        """Advance by one frame of level ``dbfs`` stamped ``t_ns``; return an event if any.

        Fast path: a caller hears digital silence whenever the agent is not
        talking, most of a call. Once silent through a whole noise window of it,
        another such frame changes nothing but counters and the recent frames, so
        it costs a few hundred nanoseconds instead of the full step (the states
        reached are the same, frame for frame: tested).
        """
        if dbfs <= SILENCE_DBFS:
            if self._hush >= self._hush_steady:
                self._recent.append((dbfs, t_ns))
                if self._noise is not None:
                    self._noise.add_silent()
                return None
            event = self._feed(dbfs, t_ns)
            if (self._state is _State.SILENT and self._startup is None and not self._held
                    and event is None):
                self._hush += 1
            else:
                self._hush = 0
            return event
        self._hush = 0
        if self._state is _State.SPEAKING and self._startup is None and not self._held:
            return self._speaking(dbfs, t_ns)  # what _feed would do, with less on the way
        return self._feed(dbfs, t_ns)

    def _feed(self, dbfs: float, t_ns: int) -> SpeechStart | SpeechEnd | None:
        startup = self._startup
        if startup is not None:
            if startup or self.config.on_dbfs <= dbfs <= STARTUP_MAX_DBFS:
                startup.append(dbfs)
            else:
                self._startup = startup = None  # begins quiet, or too loud for a bed: speech
        event = self._step(dbfs, t_ns)
        if startup is not None:
            if event is not None:
                self._held.append(event)
            verdict = startup_verdict(startup, self.config.noise_spread_db,
                                      self.config.off_dbfs - STOP_BELOW_OFF_DB)
            if verdict is None:
                return None
            self._startup, event = None, None
            if not verdict:
                self._learn_bed(startup)
        held = self._held
        if held:
            if event is not None:
                held.append(event)
            return held.popleft()
        return event

    def _learn_bed(self, levels: list[float]) -> None:
        """The stream began with a noise bed: no speech was heard, and that is its floor."""
        self._held.clear()
        self._state = _State.SILENT
        self._quiet_frames = 0
        if self._noise is not None:
            self._noise.seed(levels)
        self._quiet.extend(levels)

    def _speaking(self, dbfs: float, t_ns: int) -> SpeechEnd | None:
        """:meth:`_step` while speaking: the agent talks for much of a call.

        The quiet floor moves only the onset's thresholds and the off level before
        speech is confirmed; while speaking it is neither read nor fed (speech's
        end clears it), so a speaking frame leaves it alone.
        """
        noise = self._noise
        if noise is None:
            off_dbfs = self.config.off_dbfs
        else:
            noise.add(dbfs, True)
            off_dbfs = noise.off_dbfs
        self._recent.append((dbfs, t_ns))
        if dbfs >= off_dbfs:
            self._last_speech_ns = t_ns
            self._quiet_frames = 0
            return None
        self._quiet_frames += 1
        if self._quiet_frames >= self._hangover_frames:
            self._state = _State.SILENT
            self._quiet.clear()
            return SpeechEnd(self._last_speech_ns)
        return None

    def _step(self, dbfs: float, t_ns: int) -> SpeechStart | SpeechEnd | None:
        state = self._state
        if state is _State.SPEAKING:
            return self._speaking(dbfs, t_ns)
        cfg = self.config
        noise = self._noise
        lookback = cfg.on_dbfs
        if noise is None:
            on_dbfs, off_dbfs = cfg.on_dbfs, cfg.off_dbfs
        else:
            noise.add(dbfs, False)
            on_dbfs, off_dbfs, lookback = noise.on_dbfs, noise.off_dbfs, noise.lookback_dbfs
            quiet = self._quiet
            over = quiet.thresholds(noise)
            if over is not None:
                on_dbfs = max(on_dbfs, over[0])
                off_dbfs = max(off_dbfs, over[1])
                lookback = min(lookback, over[2])
            if state is _State.SILENT:
                quiet.add(dbfs, noise.jitter_db)
        self._recent.append((dbfs, t_ns))

        if state is _State.PENDING:
            if dbfs >= off_dbfs:
                self._run_frames += 1
                if self._run_frames >= cfg.min_speech_frames:
                    return self._confirm(t_ns)
                return None
            self._state = _State.SILENT  # too short: a click, not speech
            # fall through: this frame is below off_dbfs, so it cannot open a run

        if dbfs >= on_dbfs:
            self._state = _State.PENDING
            self._run_start_ns = t_ns
            self._run_frames = 1
            if noise is not None and (noise.raised or self._quiet.ref is not None):
                self._look_back(lookback)
            if cfg.min_speech_frames == 1:
                return self._confirm(t_ns)
        return None

    def finish(self) -> list[VadEvent]:
        """End of stream: the events not yet returned, an open run closed without hangover.

        A stream that ends before its start-up verdict spoke if it opened a run.
        """
        self._startup = None
        events = list(self._held)
        self._held.clear()
        if self._state is _State.SPEAKING:
            events.append(SpeechEnd(self._last_speech_ns))
        self._state = _State.SILENT
        return events

    def flush(self) -> SpeechEnd | None:
        """:meth:`finish`, for a caller that has had every onset: the closing end, if any."""
        ends = [e for e in self.finish() if isinstance(e, SpeechEnd)]
        return ends[-1] if ends else None

    def _look_back(self, floor_dbfs: float) -> None:
        """Start the run at the earliest of the last few frames that stand above the noise."""
        noise = self._noise
        buried_db = min(_BURIED_DB, noise.jitter_db) if noise is not None else 0.0
        recent = self._recent
        n = len(recent)
        for i in range(n - 2, -1, -1):  # newest first, skipping this frame
            level, t_ns = recent[i]
            if level < floor_dbfs and (n - 1 - i > _BURIED_FRAMES
                                       or level < floor_dbfs - buried_db):
                break
            self._run_start_ns = t_ns

    def _confirm(self, t_ns: int) -> SpeechStart:
        self._state = _State.SPEAKING
        self._last_speech_ns = t_ns
        self._quiet_frames = 0
        return SpeechStart(self._run_start_ns)


def trim_silence(ulaw: bytes, config: VadConfig | None = None) -> bytes:
    """Cut leading and trailing non-speech from mu-law audio, in whole 20 ms frames.

    The first frame of the result is the VAD's first speech frame and the last
    frame its last speech frame, so a caller's "last frame sent" is the end of
    its speech and an agent's first frame is already speech. Pauses inside the
    utterance are kept. The input is padded with silence to whole frames;
    audio without speech gives ``b""``.
    """
    vad = StreamingVad(config)
    first: int | None = None
    last: int | None = None
    frames = split_frames(ulaw)
    events: list[VadEvent] = []
    for index, frame in enumerate(frames):
        event = vad.feed(ulaw_frame_dbfs(frame), index)
        if event is not None:
            events.append(event)
    for event in [*events, *vad.finish()]:
        if isinstance(event, SpeechStart) and first is None:
            first = event.t_ns
        elif isinstance(event, SpeechEnd):
            last = event.t_ns
    if first is None or last is None:
        return b""
    return b"".join(frames[first : last + 1])
