"""Offline speech recognition of what the caller heard, for ``expect:`` (optional).

How this works: once a reply with an ``expect:`` has been heard out, the call
script hands its audio (8 kHz mu-law, as heard: after the playout and any
impairment) to :meth:`Recognizer.submit`, which returns a future at once. The
recognition runs in one worker process (pocketsphinx decodes for about as long
as the audio lasts on a busy machine and would hold the GIL of the media
clock's process if it ran in a thread), fed one reply at a time; the script polls
the future on its ticks and writes the transcript and the verdict
(:func:`verdict`) on the turn. Nothing here blocks the tick.

pocketsphinx (``pip install 'loadcaller[asr]'``) ships its US English model in
its wheel. The model is for 16 kHz audio, so replies are upsampled (linear
interpolation; there is nothing above 4 kHz to recover).
"""

from __future__ import annotations

import importlib.util
import multiprocessing
import re
import threading
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, Final, Protocol

from loadcaller.calls.scenario import Expect

MISSING: Final = ("expect: checks replies with offline speech recognition, which is not "
                  "installed: pip install 'loadcaller[asr]' (pocketsphinx)")
MAX_AUDIO_BYTES: Final = 60 * 8000  # a minute of reply; longer replies are cut


def available() -> bool:
    """Whether the ``asr`` extra (pocketsphinx) is installed."""
    return importlib.util.find_spec("pocketsphinx") is not None


class Recognizer(Protocol):
    """Turns heard audio into text, off the caller's thread."""

    def submit(self, ulaw: bytes) -> Future[str]:
        """Start recognising 8 kHz mu-law; return at once."""
        ...


def verdict(text: str, expect: Expect) -> tuple[bool, str]:
    """Whether ``text`` meets ``expect``: (ok, reason)."""
    heard = set(re.findall(r"[a-z0-9']+", text.lower()))
    missing = [w for w in expect.words if w.lower() not in heard]
    problems = []
    if missing:
        problems.append("missing " + ", ".join(repr(w) for w in missing))
    if expect.regex is not None and re.search(expect.regex, text, re.IGNORECASE) is None:
        problems.append(f"no match for /{expect.regex}/")
    if problems:
        return False, "; ".join(problems)
    return True, "ok"


class Checks:
    """A call's expect: checks in flight: submitted with the turn they judge, polled."""

    def __init__(self, recognizer: Recognizer | None = None) -> None:
        self.recognizer = recognizer
        self._pending: list[tuple[int, Future[str], Expect]] = []

    @property
    def pending(self) -> int:
        return len(self._pending)

    def submit(self, pos: int, ulaw: bytes, expect: Expect) -> None:
        if self.recognizer is None:
            self.recognizer = shared_recognizer()
        self._pending.append((pos, self.recognizer.submit(ulaw), expect))

    def poll(self, *, final: bool = False) -> list[tuple[int, str | None, bool | None, str]]:
        """The checks decided now: (turn position, transcript, verdict, reason).

        ``final``: the call is over; checks still running are given up.
        """
        out: list[tuple[int, str | None, bool | None, str]] = []
        keep = []
        for pos, future, expect in self._pending:
            if future.done() and not future.cancelled():
                try:
                    text: str | None = future.result()
                    ok: bool | None
                    ok, reason = verdict(text or "", expect)
                except Exception as exc:  # the recognizer's failure is the turn's, not a crash
                    text, ok, reason = None, None, f"recognition failed: {exc}"
            elif final or future.cancelled():
                future.cancel()
                text, ok, reason = None, None, "the call ended before recognition finished"
            else:
                keep.append((pos, future, expect))
                continue
            out.append((pos, text, ok, reason))
        self._pending = keep
        return out


# ---- pocketsphinx in a worker process -------------------------------------------

_decoder: Any = None


def _init_worker() -> None:
    global _decoder
    from pocketsphinx import Decoder

    _decoder = Decoder(loglevel="FATAL")


def _recognise(ulaw: bytes) -> str:
    """Runs in the worker: mu-law 8 kHz -> 16 kHz PCM -> pocketsphinx -> text."""
    import numpy as np

    from loadcaller.audio.g711 import ulaw_decode

    if not ulaw:
        return ""
    pcm = ulaw_decode(ulaw[:MAX_AUDIO_BYTES]).astype(np.float32)
    up = np.interp(np.arange(2 * len(pcm)) / 2.0, np.arange(len(pcm)), pcm)
    _decoder.start_utt()
    _decoder.process_raw(up.astype(np.int16).tobytes(), full_utt=True)
    _decoder.end_utt()
    hyp = _decoder.hyp()
    return str(hyp.hypstr) if hyp is not None else ""


class PocketSphinx:
    """A :class:`Recognizer`: one pocketsphinx worker process, started on first use."""

    def __init__(self, workers: int = 1) -> None:
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def submit(self, ulaw: bytes) -> Future[str]:
        with self._lock:
            if self._pool is None:
                # spawn: the caller's process has an event loop and threads that a fork
                # would copy mid-flight
                self._pool = ProcessPoolExecutor(self.workers,
                                                 mp_context=multiprocessing.get_context("spawn"),
                                                 initializer=_init_worker)
            return self._pool.submit(_recognise, ulaw)

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = None


_shared: PocketSphinx | None = None


def shared_recognizer() -> PocketSphinx:
    """The process's recognizer (one worker process for every call)."""
    global _shared
    if _shared is None:
        if not available():
            raise RuntimeError(MISSING)
        _shared = PocketSphinx()
    return _shared
