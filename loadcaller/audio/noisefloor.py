"""The noise the VAD hears: a one-second floor, a 200 ms floor, and a start-up verdict.

``audio/vad.py`` raises its thresholds over a noise bed; this module says how
far. Three estimates, each for a case the others get wrong:

- ``NoiseFloor``: the last second of levels, sorted every 100 ms. When the
  second is stationary (10th-90th percentile within ``noise_spread_db``), its
  90th percentile is the noise's ceiling. A second that holds speech is not
  stationary, so speech does not raise it; it falls as soon as the window's
  90th percentile does. One exception was found by measurement: a TTS voice
  (flite's "rms") stays within 6 dB for 0.9 s at about -17 dBFS, and its own
  level became the noise, cutting its sentence in two. While the VAD hears
  speech, a level second louder than ``_LOUD_DBFS`` (-22 dBFS: a bed under
  normal speech at 10 dB SNR sits near -31) raises the floor only once it has
  gone on for ``_LOUD_STREAK`` more estimates (0.6 s; -26 cost street noise 4
  of its 48 utterance ends).
- ``QuietFloor``: the median of the last 200 ms of levels heard while silent.
  Street noise swells by up to 20 dB in a few seconds, faster than the
  second's percentile follows: over a known bed the thresholds also stand
  ``on_margin_db`` over this floor plus the bed's frame-to-frame jitter,
  whenever that is higher than the second's (it is, 2 dB or more, while a
  swell rises). Frames more than ``_GATE_DB`` over the floor do not enter it,
  so an onset that the VAD has not confirmed yet does not drag it up.
- ``startup_verdict``: a stream whose first frames are already loud is either
  speech or a noise bed, and nothing heard before tells which. Its first
  ``STARTUP_FRAMES`` frames decide: a spread over ``noise_spread_db`` is speech
  (every bundled phrase spreads more than 14 dB over 0.5 s), and so is a sound
  that stops within them (a short word); a stationary second is the bed, and the
  floor is learned from it at once. Only a start
  between ``on_dbfs`` and ``STARTUP_MAX_DBFS`` waits for it; louder is speech.
"""

from __future__ import annotations

import math
from collections import deque
from itertools import islice, pairwise
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from loadcaller.audio.vad import VadConfig

__all__ = ["STARTUP_FRAMES", "STARTUP_MAX_DBFS", "NoiseFloor", "QuietFloor", "startup_verdict"]

ESTIMATE_EVERY: Final = 5
"""Frames between noise estimates: a sort of 50 levels every 100 ms, not every frame."""
LOOKBACK_MARGIN_DB: Final = 0.5
"""How far over the noise's median a frame before an onset must be to join the run."""
_LOUD_DBFS: Final = -22.0
_LOUD_STREAK: Final = 6
_JITTER_SCALE: Final = 1.34
"""90th minus 50th percentile per median frame-to-frame step (measured: 0.8-1.1 on beds)."""
_JITTER_EVERY: Final = 10
_QUIET_FRAMES: Final = 10
_QUIET_GAP: Final = 1
_GATE_DB: Final = 4.0
_QUIET_MIN_DBFS: Final = -60.0
_QUIET_SPREAD_DB: Final = 6.0
_QUIET_OVER_DB: Final = 2.0
STARTUP_FRAMES: Final = 50
STARTUP_MAX_DBFS: Final = -26.0
"""A stream that starts louder is speech at once: no bed under normal speech is that loud."""


def _noise_and(level_dbfs: float, median_dbfs: float) -> float:
    """The level of ``level_dbfs`` of speech power added to noise at ``median_dbfs``."""
    return 10.0 * math.log10(10.0 ** (level_dbfs / 10.0) + 10.0 ** (median_dbfs / 10.0))


class NoiseFloor:
    """The thresholds a stationary second calls for; the absolute ones otherwise."""

    def __init__(self, config: VadConfig) -> None:
        self._cfg = config
        self._levels: deque[float] = deque(maxlen=max(1, config.noise_window_ms // 20))
        self._count = 0
        self._streak = 0
        self._ceiling = -120.0
        self.on_dbfs = config.on_dbfs
        self.off_dbfs = config.off_dbfs
        self.median_dbfs = -120.0
        self.lookback_dbfs = config.on_dbfs
        self.jitter_db = 1.0
        self._jitter_due = 0
        self.raised = False
        self.version = 0

    def add(self, dbfs: float, speaking: bool) -> None:
        """Record one frame's level; re-estimate every few frames once the window is full."""
        levels = self._levels
        levels.append(dbfs)
        self._count += 1
        if self._count < ESTIMATE_EVERY or len(levels) < (levels.maxlen or 0):
            return
        self._count = 0
        self._estimate(speaking)

    def add_silent(self) -> None:
        """:meth:`add` of one more frame of digital silence over a window of it.

        Only for a window holding nothing but digital silence (``silent_steady``
        frames of it in a row, not speaking): the window's content cannot change,
        so an estimate reaches what it reached the last time (ceiling and median at
        the silence level, thresholds the configured ones) and only the counters
        move, exactly as :meth:`_estimate` moves them.
        """
        self._count += 1
        if self._count < ESTIMATE_EVERY:
            return
        self._count = 0
        self._streak += 1
        self._jitter_due -= 1
        if self._jitter_due <= 0:
            self._jitter_due = _JITTER_EVERY
            self.jitter_db = 0.0  # _JITTER_SCALE x the median step between equal levels
        self.version += 1

    @property
    def silent_steady(self) -> int:
        """Frames of digital silence in a row after which :meth:`add_silent` may stand in
        for :meth:`add`: the window full of them, and one estimate made over it."""
        return (self._levels.maxlen or 0) + ESTIMATE_EVERY

    def seed(self, levels: list[float]) -> None:
        """Learn the floor from ``levels`` now (the start-up verdict said: a noise bed)."""
        self._levels.extend(levels)
        self._count = 0
        self._estimate(False)

    def _estimate(self, speaking: bool) -> None:
        ranked = sorted(self._levels)
        n = len(ranked) - 1
        low, high, median = ranked[n // 10], ranked[n * 9 // 10], ranked[n // 2]
        if high - low <= self._cfg.noise_spread_db:
            self._streak += 1
            if (speaking and high > self._ceiling and median > _LOUD_DBFS
                    and self._streak < _LOUD_STREAK):
                return  # level audio inside a run: speech, until it lasts longer than speech
            self._ceiling, self.median_dbfs = high, median
            self._jitter_due -= 1
            if self._jitter_due <= 0:  # a bed's jitter changes slowly: once a second
                self._jitter_due = _JITTER_EVERY
                steps = sorted([abs(a - b) for a, b in pairwise(self._levels)])
                self.jitter_db = _JITTER_SCALE * steps[len(steps) // 2]
        elif high < self._ceiling:
            self._streak = 0
            self._ceiling, self.median_dbfs = high, min(self.median_dbfs, median)
        else:
            self._streak = 0
            return
        cfg = self._cfg
        self.version += 1
        self.on_dbfs = max(cfg.on_dbfs, self._ceiling + cfg.on_margin_db)
        self.off_dbfs = max(cfg.off_dbfs, self._ceiling + cfg.off_margin_db)
        self.raised = self.on_dbfs > cfg.on_dbfs
        # a frame before an onset joins the run if it stands out of the noise and, the
        # noise's power taken off, would have been speech (>= on_dbfs) to the fixed VAD
        self.lookback_dbfs = max(self.median_dbfs + LOOKBACK_MARGIN_DB,
                                 _noise_and(cfg.on_dbfs, self.median_dbfs))


class QuietFloor:
    """The median of the last 200 ms heard while silent, and the thresholds it calls for."""

    __slots__ = ("_cfg", "_levels", "_said", "_seen", "ref")

    def __init__(self, config: VadConfig) -> None:
        self._cfg = config
        self._levels: deque[float] = deque(maxlen=_QUIET_FRAMES + _QUIET_GAP)
        self._seen = -1  # the NoiseFloor version the cached answer is for; -1: recompute
        self._said: tuple[float, float, float] | None = None
        self.ref: float | None = None

    def clear(self) -> None:
        """Forget the floor (speech just ended: the frames before it are stale)."""
        self._levels.clear()
        self.ref, self._seen = None, -1

    def add(self, dbfs: float, jitter_db: float) -> None:
        """Record a frame heard while silent, unless it stands well over the floor.

        A frame under -60 dBFS is no bed (clean audio's pauses): it empties the floor.
        """
        if dbfs < _QUIET_MIN_DBFS:
            if self._levels:
                self.clear()
            return
        ref = self.ref
        if ref is None or dbfs < ref + jitter_db + _GATE_DB:
            self._levels.append(dbfs)
            self._seen = -1

    def extend(self, levels: list[float]) -> None:
        """Record frames that turned out to be noise."""
        self._levels.extend(levels)
        self._seen = -1

    def thresholds(self, noise: NoiseFloor) -> tuple[float, float, float] | None:
        """:meth:`_thresholds`, recomputed only when a frame came in or the long floor moved."""
        if self._seen != noise.version:
            self._said = self._thresholds(noise)
            self._seen = noise.version
        return self._said

    def _thresholds(self, noise: NoiseFloor) -> tuple[float, float, float] | None:
        """(on, off, lookback) over this floor, or None when the long floor holds.

        They apply over a known bed: the long floor raised, or 200 ms heard while
        silent that sit within 6 dB of each other above -60 dBFS (a bed too low
        to raise the long floor, about to swell over the fixed -40 dBFS).
        """
        levels = self._levels
        if len(levels) < (levels.maxlen or 0):
            self.ref = None
            return None
        ranked = sorted(islice(levels, _QUIET_FRAMES))  # the newest (gap) frame left out
        ref = ranked[_QUIET_FRAMES // 2]
        known = noise.raised or (ref >= _QUIET_MIN_DBFS
                                 and ranked[-2] - ranked[1] <= _QUIET_SPREAD_DB)
        self.ref = ref if known else None
        if not known or (noise.raised and ref - noise.median_dbfs < _QUIET_OVER_DB):
            return None
        cfg, base = self._cfg, ref + noise.jitter_db
        lookback = max(ref + LOOKBACK_MARGIN_DB, _noise_and(cfg.on_dbfs, ref))
        return base + cfg.on_margin_db, base + cfg.off_margin_db, lookback


def startup_verdict(levels: list[float], spread_db: float, stop_dbfs: float) -> bool | None:
    """Speech (True), a noise bed (False) or not yet known, from a stream's first levels.

    A sound that stops (a level under ``stop_dbfs``) before the verdict was speech:
    a bed goes on. A short word said slowly ("no." at 130 words a minute: 0.5 s
    spreading 10 dB, then silence) was otherwise taken for a bed and trimmed away.
    """
    if levels and levels[-1] < stop_dbfs:
        return True
    if len(levels) < 5:
        return None
    ranked = sorted(levels)
    n = len(ranked) - 1
    if ranked[n * 9 // 10] - ranked[n // 10] > spread_db:
        return True
    return False if len(levels) >= STARTUP_FRAMES else None
