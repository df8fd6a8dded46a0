"""Audio for the synthetic callers and the reference agent.

Modules, from the wire up:

- ``g711``   mu-law / A-law by lookup table, ``ULAW_POWER`` for cheap frame energy
- ``frames`` 8 kHz, 20 ms, 160-byte framing
- ``vad``    streaming energy VAD (the turn-latency reference) and ``trim_silence``
- ``wav``    WAV reading, windowed-sinc resampling, conversion to 8 kHz mu-law
- ``synth``  espeak-ng synthesis with a disk cache; ``resolve_utterance``
- ``pack``   pre-rendered phrases bundled for machines without espeak-ng
- ``errors`` the exception tree

Submodules are not imported here, so ``import loadcaller.audio.vad`` stays cheap.
"""
