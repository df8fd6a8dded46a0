"""A SipCall and a SipServer joined by an in-memory link on a fake clock.

No mocks: both cores are the real ones; the link only carries datagrams and
may drop some (``drop(direction, message) -> bool``; direction is ``"up"``
from caller to server, ``"down"`` back).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TypeVar

from loadcaller.sip.events import ServerEvent, SipEvent
from loadcaller.sip.message import Request, Response, parse_message
from loadcaller.sip.sdp import Sdp, build_answer, build_offer
from loadcaller.sip.uac import SipCall
from loadcaller.sip.uas import SipServer

CALLER = ("10.0.0.1", 5060)
AGENT = ("10.0.0.2", 5080)
OFFER = build_offer(ip="10.0.0.1", port=40000, session_id=11)
TICK = 0.01

Drop = Callable[[str, Request | Response], bool]
T = TypeVar("T")


def agent_answer(offer: bytes = OFFER, codecs: tuple[str, ...] = ("PCMU", "PCMA")) -> bytes:
    result = build_answer(Sdp.parse(offer), ip="10.0.0.2", port=30000, session_id=22, codecs=codecs)
    assert not hasattr(result, "reason"), result
    return result[0]  # type: ignore[index]


def drop_nth(method_or_status: str | int, n: int = 1, direction: str | None = None) -> Drop:
    """Drop the n-th message that is a request of that method or a response of that status."""
    seen = 0

    def drop(d: str, msg: Request | Response) -> bool:
        nonlocal seen
        key = msg.method if isinstance(msg, Request) else msg.status
        if key == method_or_status and (direction is None or d == direction):
            seen += 1
            return seen == n
        return False

    return drop


class Pair:
    """The caller, the agent, the wire between them and a clock."""

    def __init__(
        self,
        *,
        seed: int = 1,
        drop: Drop | None = None,
        transport: str = "udp",
        server_kw: dict[str, object] | None = None,
        call_local: tuple[str, int] = CALLER,
        **call_kw: object,
    ) -> None:
        kw: dict[str, object] = {"sdp_offer": OFFER, "from_user": "alice", "transport": transport}
        kw.update(call_kw)
        self.call = SipCall(
            "sip:agent@10.0.0.2:5080",
            call_local,
            AGENT,
            rng=random.Random(seed),
            **kw,  # type: ignore[arg-type]
        )
        self.server = SipServer(
            AGENT,
            random.Random(seed + 1),
            transport=transport,
            **(server_kw or {}),  # type: ignore[arg-type]
        )
        self.now = 0.0
        self.drop = drop
        self.wire: list[tuple[float, str, Request | Response]] = []  # what was sent
        self.call_events: list[SipEvent] = []
        self.server_events: list[ServerEvent] = []
        self.lost = 0

    def start(self) -> None:
        self.call.start(self.now)
        self.pump()

    def pump(self) -> None:
        """Deliver everything queued, both ways, until the wire is quiet."""
        while True:
            moved = self._carry("up", self.call.datagrams_to_send(), self.server)
            moved |= self._carry("down", self.server.datagrams_to_send(), self.call)
            while (e := self.call.next_event()) is not None:
                self.call_events.append(e)
            while (s := self.server.next_event()) is not None:
                self.server_events.append(s)
            if not moved:
                return

    def _carry(self, direction: str, datagrams: list[tuple[bytes, tuple[str, int]]],
               to: SipCall | SipServer) -> bool:  # fmt: skip
        src = CALLER if direction == "up" else AGENT
        for data, addr in datagrams:
            assert addr == (AGENT if direction == "up" else CALLER), addr
            msg = parse_message(data)  # everything we send must parse
            self.wire.append((self.now, direction, msg))
            if self.drop is not None and self.drop(direction, msg):
                self.lost += 1
                continue
            to.receive(data, src, self.now)
        return bool(datagrams)

    def tick(self) -> None:
        self.now = round(self.now + TICK, 6)
        for ep in (self.call, self.server):
            t = ep.get_timer()
            if t is not None and t <= self.now:
                ep.handle_timer(self.now)
        self.pump()

    def run(self, seconds: float) -> None:
        end = self.now + seconds
        while self.now < end - 1e-9:
            self.tick()

    def wait_for(self, kind: type[T], limit: float = 60.0, *, server: bool = False) -> T:
        """Run until an event of ``kind`` shows up (on the caller, or the server)."""
        end = self.now + limit
        while True:
            events: list[object] = list(self.server_events if server else self.call_events)
            for e in events:
                if isinstance(e, kind):
                    return e
            if self.now >= end:
                raise AssertionError(f"no {kind.__name__} in {limit} s: {events}")
            self.tick()

    def sent(self, direction: str, key: str | int) -> list[tuple[float, Request | Response]]:
        """(time, message) of what went ``direction`` with that method or status."""
        out = []
        for t, d, msg in self.wire:
            k = msg.method if isinstance(msg, Request) else msg.status
            if d == direction and k == key:
                out.append((t, msg))
        return out

    def incoming(self) -> str:
        """Wait for the IncomingCall on the server; its Call-ID."""
        from loadcaller.sip.events import IncomingCall

        return self.wait_for(IncomingCall, server=True).call_id
