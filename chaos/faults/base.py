"""The fault interface and the registry that maps a YAML `type` to a class.

A fault is one small class with its own parameters only (a pydantic model
named `Params`). Shared settings (match, probability, counts, window, seed)
live on the wrapper (chaos/wrapper.py), which decides *whether* a fault acts;
the fault says *what* happens. Every hook is sans-I/O: it returns values from
chaos/actions.py and the proxies carry them out.
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from chaos.actions import FaultContext, RequestAction, StreamTransform, WsItem, WsMessage
from chaos.errors import UnknownFaultType

Layer = Literal["http", "ws", "udp"]


class Params(BaseModel):
    """Base for fault parameters: unknown keys are errors (typos get caught).

    Numbers must be finite: YAML reads `.inf` and `.nan` as floats, and a NaN
    passes every range check (all comparisons are false).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


_ParamsBase = Params

# RFC 9110 token characters: what a header name may be made of
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


def check_header_name(name: str) -> None:
    """ValueError unless `name` can be sent as an HTTP header name."""
    if not _TOKEN.match(name):
        raise ValueError(f"header name {name!r} is not an HTTP token "
                         "(letters, digits and !#$%&'*+-.^_`|~ only)")


def check_header_value(value: str, what: str) -> None:
    """ValueError when `value` holds CR, LF or NUL (the response could not be sent)."""
    if any(c in value for c in "\r\n\0"):
        raise ValueError(f"{what} may not contain line breaks or NUL")


class Fault:
    """Base of every fault. Subclasses set `type`, `layer` and `Params`."""

    type: ClassVar[str]
    layer: ClassVar[Layer]
    Params: ClassVar[builtins.type[_ParamsBase]] = _ParamsBase
    #: fields of Params a `ramp` may drive (numbers that scale the fault)
    magnitude_fields: ClassVar[tuple[str, ...]] = ()

    def __init__(self, params: Any) -> None:
        self.params = params

    def describe(self) -> dict[str, Any]:
        """The fault's parameters as plain data (for the control API)."""
        return dict(self.params.model_dump(mode="json"))


class HttpFault(Fault):
    """A fault on an HTTP exchange (also SSE and JSON bodies)."""

    layer: ClassVar[Layer] = "http"
    #: True when the fault needs the whole body (rewrite_body), not a stream
    buffers_body: ClassVar[bool] = False
    #: True when the stream transform keeps the byte count (Content-Length stays)
    keeps_length: ClassVar[bool] = False

    def on_request(self, ctx: FaultContext) -> RequestAction | None:
        """Before the upstream is called: delay, answer, hang or reset."""
        return None

    def rewrite_body(self, body: bytes, content_type: str, ctx: FaultContext) -> bytes | None:
        """Return a new body, or None when the fault does not apply (skipped)."""
        return None

    def stream_transform(self, headers: Mapping[str, str],
                         ctx: FaultContext) -> StreamTransform | None:
        """A filter over the response body as it streams, or None (does not apply).

        `headers` are the upstream response headers (case-insensitive mapping).
        """
        return None


class WsFault(Fault):
    """A fault on a WebSocket connection or one of its messages."""

    layer: ClassVar[Layer] = "ws"
    #: "handshake": decided once when a client connects; "message": per message
    scope: ClassVar[Literal["handshake", "message"]] = "message"

    def on_handshake(self, ctx: FaultContext) -> RequestAction | None:
        """When a client connects: delay or reject the handshake."""
        return None

    def on_message(self, message: WsMessage, ctx: FaultContext) -> list[WsItem]:
        """Per message: return what to send instead (empty list drops it)."""
        return [message]


REGISTRY: dict[str, type[Fault]] = {}


def register(cls: type[Fault]) -> type[Fault]:
    """Class decorator: make a fault available under its YAML `type`."""
    if cls.type in REGISTRY and REGISTRY[cls.type] is not cls:
        raise ValueError(f"fault type {cls.type!r} registered twice")
    REGISTRY[cls.type] = cls
    return cls


def fault_class(name: str) -> type[Fault]:
    """The class registered under `name`; UnknownFaultType lists the known ones."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise UnknownFaultType(name, list(REGISTRY)) from None
