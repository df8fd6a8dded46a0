"""The root of every error chaos and loadcaller raise on purpose, split by blame.

A load tester must say who failed. Both packages' errors derive from one of the
two branches below, so a command line catches them with one ``except`` and still
knows the blame (``loadcaller`` exits 2 on a :class:`LocalError`)::

    Error
    ├── LocalError     our side: bad configuration or input, misuse
    └── RemoteError    the peer: the agent under test, an upstream

This module lives in chaos because chaos stands alone (it imports nothing from
loadcaller) while loadcaller builds on chaos. Each package keeps its own base
(``chaos.errors.ChaosError``, ``loadcaller.errors.LoadcallerError``) and its own
``LocalError``/``RemoteError``, which also derive from the classes here; the
trees are drawn in ``chaos/errors.py`` and ``loadcaller/errors.py``.
"""

from __future__ import annotations

__all__ = ["Error", "LocalError", "RemoteError"]


class Error(Exception):
    """Root of every error chaos or loadcaller raises on purpose."""


class LocalError(Error):
    """Our side is at fault: bad configuration, bad input files, misuse."""


class RemoteError(Error):
    """The peer is at fault: the agent under test, an upstream, a malformed message."""
