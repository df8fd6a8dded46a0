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
noise it hears (``_NoiseFloor``): over the last second of levels, when that
second looks like stationary noise (its 10th and 90th percentiles within
``noise_spread_db``), the noise's ceiling is its 90th percentile, and the
thresholds become ``max(on_dbfs, ceiling + on_margin_db)`` and
``max(off_dbfs, ceiling + off_margin_db)``. A second that holds speech is not
stationary, so speech never raises the floor; it falls again as soon as the
window's 90th percentile does. In noise the onset of a run is also looked back
over at most ``onset_lookback_frames`` frames that stand above the noise's
median and that, the noise's power taken off, would have been speech to the
fixed VAD (speech rising out of noise is under it for its first frame or two).
The thresholds move only for a stationary second whose 90th percentile is
above -53 dBFS (off) or -44 dBFS (on; only then is anything looked back).
Clean speech has no such second, so on clean audio the VAD is the fixed one,
event for event (tests/audio/test_vad_noise.py). docs/personas.md has the
figures.
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
_LOOKBACK_MARGIN_DB: Final = 0.5
"""How far over the noise's median a frame before an onset must be to join the run."""


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
    out = [SILENCE_DBFS] * len(frames)
    full = [i for i, f in enumerate(frames) if len(f) == FRAME_BYTES]
    if full:
        data = b"".join([frames[i] for i in full]) if len(full) < len(frames) else b"".join(frames)
        power = ULAW_POWER.take(np.frombuffer(data, dtype=np.uint8)).reshape(len(full), FRAME_BYTES)
        mean = power.sum(axis=1) / FRAME_BYTES
        with np.errstate(divide="ignore"):
            dbfs = np.maximum(SILENCE_DBFS, 10.0 * np.log10(mean / _FULL_SCALE_POWER))
        for i, level in zip(full, dbfs.tolist(), strict=True):
            out[i] = level
    if len(full) < len(frames):
        for i, f in enumerate(frames):
            if f and len(f) != FRAME_BYTES:
                out[i] = ulaw_frame_dbfs(f)
    return out


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


_ESTIMATE_EVERY: Final = 5
"""Frames between noise estimates: a sort of 50 levels every 100 ms, not every frame."""


class _NoiseFloor:
    """The thresholds a stationary noise bed calls for; the absolute ones otherwise.

    Keeps the last window of frame levels; every :data:`_ESTIMATE_EVERY` frames
    it sorts them (50 floats: cheaper than keeping a sorted list per frame) and,
    if the 10th-90th percentile spread is that of noise rather than speech,
    takes the 90th percentile as the noise's ceiling. The ceiling only falls
    while the window holds speech: speech must not teach the VAD that it is noise.
    """

    def __init__(self, config: VadConfig) -> None:
        self._cfg = config
        self._levels: deque[float] = deque(maxlen=max(1, config.noise_window_ms // FRAME_MS))
        self._count = 0
        self._ceiling = SILENCE_DBFS
        self.on_dbfs = config.on_dbfs
        self.off_dbfs = config.off_dbfs
        self.median_dbfs = SILENCE_DBFS
        self.lookback_dbfs = config.on_dbfs
        self.raised = False

    def add(self, dbfs: float) -> None:
        """Record one frame's level; re-estimate every few frames once the window is full."""
        levels = self._levels
        levels.append(dbfs)
        self._count += 1
        if self._count < _ESTIMATE_EVERY or len(levels) < (levels.maxlen or 0):
            return
        self._count = 0
        ranked = sorted(levels)
        n = len(ranked) - 1
        low, high = ranked[n // 10], ranked[n * 9 // 10]
        if high - low <= self._cfg.noise_spread_db:
            self._ceiling, self.median_dbfs = high, ranked[n // 2]
        elif high < self._ceiling:
            self._ceiling, self.median_dbfs = high, min(self.median_dbfs, ranked[n // 2])
        else:
            return
        cfg = self._cfg
        self.on_dbfs = max(cfg.on_dbfs, self._ceiling + cfg.on_margin_db)
        self.off_dbfs = max(cfg.off_dbfs, self._ceiling + cfg.off_margin_db)
        self.raised = self.on_dbfs > cfg.on_dbfs
        # a frame before an onset joins the run if it stands out of the noise and, the
        # noise's power taken off, would have been speech (>= on_dbfs) to the fixed VAD
        noise_and_on = 10.0 * math.log10(10.0 ** (cfg.on_dbfs / 10.0)
                                         + 10.0 ** (self.median_dbfs / 10.0))
        self.lookback_dbfs = max(self.median_dbfs + _LOOKBACK_MARGIN_DB, noise_and_on)


class StreamingVad:
    """Frame-by-frame speech detector; feed one level per 20 ms frame, in order."""

    def __init__(self, config: VadConfig | None = None) -> None:
        self.config = config if config is not None else VadConfig()
        self._hangover_frames = self.config.hangover_frames
        self.reset()

    def reset(self) -> None:
        """Forget all state, as if no frame had been fed."""
        cfg = self.config
        self._noise = _NoiseFloor(cfg) if cfg.noise_window_ms else None
        self._recent: deque[tuple[float, int]] = deque(maxlen=cfg.onset_lookback_frames + 1)
        self._state = _State.SILENT
        self._run_start_ns = 0
        self._run_frames = 0
        self._last_speech_ns = 0
        self._quiet_frames = 0

    @property
    def speaking(self) -> bool:
        """True between a SpeechStart and the matching SpeechEnd."""
        return self._state is _State.SPEAKING

    @property
    def thresholds(self) -> tuple[float, float]:
        """The (on, off) levels in force: the configured ones, or raised over noise."""
        noise = self._noise
        if noise is None:
            return self.config.on_dbfs, self.config.off_dbfs
        return noise.on_dbfs, noise.off_dbfs

    def feed(self, dbfs: float, t_ns: int) -> SpeechStart | SpeechEnd | None:
        """Advance by one frame of level ``dbfs`` stamped ``t_ns``; return an event if any."""
        cfg = self.config
        noise = self._noise
        if noise is None:
            on_dbfs, off_dbfs = cfg.on_dbfs, cfg.off_dbfs
        else:
            noise.add(dbfs)
            on_dbfs, off_dbfs = noise.on_dbfs, noise.off_dbfs
        self._recent.append((dbfs, t_ns))
        if self._state is _State.SPEAKING:
            if dbfs >= off_dbfs:
                self._last_speech_ns = t_ns
                self._quiet_frames = 0
                return None
            self._quiet_frames += 1
            if self._quiet_frames >= self._hangover_frames:
                self._state = _State.SILENT
                return SpeechEnd(self._last_speech_ns)
            return None

        if self._state is _State.PENDING:
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
            if noise is not None and noise.raised:
                self._look_back(noise.lookback_dbfs)
            if cfg.min_speech_frames == 1:
                return self._confirm(t_ns)
        return None

    def flush(self) -> SpeechEnd | None:
        """End of stream: close an open speech run now, without waiting for the hangover."""
        if self._state is _State.SPEAKING:
            self._state = _State.SILENT
            return SpeechEnd(self._last_speech_ns)
        self._state = _State.SILENT
        return None

    def _look_back(self, floor_dbfs: float) -> None:
        """Start the run at the earliest of the last few frames that stand above the noise."""
        recent = self._recent
        for i in range(len(recent) - 2, -1, -1):  # newest first, skipping this frame
            level, t_ns = recent[i]
            if level < floor_dbfs:
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
    for index, frame in enumerate(frames):
        event = vad.feed(ulaw_frame_dbfs(frame), index)
        if isinstance(event, SpeechStart) and first is None:
            first = event.t_ns
        elif isinstance(event, SpeechEnd):
            last = event.t_ns
    end = vad.flush()
    if end is not None:
        last = end.t_ns
    if first is None or last is None:
        return b""
    return b"".join(frames[first : last + 1])
