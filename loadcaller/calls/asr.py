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
its wheel. The model is for 16 kHz audio, so replies are upsampled band-limited
(FFT; there is nothing above 4 kHz to recover) and decoded at each playback rate
in :data:`RATES` until one transcript meets the expect; the words check passes
when any rate's transcript holds every word, and the transcripts are kept side
by side in ``heard_text`` (``rate: text`` joined by `` | ``).

Measured (23 customer-service sentences, each with the content words a user
would expect, e.g. "refund five days", "new address"; flite voices through
8 kHz mu-law, as the caller hears them; words found / sentences):

    voice (flite)            1.0 only   1.0 + 0.9   1.0 + 1.1   1.0 + 0.75
    rms, US male (the agent)   22         22          23          22
    slt, US female             10         15          11          11
    awb, Scottish male         17         18          20          --
    kal16, US male             17         17          18          --
    decode CPU / audio        0.22-0.37  0.58-0.83   0.44-0.79   0.85-0.96

The reference agent's voice (flite rms) is heard almost verbatim at its own
rate ("sure what is your order number"). A second decode slowed to 0.9 lowers a
female voice's pitch and formants towards what the model knows and lifts slt
from 10 to 15 of 23, the most of any rate. Decoding every rate doubled the CPU
and one worker fell behind 4 concurrent calls of five checked replies each on
this shared 2-core machine (3 of 20 checks unfinished when the calls ended, in
2 runs of 2; at 6 calls, in 3 of 3), so the worker stops at the first transcript that meets the
expect: a reply heard right at 1.0 costs one decode, a miss (a wrong reply, or a
voice the model hears badly) two; 20 of 20 checks then finished, 30 of 30 at 6
calls. The agent's former espeak-ng voice ``en-us+f3`` passed 0 of 5 of its
replies at 1.0 (3 at 0.75): espeak's formant voices are far from the natural
voices the model was trained on; flite's diphone voices are close.
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
# Playback rates a reply is decoded at, in order, until a transcript meets the expect
# (1.0: as heard; the module docstring has the figures): 0.9 helps a female voice most.
RATES: Final = (1.0, 0.9)


def available() -> bool:
    """Whether the ``asr`` extra (pocketsphinx) is installed."""
    return importlib.util.find_spec("pocketsphinx") is not None


class Recognizer(Protocol):
    """Turns heard audio into text, off the caller's thread."""

    def submit(self, ulaw: bytes, expect: Expect | None = None) -> Future[str]:
        """Start recognising 8 kHz mu-law; return at once. With ``expect``, the
        recognizer may stop at the first transcript that meets it."""
        ...


def verdict(text: str, expect: Expect) -> tuple[bool, str]:
    """Whether ``text`` meets ``expect``: (ok, reason).

    ``text`` may hold several transcripts of the same audio (``rate: text | ...``,
    see :data:`RATES`): the words must all be in one of them, the regex must match
    one of them. Regexes are only as good as the open transcript; prefer words.
    """
    versions = [v.split(":", 1)[-1] for v in text.split(" | ")] or [""]
    return min((_verdict_one(v, expect) for v in versions), key=lambda r: not r[0])


def _verdict_one(text: str, expect: Expect) -> tuple[bool, str]:
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
        # the checks in flight, (turn position, recognition, expect): a plain list, as
        # every call's script asks whether any is pending on every frame
        self.pending: list[tuple[int, Future[str], Expect]] = []

    def submit(self, pos: int, ulaw: bytes, expect: Expect) -> None:
        if self.recognizer is None:
            self.recognizer = shared_recognizer()
        self.pending.append((pos, self.recognizer.submit(ulaw, expect), expect))

    def poll(self, *, final: bool = False) -> list[tuple[int, str | None, bool | None, str]]:
        """The checks decided now: (turn position, transcript, verdict, reason).

        ``final``: the call is over; checks still running are given up.
        """
        out: list[tuple[int, str | None, bool | None, str]] = []
        keep = []
        for pos, future, expect in self.pending:
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
        self.pending = keep
        return out


# ---- pocketsphinx in a worker process -------------------------------------------

_decoder: Any = None


def _init_worker() -> None:
    global _decoder
    from pocketsphinx import Decoder

    _decoder = Decoder(loglevel="FATAL")


def _resample(pcm: Any, rate: float) -> Any:
    """8 kHz samples -> 16 kHz, played at ``rate`` (band-limited, by FFT zero-padding)."""
    import numpy as np

    n = max(2, round(len(pcm) * 2 / rate))
    spectrum = np.fft.rfft(pcm)
    padded = np.zeros(n // 2 + 1, dtype=complex)
    m = min(len(spectrum), len(padded))
    padded[:m] = spectrum[:m]
    return np.clip(np.fft.irfft(padded, n) * (n / len(pcm)), -32768, 32767).astype(np.int16)


def _recognise(ulaw: bytes, expect: Expect | None = None) -> str:
    """Runs in the worker: mu-law 8 kHz -> 16 kHz PCM at each rate -> pocketsphinx.

    With ``expect``, the rates after the first transcript that meets it are skipped:
    a reply heard right at its own rate costs one decode.
    """
    import numpy as np

    from loadcaller.audio.g711 import ulaw_decode

    if not ulaw:
        return ""
    pcm = ulaw_decode(ulaw[:MAX_AUDIO_BYTES]).astype(np.float64)
    texts = []
    for rate in RATES:
        _decoder.start_utt()
        _decoder.process_raw(_resample(pcm, rate).tobytes(), full_utt=True)
        _decoder.end_utt()
        hyp = _decoder.hyp()
        texts.append((rate, str(hyp.hypstr) if hyp is not None else ""))
        if expect is not None and _verdict_one(texts[-1][1], expect)[0]:
            break
    if not any(text for _, text in texts):
        return ""  # heard no words at any rate
    return " | ".join(f"{rate:g}: {text}" for rate, text in texts)


class PocketSphinx:
    """A :class:`Recognizer`: one pocketsphinx worker process, started on first use."""

    def __init__(self, workers: int = 1) -> None:
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def submit(self, ulaw: bytes, expect: Expect | None = None) -> Future[str]:
        with self._lock:
            if self._pool is None:
                # spawn: the caller's process has an event loop and threads that a fork
                # would copy mid-flight
                self._pool = ProcessPoolExecutor(self.workers,
                                                 mp_context=multiprocessing.get_context("spawn"),
                                                 initializer=_init_worker)
            return self._pool.submit(_recognise, ulaw, expect)

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
