"""Errors raised by the audio package.

All of them are local errors: the input we were given (a WAV file, a phrase
id, the machine's missing espeak-ng) is at fault, never the agent under test.
So they sit under loadcaller's LocalError, and the command line reports them
as bad input (exit 2) like a bad profile (the whole tree: loadcaller/errors.py)::

    chaos.blame.Error
    └── LoadcallerError
        └── LocalError
            └── AudioError
                ├── WavFormatError        a WAV file we cannot read (or refuse to)
                ├── SynthesisUnavailable  no espeak-ng and the text is not in the pack
                └── UnknownPhrase         (also a KeyError) no such phrase/accent in the pack
"""

from __future__ import annotations

from loadcaller.errors import LocalError


class AudioError(LocalError):
    """Base class of every error raised by loadcaller.audio."""


class WavFormatError(AudioError):
    """A WAV file is malformed or uses an encoding we do not decode."""


class SynthesisUnavailable(AudioError):
    """Speech cannot be produced: espeak-ng is missing and no pre-rendered audio fits."""


class UnknownPhrase(AudioError, KeyError):
    """A phrase id (or accent) that is not in the bundled pack."""

    def __str__(self) -> str:
        # KeyError.__str__ repr()s its argument, which quotes a whole sentence.
        return str(self.args[0]) if self.args else ""
