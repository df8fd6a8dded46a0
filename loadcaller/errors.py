"""Errors of the loadcaller package.

A load tester must say who failed, so errors split by blame. The root and the
split are shared with chaos (:mod:`chaos.blame`, since chaos stands alone and
loadcaller builds on it): ``loadcaller``'s command line catches
``chaos.blame.LocalError`` and exits 2, whichever package raised it::

    chaos.blame.Error                 the root shared with chaos
    ├── chaos.errors.ChaosError       chaos's own tree (chaos/errors.py)
    └── LoadcallerError               every error this package raises on purpose
        ├── LocalError                we (or the user's input) got it wrong
        │   │                         (also a chaos.blame.LocalError)
        │   ├── ProfileError          a profile failed validation (file, line, field)
        │   ├── LocalSetupError       this machine could not place a call (out of file
        │   │                         descriptors or ephemeral ports): not the agent's fault
        │   └── AudioError            loadcaller/audio/errors.py: WAV, synthesis, pack
        │       ├── WavFormatError
        │       ├── SynthesisUnavailable
        │       └── UnknownPhrase     (also a KeyError)
        └── RemoteError               the agent under test did
            │                         (also a chaos.blame.RemoteError)
            ├── SetupFailed           the call could not be set up (refused, 403, timeout)
            └── RemoteProtocolError   the agent broke the protocol (bad JSON, binary frame)
"""

from __future__ import annotations

from chaos import blame


class LoadcallerError(blame.Error):
    """Base of every error this package raises on purpose."""


class LocalError(LoadcallerError, blame.LocalError):
    """Our side is at fault: bad configuration, bad input files, misuse."""


class ProfileError(LocalError):
    """A profile failed validation; the message names file, line and field."""


class LocalSetupError(LocalError):
    """A call could not be placed for a reason on our side; the message says what to change."""


class RemoteError(LoadcallerError, blame.RemoteError):
    """The agent under test is at fault."""


class SetupFailed(RemoteError):
    """The call could not be set up."""


class RemoteProtocolError(RemoteError):
    """The agent sent something the protocol does not allow."""
