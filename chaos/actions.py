"""What a fault asks the I/O layer to do.

Faults are sans-I/O: they look at a request, a body chunk, a message or a
packet, and return these frozen values. The proxies (http.py, ws.py, udp.py)
carry them out. Keeping the two apart lets the tests check a fault's decisions
without sockets, and lets the proxies stay thin.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal, Protocol


@dataclass(frozen=True)
class FaultContext:
    """What a fault may know when it decides: the time, its seeded RNG, the route."""

    now: float
    rng: random.Random
    route: str = ""


@dataclass(frozen=True)
class Delay:
    """Wait this many seconds, then carry on."""

    seconds: float


@dataclass(frozen=True)
class Respond:
    """Answer the client directly with this response; the upstream is not called."""

    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""


@dataclass(frozen=True)
class Hang:
    """Hold the connection silent; `seconds=None` holds until the client leaves.

    Afterwards: `none` carries on normally, `fin` closes cleanly, `rst` resets.
    """

    seconds: float | None
    then: Literal["none", "fin", "rst"] = "none"


@dataclass(frozen=True)
class Reset:
    """Reset the client connection (TCP RST) at once."""


@dataclass(frozen=True)
class Reject:
    """Refuse a WebSocket handshake with this HTTP status."""

    status: int
    body: bytes = b""


@dataclass(frozen=True)
class Pause:
    """Inside a stream: stop sending for this many seconds."""

    seconds: float


@dataclass(frozen=True)
class Cut:
    """Inside a stream: stop here and drop the connection (RST if `rst`)."""

    rst: bool = False


@dataclass(frozen=True)
class Close:
    """Close a WebSocket with this code and reason."""

    code: int
    reason: str = ""


@dataclass(frozen=True)
class WsMessage:
    """One WebSocket message; `fragments` > 1 asks for it to be sent in pieces."""

    data: str | bytes
    fragments: int = 1

    @property
    def kind(self) -> Literal["text", "binary"]:
        """`text` or `binary`, as used by `match.message`."""
        return "text" if isinstance(self.data, str) else "binary"


@dataclass(frozen=True)
class Defer:
    """WebSocket: send this message after the next one (a reorder)."""

    message: WsMessage


@dataclass(frozen=True)
class Starve:
    """WebSocket: stop reading from the client (so its pings get no pong)."""

    seconds: float | None


RequestAction = Delay | Respond | Hang | Reset | Reject | Starve
StreamItem = bytes | Pause | Cut
WsItem = WsMessage | Pause | Close | Cut | Defer


class StreamTransform(Protocol):
    """A sans-I/O filter over a byte stream (a response body)."""

    def feed(self, chunk: bytes) -> list[StreamItem]:
        """Take the next chunk; return what to send now."""
        ...

    def end(self) -> list[StreamItem]:
        """The upstream finished; return whatever is still held."""
        ...

