"""The VAD against real speech: espeak-ng utterances after known silence and noise.

The true onset and offset are found on the linear signal (resampled by sox,
not by our code) as the first and last sample whose magnitude exceeds 1 % of
full scale (-40 dBFS, the VAD's default on-level as an amplitude), independently
of the VAD. A lower sample threshold would count a leading fricative that is
too weak to be told from a noise bed (the /θ/ of "Thanks" is near -50 dBFS).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pytest

from loadcaller.audio.frames import FRAME_MS, split_frames
from loadcaller.audio.g711 import ulaw_encode
from loadcaller.audio.vad import SpeechEnd, SpeechStart, StreamingVad, ulaw_frame_dbfs

ONSET_THRESHOLD = 0.01
NOISE_DBFS = -60.0
TOLERANCE_NS = 40_000_000
T0_NS = 1_700_000_000_000_000_000  # an arbitrary perf_counter-like origin

CASES = [
    ("Hi, I'm calling about my order.", "en-us", 165, 50, 500),
    ("Yes.", "en-gb", 160, 45, 1230),
    ("Sure. What is your order number?", "en-us+f3", 170, 70, 777),
    ("The order number is four five seven two.", "en-gb-scotland", 155, 40, 1000),
    ("Can I change the delivery address?", "en-029", 170, 55, 310),
    ("Thanks for calling.", "en-us-nyc", 178, 47, 645),
    ("Hello.", "en-gb-x-rp", 150, 58, 1999),
]


def detect(signal: npt.NDArray[np.float64]) -> tuple[list[SpeechStart], list[SpeechEnd]]:
    pcm = np.clip(np.rint(signal * 32768), -32768, 32767).astype(np.int16)
    vad = StreamingVad()
    starts, ends = [], []
    for i, frame in enumerate(split_frames(ulaw_encode(pcm))):
        event = vad.feed(ulaw_frame_dbfs(frame), T0_NS + i * FRAME_MS * 1_000_000)
        if isinstance(event, SpeechStart):
            starts.append(event)
        elif isinstance(event, SpeechEnd):
            ends.append(event)
    return starts, ends


@pytest.mark.parametrize("noise", [False, True], ids=["clean", "noise-bed"])
@pytest.mark.parametrize(("text", "voice", "rate", "pitch", "lead_ms"), CASES)
def test_vad_finds_espeak_onset_within_40ms(
    espeak_8k: Callable[..., npt.NDArray[np.float64]],
    text: str,
    voice: str,
    rate: int,
    pitch: int,
    lead_ms: int,
    noise: bool,
) -> None:
    speech = espeak_8k(text, voice, rate, pitch)
    lead = lead_ms * 8
    signal = np.concatenate([np.zeros(lead), speech, np.zeros(8000)])
    if noise:
        rng = np.random.default_rng(lead_ms)
        signal = signal + rng.standard_normal(signal.size) * 10 ** (NOISE_DBFS / 20)
    loud = np.flatnonzero(np.abs(speech) > ONSET_THRESHOLD)
    true_onset_ns = T0_NS + (lead + int(loud[0])) * 125_000  # 125 us per sample
    true_offset_ns = T0_NS + (lead + int(loud[-1])) * 125_000

    starts, ends = detect(signal)

    assert starts, "no speech detected"
    assert abs(starts[0].t_ns - true_onset_ns) <= TOLERANCE_NS
    # The last speech frame holds the last loud sample, give or take a frame.
    assert ends, "speech never ended"
    assert abs(ends[-1].t_ns - true_offset_ns) <= TOLERANCE_NS


def test_noise_bed_alone_is_not_speech() -> None:
    rng = np.random.default_rng(7)
    starts, _ = detect(rng.standard_normal(8000 * 5) * 10 ** (NOISE_DBFS / 20))
    assert starts == []
