"""Errors raised by the chaos proxy.

Two kinds, so that a run can say who failed. The root and the blame split are
shared with loadcaller (:mod:`chaos.blame`), so its command line catches a chaos
error in a profile's ``chaos:`` section like its own::

    chaos.blame.Error                 the root shared with loadcaller
    └── ChaosError                    every error chaos raises on purpose
        ├── LocalError                we were misconfigured or misused
        │   │                         (also a chaos.blame.LocalError)
        │   └── ConfigError           a bad chaos config (file, line, field)
        │       └── UnknownFaultType
        └── RemoteError               a peer misbehaved (also a chaos.blame.RemoteError)
            └── UpstreamError         a route's upstream cannot be resolved or reached

Inside a run, remote failures are not raised: the proxy answers the client as
a gateway would (502 with a clear body, a WebSocket 502, a dropped datagram)
and counts them in chaos_requests_total.
"""

from __future__ import annotations

from dataclasses import dataclass

from chaos import blame


class ChaosError(blame.Error):
    """Base class of every error raised by chaos."""


class LocalError(ChaosError, blame.LocalError):
    """Our side is at fault: bad configuration or API misuse."""


class RemoteError(ChaosError, blame.RemoteError):
    """The peer is at fault: unreachable upstream, malformed frames."""


class UpstreamError(RemoteError):
    """The upstream of a route could not be reached or broke the protocol."""


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in a config: where it is and what is wrong."""

    source: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = self.source if self.line is None else f"{self.source}:{self.line}"
        field = f" {self.field}:" if self.field else ""
        return f"{where}:{field} {self.message}"


class ConfigError(LocalError):
    """A chaos config failed validation; carries one or more located issues."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = list(issues)
        super().__init__("\n".join(str(i) for i in self.issues))

    @property
    def first(self) -> ConfigIssue:
        """The first issue, handy for callers that report only one."""
        return self.issues[0]


class UnknownFaultType(ConfigError):
    """A fault `type` that is not registered; the message lists the known ones."""

    def __init__(self, name: str, known: list[str], *, source: str = "<config>",
                 line: int | None = None, field: str = "type") -> None:
        self.name = name
        self.known = sorted(known)
        message = f"unknown fault type {name!r}; known types: {', '.join(self.known)}"
        super().__init__([ConfigIssue(source, line, field, message)])
