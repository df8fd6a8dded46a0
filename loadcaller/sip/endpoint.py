"""What a caller and an answerer share: the sans-I/O surface and message plumbing.

How this works: bytes come in through :meth:`Endpoint.receive` with the
source address and ``now``; they are parsed (datagram) or framed (TCP/TLS),
then matched to a transaction (:mod:`loadcaller.sip.transaction`). What a
transaction hands up, and requests that start something new, go to the
subclass hooks (``_on_response``, ``_on_request``, ``_on_ack``,
``_on_timeout``). Bytes to send collect in an outbox read by
:meth:`datagrams_to_send`; events queue for :meth:`next_event`; the glue arms
one timer at :meth:`get_timer` and calls :meth:`handle_timer`.

``receive()`` never raises: what cannot be parsed, or fails later on a header
we read lazily, is counted in :attr:`garbage` and dropped. That is a remote
fault a load tester must survive, not a crash.
"""

from __future__ import annotations

import random
from collections import deque
from typing import Generic, TypeVar

from loadcaller.sip.errors import LocalProtocolError, ParseError, SipError
from loadcaller.sip.headers import BRANCH_COOKIE, Via
from loadcaller.sip.message import Request, Response, StreamFramer, parse_message
from loadcaller.sip.transaction import Addr, Transaction, Transactions

__all__ = ["REASONS", "Endpoint"]

E = TypeVar("E")

REASONS = {
    100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 183: "Session Progress",
    200: "OK", 202: "Accepted", 301: "Moved Permanently", 302: "Moved Temporarily",
    400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 407: "Proxy Authentication Required", 408: "Request Timeout",
    480: "Temporarily Unavailable", 481: "Call/Transaction Does Not Exist",
    484: "Address Incomplete", 486: "Busy Here", 487: "Request Terminated",
    488: "Not Acceptable Here", 491: "Request Pending", 500: "Server Internal Error",
    501: "Not Implemented", 503: "Service Unavailable", 600: "Busy Everywhere",
    603: "Decline", 604: "Does Not Exist Anywhere",
}  # fmt: skip
ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO, NOTIFY"
_TRANSPORTS = ("udp", "tcp", "tls")


class Endpoint(Generic[E]):
    """Base of :class:`SipCall` and :class:`SipServer`: I/O surface and helpers."""

    def __init__(
        self, *, local_addr: Addr, transport: str, rng: random.Random, user_agent: str
    ) -> None:
        transport = transport.lower()
        if transport not in _TRANSPORTS:
            raise LocalProtocolError(f"unknown transport {transport!r}, known: {_TRANSPORTS}")
        self.local_addr = local_addr
        self.transport = transport
        self.reliable = transport != "udp"
        self.rng = rng
        self.user_agent = user_agent
        self.garbage = 0  # messages dropped: unparseable, or out of place
        self._outbox: list[tuple[bytes, Addr]] = []
        self._events: deque[E] = deque()
        self._txns = Transactions(self._outbox, reliable=self.reliable)
        self._framers: dict[Addr, StreamFramer] = {}

    # -- the sans-I/O surface ------------------------------------------------

    def receive(self, data: bytes, addr: Addr, now: float) -> None:
        """Bytes from ``addr`` (one datagram, or a chunk of a TCP/TLS stream)."""
        messages: list[Request | Response]
        try:
            if self.reliable:
                framer = self._framers.setdefault(addr, StreamFramer())
                messages = framer.feed(data)
            else:
                messages = [parse_message(data)]
        except ParseError:
            self.garbage += 1
            self._framers.pop(addr, None)  # framing is lost: start afresh
            return
        for message in messages:
            try:
                self._dispatch(message, addr, now)
            except SipError:
                self.garbage += 1
        self._txns.sweep()

    def datagrams_to_send(self) -> list[tuple[bytes, Addr]]:
        """Bytes to send and where (one datagram each over UDP), oldest first."""
        out = list(self._outbox)
        self._outbox.clear()
        return out

    def next_event(self) -> E | None:
        """The next event, or None."""
        return self._events.popleft() if self._events else None

    def get_timer(self) -> float | None:
        """When :meth:`handle_timer` must next be called, or None."""
        own = self._own_timer()
        txn = self._txns.get_timer()
        if own is None or txn is None:
            return own if txn is None else txn
        return min(own, txn)

    def handle_timer(self, now: float) -> None:
        """Fire what is due by ``now``."""
        for txn in self._txns.handle_timer(now):
            self._on_timeout(txn, now)
        self._on_own_timer(now)
        self._txns.sweep()

    # -- dispatch ------------------------------------------------------------

    def _dispatch(self, message: Request | Response, addr: Addr, now: float) -> None:
        if isinstance(message, Response):
            txn = self._txns.for_response(message)
            if txn is None:
                self._on_stray_response(message, now)
            elif txn.receive_response(message, now):
                self._on_response(txn, message, now)
            return
        txn = self._txns.for_request(message)
        if message.method == "ACK":
            if txn is not None:
                txn.receive_request(message, now)  # ACK of a non-2xx
            else:
                self._on_ack(message, addr, now)
        elif txn is not None:
            txn.receive_request(message, now)  # a retransmission
        else:
            self._on_request(message, addr, now)

    def _on_response(self, txn: Transaction, response: Response, now: float) -> None:
        raise NotImplementedError

    def _on_stray_response(self, response: Response, now: float) -> None:
        self.garbage += 1

    def _on_request(self, request: Request, addr: Addr, now: float) -> None:
        raise NotImplementedError

    def _on_ack(self, ack: Request, addr: Addr, now: float) -> None:
        txn = self._txns.accepted_invite(ack.call_id, ack.cseq.seq)
        if txn is None or not txn.receive_request(ack, now):
            return
        self._on_acked(txn, ack, now)

    def _on_acked(self, txn: Transaction, ack: Request, now: float) -> None:
        """The ACK for our 2xx to ``txn.request`` arrived."""

    def _on_timeout(self, txn: Transaction, now: float) -> None:
        raise NotImplementedError

    def _own_timer(self) -> float | None:
        return None

    def _on_own_timer(self, now: float) -> None:
        return None

    # -- building blocks -----------------------------------------------------

    def _hex(self, bits: int = 64) -> str:
        return f"{self.rng.getrandbits(bits):0{bits // 4}x}"

    def new_branch(self) -> str:
        return BRANCH_COOKIE + self._hex()

    def via(self, branch: str) -> str:
        host, port = self.local_addr
        return f"SIP/2.0/{self.transport.upper()} {_host(host)}:{port};branch={branch};rport"

    def contact(self, user: str, addr: Addr | None = None) -> str:
        host, port = addr or self.local_addr
        param = "" if self.transport == "udp" else f";transport={self.transport}"
        userpart = f"{user}@" if user else ""
        return f"<sip:{userpart}{_host(host)}:{port}{param}>"

    def response(
        self,
        request: Request,
        status: int,
        *,
        reason: str | None = None,
        to_tag: str | None = None,
        headers: tuple[tuple[str, str], ...] = (),
        body: bytes = b"",
        source: Addr | None = None,
    ) -> Response:
        """A response echoing the request's Via, From, To, Call-ID, CSeq (RFC 3261 8.2.6)."""
        if not 100 <= status <= 699:
            raise LocalProtocolError(f"status {status} out of range")
        vias = request.header_list("Via")
        if source is not None and vias:
            vias[0] = str(_stamp_via(Via.parse(vias[0]), source))
        to = request.to
        if to_tag is not None and to.tag is None and status > 100:
            to = to.with_tag(to_tag)
        out: list[tuple[str, str]] = [("Via", v) for v in vias]
        out += [
            ("From", request.header("From") or ""),
            ("To", str(to) if to != request.to else request.header("To") or ""),
            ("Call-ID", request.call_id),
            ("CSeq", request.header("CSeq") or ""),
            ("Server", self.user_agent),
        ]
        out += headers
        if body:
            out.append(("Content-Type", "application/sdp"))
        return Response(
            status=status,
            reason=reason or REASONS.get(status, "Unknown"),
            headers=tuple(out),
            body=body,
        )

    def _reply(
        self,
        txn: Transaction,
        status: int,
        now: float,
        *,
        reason: str | None = None,
        to_tag: str | None = None,
        headers: tuple[tuple[str, str], ...] = (),
        body: bytes = b"",
    ) -> Response:
        """Answer a server transaction (to the address its request came from)."""
        response = self.response(
            txn.request,
            status,
            reason=reason,
            to_tag=to_tag,
            headers=headers,
            body=body,
            source=txn.addr,
        )
        txn.send_response(response, now)
        return response

    def _reply_new(
        self,
        request: Request,
        addr: Addr,
        status: int,
        now: float,
        *,
        to_tag: str | None = None,
        headers: tuple[tuple[str, str], ...] = (),
        body: bytes = b"",
    ) -> Transaction:
        """Open a server transaction for ``request`` and answer it at once.

        A final response to a request without a To tag gets one (RFC 3261 8.2.6.2).
        """
        if to_tag is None and request.to.tag is None and status > 100:
            to_tag = self._hex(32)
        txn = self._txns.server(request, addr, now)
        self._reply(txn, status, now, to_tag=to_tag, headers=headers, body=body)
        return txn


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _stamp_via(via: Via, source: Addr) -> Via:
    """RFC 3261 18.2.1 ``received`` and RFC 3581 ``rport`` on the top Via."""
    host, port = source
    if via.host != host:
        via = via.with_param("received", host)
    if via.rport is None and via.params and any(k.lower() == "rport" for k, _ in via.params):
        via = via.with_param("rport", str(port))
    return via
