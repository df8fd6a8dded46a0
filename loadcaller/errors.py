"""Errors of the loadcaller package.

A load tester must say who failed, so errors split by blame::

    LoadcallerError
    ├── LocalError            we (or the user's configuration) got it wrong
    │   └── ProfileError      a profile failed validation (file, line, field)
    └── RemoteError           the agent under test did
        ├── SetupFailed       the call could not be set up (refused, 403, timeout)
        └── RemoteProtocolError  the agent broke the protocol (bad JSON, binary frame)
"""

from __future__ import annotations


class LoadcallerError(Exception):
    """Base of every error this package raises on purpose."""


class LocalError(LoadcallerError):
    """Our side is at fault: bad configuration or misuse."""


class ProfileError(LocalError):
    """A profile failed validation; the message names file, line and field."""


class RemoteError(LoadcallerError):
    """The agent under test is at fault."""


class SetupFailed(RemoteError):
    """The call could not be set up."""


class RemoteProtocolError(RemoteError):
    """The agent sent something the protocol does not allow."""
