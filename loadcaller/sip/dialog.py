"""A SIP dialog (RFC 3261 section 12): the state two UAs share after an INVITE.

Call-ID, the local and remote tags (kept inside the From/To name-addrs we echo),
the CSeq counters, the route set from Record-Route (reversed on the UAC side)
and the remote target from Contact. :meth:`Dialog.request` builds an in-dialog
request with the Request-URI and Route headers of RFC 3261 12.2.1.1 (loose
routing, and the strict-routing fallback).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Self

from loadcaller.sip.errors import ParseError
from loadcaller.sip.headers import NameAddr
from loadcaller.sip.message import Request, Response

__all__ = ["Dialog"]


def _contact_uri(message: Request | Response) -> str | None:
    contacts = message.header_list("Contact")
    if not contacts or contacts[0] == "*":
        return None
    return NameAddr.parse(contacts[0]).uri


@dataclass(slots=True)
class Dialog:
    """One dialog. Mutable: CSeq counters and the remote target move."""

    call_id: str
    local: NameAddr  # our From (UAC) or To (UAS), with our tag
    remote: NameAddr  # theirs, with their tag
    local_seq: int
    remote_seq: int | None
    remote_target: str
    route_set: tuple[str, ...]

    @classmethod
    def as_uac(cls, invite: Request, response: Response, *, fallback: bool = False) -> Self:
        """The dialog a 1xx/2xx with a To tag creates for the caller (RFC 3261 12.1.2).

        ``fallback``: for a 2xx whose Contact or Record-Route we cannot read, enough to
        ACK and BYE it (to the INVITE's Request-URI, no route set), never to carry a call.
        """
        routes: tuple[str, ...] = ()
        if fallback:
            target = invite.uri
        else:
            target = _contact_uri(response) or invite.uri
            routes = tuple(reversed(response.header_list("Record-Route")))
        return cls(
            call_id=invite.call_id,
            local=invite.from_,
            remote=response.to,
            local_seq=invite.cseq.seq,
            remote_seq=None,
            remote_target=target,
            route_set=routes,
        )

    def check_routes(self) -> None:
        """Raise ParseError now if a Record-Route entry cannot be read (not at the ACK)."""
        for route in self.route_set:
            NameAddr.parse(route).parsed_uri()

    @classmethod
    def as_uas(cls, invite: Request, local_tag: str, local_seq: int) -> Self:
        """The dialog a UAS creates when it answers with ``local_tag`` (RFC 3261 12.1.1)."""
        target = _contact_uri(invite)
        if target is None:
            raise ParseError("INVITE without Contact")
        return cls(
            call_id=invite.call_id,
            local=invite.to.with_tag(local_tag),
            remote=invite.from_,
            local_seq=local_seq,
            remote_seq=invite.cseq.seq,
            remote_target=target,
            route_set=tuple(invite.header_list("Record-Route")),
        )

    @property
    def local_tag(self) -> str:
        return self.local.tag or ""

    @property
    def remote_tag(self) -> str:
        return self.remote.tag or ""

    def matches(self, request: Request) -> bool:
        """Is this in-dialog request ours (Call-ID and both tags, RFC 3261 12.2.2)?"""
        return (
            request.call_id == self.call_id
            and request.to.tag == self.local_tag
            and (request.from_.tag or "") == self.remote_tag
        )

    def accept_remote_seq(self, request: Request) -> bool:
        """Check the peer's CSeq is rising (RFC 3261 12.2.2); False means answer 500."""
        seq = request.cseq.seq
        if request.method in ("ACK", "CANCEL"):
            return True
        if self.remote_seq is not None and seq <= self.remote_seq:
            return False
        self.remote_seq = seq
        return True

    def refresh_target(self, message: Request | Response) -> None:
        """A target-refresh (re-INVITE, UPDATE, their 2xx) moves the remote target."""
        target = _contact_uri(message)
        if target is not None:
            self.remote_target = target

    def request(
        self,
        method: str,
        *,
        via: str,
        contact: str | None = None,
        headers: tuple[tuple[str, str], ...] = (),
        body: bytes = b"",
        seq: int | None = None,
    ) -> Request:
        """A new in-dialog request; takes the next local CSeq unless ``seq`` is given."""
        if seq is None:
            self.local_seq += 1
            seq = self.local_seq
        uri, routes = self.remote_target, list(self.route_set)
        if routes:
            first = NameAddr.parse(routes[0]).parsed_uri()
            if first.param("lr") is None:
                # Strict router (RFC 2543): it takes the Request-URI, we append the target.
                uri = str(first)
                routes = [*routes[1:], f"<{self.remote_target}>"]
        out: list[tuple[str, str]] = [("Via", via), ("Max-Forwards", "70")]
        out += [("Route", r) for r in routes]
        out += [
            ("From", str(self.local)),
            ("To", str(self.remote)),
            ("Call-ID", self.call_id),
            ("CSeq", f"{seq} {method}"),
        ]
        if contact is not None:
            out.append(("Contact", contact))
        out += headers
        return Request(method=method, uri=uri, headers=tuple(out), body=body)
