"""One outgoing call leg: the sans-I/O SIP user agent client.

How this works: :class:`SipCall` is driven like an aioquic connection::

    call.start(now)                          # sends the INVITE
    call.receive(data, addr, now)            # every datagram (or stream chunk)
    call.handle_timer(now)                   # when now >= call.get_timer()
    call.datagrams_to_send()                 # after each of the above
    call.next_event()                        # Provisional, Answered, Failed, ...
    call.hangup(now)                         # CANCEL before the answer, BYE after

The call moves through phases ``idle -> calling -> early -> confirmed ->
ending -> done``; the transactions under it (INVITE, CANCEL, BYE, and server
transactions for the far end's BYE, re-INVITE, UPDATE, OPTIONS) keep the RFC
3261 timers (see :mod:`loadcaller.sip.transaction`). What the far end does is
reported once, as an event: every call ends with exactly one of
:class:`Failed`, :class:`Ended` or :class:`RemoteBye`.

RFC points a strict peer (SIPp) checks: a new ``z9hG4bK`` branch per
transaction, the CANCEL on the INVITE's branch and only after a provisional
(RFC 3261 9.1), the ACK of a 2xx as a new request in the dialog with the
INVITE's CSeq number (and re-sent for each retransmitted 2xx), the ACK of a
non-2xx inside the transaction, ``rport`` on every Via. A 401/407 is answered
once: the INVITE goes again with credentials, CSeq + 1, same Call-ID and From
tag. 3xx are classified, not followed. A 200 without SDP after a 183 with one
goes on with the early session (phones do; RFC 3261 13.2.1 wants it repeated).
Every request goes to ``remote_addr`` (the peer or outbound proxy); Request-URI
and Route follow the dialog.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from enum import Enum

from loadcaller.sip.dialog import Dialog
from loadcaller.sip.digest import answer_challenge, parse_auth
from loadcaller.sip.endpoint import ALLOW, Endpoint
from loadcaller.sip.errors import LocalProtocolError, ParseError
from loadcaller.sip.events import (
    Answered,
    EarlyMedia,
    Ended,
    Failed,
    MediaChanged,
    Provisional,
    RemoteBye,
    SipEvent,
    classify,
)
from loadcaller.sip.headers import NameAddr, Uri
from loadcaller.sip.message import Request, Response
from loadcaller.sip.sdp import Negotiated, NoCommonCodec, Sdp
from loadcaller.sip.session import LocalSession
from loadcaller.sip.transaction import T1, Addr, Transaction

__all__ = ["SipCall", "classify"]

Header = tuple[str, str]


class Phase(Enum):
    IDLE = "idle"
    CALLING = "calling"  # INVITE sent, nothing back yet
    EARLY = "early"  # a provisional arrived
    CONFIRMED = "confirmed"  # 2xx ACKed, media negotiated
    ENDING = "ending"  # our BYE is out
    DONE = "done"


class SipCall(Endpoint[SipEvent]):
    """One outgoing call leg (see the module docstring for how to drive it)."""

    def __init__(
        self,
        target_uri: str,
        local_addr: Addr,
        remote_addr: Addr,
        *,
        sdp_offer: bytes,
        rng: random.Random,
        transport: str = "udp",
        from_user: str = "loadcaller",
        display_name: str = "",
        auth_username: str | None = None,
        auth_password: str | None = None,
        extra_headers: Sequence[Header] = (),
        user_agent: str = "loadcaller",
    ) -> None:
        super().__init__(local_addr=local_addr, transport=transport, rng=rng, user_agent=user_agent)
        try:
            self.target = Uri.parse(target_uri)
        except ParseError as exc:
            raise LocalProtocolError(f"bad target URI {target_uri!r}: {exc}") from exc
        self.target_uri = target_uri
        self.remote_addr = remote_addr
        self.local = LocalSession(sdp_offer)
        self.call_id = f"{self._hex()}@{local_addr[0]}"
        self.phase = Phase.IDLE
        self.media: Negotiated | None = None
        self._early_sdp = b""  # the SDP answer of the latest 18x, if one had it
        self._from = NameAddr(f"sip:{from_user}@{self.target.host}", display_name)
        self._from = self._from.with_tag(self._hex(32))
        self._user = from_user
        self._credentials = (auth_username, auth_password or "") if auth_username else None
        self._extra = tuple(extra_headers)
        self._ua: tuple[Header, ...] = (("User-Agent", user_agent),)
        self._seq = 0
        self._invite: Request | None = None
        self._invite_txn: Transaction | None = None
        self._auth: Header | None = None  # credentials the INVITE (and its ACK) carry
        self._dialog: Dialog | None = None
        self._ack: bytes | None = None
        self._bye_txn: Transaction | None = None
        self._bye_auth_tried = False
        self._end_reason = "local_bye"
        self._hangup_pending = False
        self._cancel_deadline: float | None = None
        self._public: Addr | None = None  # our address as the peer sees it (received/rport)
        self._finished = False

    # -- the driver's calls ---------------------------------------------------

    @property
    def closed(self) -> bool:
        """The last event is out and no transaction is left running."""
        return self._finished and self.phase is Phase.DONE and len(self._txns) == 0

    def start(self, now: float) -> None:
        """Send the INVITE."""
        if self.phase is not Phase.IDLE:
            raise LocalProtocolError("start() called twice")
        self.phase = Phase.CALLING
        self._send_invite(now)

    def hangup(self, now: float) -> None:
        """CANCEL before a final response (once a provisional arrived), BYE after."""
        if self.phase is Phase.IDLE:
            raise LocalProtocolError("hangup() before start()")
        if self._finished or self.phase in (Phase.ENDING, Phase.DONE) or self._hangup_pending:
            return
        if self.phase is Phase.CONFIRMED:
            self._send_bye(now, "local_bye")
            return
        self._hangup_pending = True
        if self.phase is Phase.EARLY:
            self._send_cancel(now)

    # -- requests we send -----------------------------------------------------

    def _contact(self) -> str:
        return self.contact(self._user, self._public)

    def _send_invite(self, now: float) -> None:
        self._seq += 1
        headers: list[Header] = [
            ("Via", self.via(self.new_branch())),
            ("Max-Forwards", "70"),
            ("From", str(self._from)),
            ("To", f"<{self.target_uri}>"),
            ("Call-ID", self.call_id),
            ("CSeq", f"{self._seq} INVITE"),
            ("Contact", self._contact()),
        ]
        if self._auth is not None:
            headers.append(self._auth)
        headers += [*self._ua, ("Allow", ALLOW), ("Content-Type", "application/sdp")]
        headers += self._extra
        invite = Request(
            method="INVITE", uri=self.target_uri, headers=tuple(headers), body=self.local.offer
        )
        self._invite = invite
        self._invite_txn = self._txns.client(invite, self.remote_addr, now)

    def _send_cancel(self, now: float) -> None:
        invite = self._invite
        assert invite is not None
        headers: list[Header] = [("Via", invite.header_list("Via")[0]), ("Max-Forwards", "70")]
        headers += [("Route", r) for r in invite.header_list("Route")]
        headers += [
            ("From", invite.header("From") or ""),
            ("To", invite.header("To") or ""),
            ("Call-ID", self.call_id),
            ("CSeq", f"{invite.cseq.seq} CANCEL"),
            *self._ua,
        ]
        cancel = Request(method="CANCEL", uri=invite.uri, headers=tuple(headers))
        self._txns.client(cancel, self.remote_addr, now)
        self._cancel_deadline = now + 64 * T1

    def _send_ack(self) -> None:
        assert self._dialog is not None and self._invite is not None
        extra = (self._auth,) if self._auth else ()
        ack = self._dialog.request(
            "ACK",
            via=self.via(self.new_branch()),
            seq=self._invite.cseq.seq,
            headers=(*extra, *self._ua),
        )
        self._ack = ack.serialize()
        self._outbox.append((self._ack, self.remote_addr))

    def _send_bye(self, now: float, reason: str, auth: Header | None = None) -> None:
        assert self._dialog is not None
        extra = (auth,) if auth else ()
        bye = self._dialog.request(
            "BYE", via=self.via(self.new_branch()), headers=(*extra, *self._ua)
        )
        self._bye_txn = self._txns.client(bye, self.remote_addr, now)
        self.phase = Phase.ENDING
        self._end_reason = reason

    def _answer_challenge(self, response: Response, request: Request) -> Header | None:
        """Credentials for a 401/407, or None if we have none or cannot answer."""
        if self._credentials is None:
            return None
        username, password = self._credentials
        return answer_challenge(
            response, request, username=username, password=password, cnonce=self._hex()
        )

    # -- what comes back ------------------------------------------------------

    def _emit(self, event: SipEvent) -> None:
        if self._finished:
            return
        self._events.append(event)
        if isinstance(event, Failed | Ended | RemoteBye):
            self._finished = True
            self._cancel_deadline = None

    def _on_response(self, txn: Transaction, response: Response, now: float) -> None:
        via = response.top_via
        if via.rport is not None or via.received is not None:
            self._public = (via.received or self.local_addr[0], via.rport or self.local_addr[1])
        if txn is self._invite_txn:
            if response.status < 200:
                self._provisional(response, now)
            elif response.status < 300:
                self._success(response, now)
            else:
                self._failure(response, now)
        elif txn is self._bye_txn and response.status >= 200:
            if response.status in (401, 407) and not self._bye_auth_tried:
                self._bye_auth_tried = True
                auth = self._answer_challenge(response, txn.request)
                if auth is not None:
                    self._send_bye(now, self._end_reason, auth)
                    return
            self.phase = Phase.DONE
            self._emit(Ended(self._end_reason))

    def _on_stray_response(self, response: Response, now: float) -> None:
        # A 2xx retransmitted after the INVITE transaction ended still needs its ACK.
        invite = self._invite
        if (
            invite is not None
            and 200 <= response.status < 300
            and response.call_id == self.call_id
            and response.cseq.method == "INVITE"
            and response.cseq.seq == invite.cseq.seq
        ):
            self._success(response, now)
        else:
            self.garbage += 1

    def _provisional(self, response: Response, now: float) -> None:
        if self.phase is Phase.CALLING:
            self.phase = Phase.EARLY
        self._emit(Provisional(response.status, response.reason))
        if response.status > 100 and response.body:
            media = self.local.negotiate(response.body)
            if isinstance(media, Negotiated) and media != self.media:
                self.media = media
                self._early_sdp = response.body
                self._emit(EarlyMedia(response.body, media))
        if self._hangup_pending and self._cancel_deadline is None:
            self._send_cancel(now)

    def _success(self, response: Response, now: float) -> None:
        if self._dialog is not None:
            if response.to.tag == self._dialog.remote_tag and self._ack is not None:
                self._outbox.append((self._ack, self.remote_addr))  # re-ACK a retransmission
            return  # a second fork answering: its UAS times out without our ACK
        assert self._invite is not None
        unreadable: str | None = None
        try:
            self._dialog = Dialog.as_uac(self._invite, response)
            self._dialog.check_routes()
        except ParseError as exc:
            # dropping it as garbage left the 2xx un-ACKed and the call "ringing" until
            # setup_timeout, then CANCELled: end it in the INVITE's terms instead
            unreadable = str(exc)
            self._dialog = Dialog.as_uac(self._invite, response, fallback=True)
        self._send_ack()
        if self._hangup_pending or self._finished:
            self._send_bye(now, "cancelled")  # the 2xx crossed our CANCEL, or came too late
            return
        if unreadable is not None:
            self._emit(Failed(response.status, f"{response.reason}, but its Contact or "
                              f"Record-Route cannot be read ({unreadable})", "bad_answer"))
            self._send_bye(now, "bad_answer")
            return
        sdp = response.body
        if not sdp and self.media is not None:
            # the answer came in a 183 only: RFC 3261 13.2.1 wants it again in the 200
            # (no 100rel here), but phones and gateways go on with the early session
            sdp = self._early_sdp
        media = self.local.negotiate(sdp)
        if isinstance(media, Negotiated):
            self.phase = Phase.CONFIRMED
            self.media = media
            self._emit(Answered(sdp, response.status, media))
            return
        outcome, reason = media
        self._emit(Failed(response.status, reason, outcome))
        self._send_bye(now, outcome)

    def _failure(self, response: Response, now: float) -> None:
        status = response.status
        assert self._invite is not None
        if status in (401, 407) and self._auth is None and not self._hangup_pending:
            auth = self._answer_challenge(response, self._invite)
            if auth is not None:
                self._auth = auth
                self._send_invite(now)
                return
        self.phase = Phase.DONE
        if self._hangup_pending:
            self._emit(Ended("cancelled"))
            return
        reason = response.reason
        if 300 <= status < 400:
            contacts = response.header_list("Contact")
            reason += f" -> {contacts[0]}" if contacts else " (no Contact)"
        elif status in (401, 407):
            reason += f" ({self._auth_failure(response)})"
        self._emit(Failed(status, reason, classify(status)))

    def _auth_failure(self, response: Response) -> str:
        """Why a 401/407 ends the call: what we had, and what the agent asked for."""
        if self._auth is not None:
            return "challenged again: our credentials were refused"
        if self._credentials is None:
            return "challenged, and the profile has no auth_username"
        header = "Proxy-Authenticate" if response.status == 407 else "WWW-Authenticate"
        offered = []
        for value in response.header_list(header):
            try:
                scheme, params = parse_auth(value)
            except ParseError:
                offered.append(f"unreadable {value[:40]!r}")
                continue
            algorithm = params.get("algorithm")
            offered.append(f"{scheme} algorithm={algorithm}"[:60] if algorithm else scheme[:30])
        if not offered:
            return f"challenged without a {header} header"
        return f"no challenge we can answer (MD5 or SHA-256 digest): {'; '.join(offered)}"

    def _on_timeout(self, txn: Transaction, now: float) -> None:
        if txn is self._invite_txn:
            self.phase = Phase.DONE
            self._emit(Failed(408, "Request Timeout (timer B)", "timeout"))
        elif txn is self._bye_txn:
            self.phase = Phase.DONE
            self._emit(Ended("bye_unanswered"))

    def _own_timer(self) -> float | None:
        return self._cancel_deadline if not self._finished else None

    def _on_own_timer(self, now: float) -> None:
        if self._cancel_deadline is not None and now >= self._cancel_deadline:
            self.phase = Phase.DONE
            self._emit(Ended("cancel_unanswered"))

    # -- requests from the far end -------------------------------------------

    def _on_request(self, request: Request, addr: Addr, now: float) -> None:
        dialog = self._dialog
        ours = request.call_id == self.call_id and request.to.tag == self._from.tag
        if not ours or (dialog is not None and not dialog.matches(request)):
            if request.method == "OPTIONS" and request.to.tag is None:
                self._reply_new(request, addr, 200, now, headers=_options_headers())
            else:
                self._reply_new(request, addr, 481, now)
            return
        if dialog is not None and not dialog.accept_remote_seq(request):
            self._reply_new(request, addr, 500, now)
            return
        method = request.method
        if method == "BYE" and dialog is None:
            # no confirmed dialog: a callee may not BYE an early dialog (RFC 3261 15),
            # and a Call-ID plus our tag alone is too little to end the call on
            self._reply_new(request, addr, 481, now)
        elif method == "BYE":
            self._reply_new(request, addr, 200, now)
            self.phase = Phase.DONE
            self._emit(RemoteBye())
        elif method in ("INVITE", "UPDATE") and dialog is not None:
            self._answer_offer(request, addr, now)
        elif method == "OPTIONS":
            self._reply_new(request, addr, 200, now, headers=_options_headers())
        elif method in ("INFO", "NOTIFY", "MESSAGE"):
            self._reply_new(request, addr, 200, now)
        elif method in ("INVITE", "UPDATE"):
            self._reply_new(request, addr, 491, now)  # no dialog yet: retry later
        else:
            self._reply_new(request, addr, 501, now, headers=(("Allow", ALLOW),))

    def _answer_offer(self, request: Request, addr: Addr, now: float) -> None:
        assert self._dialog is not None
        txn = self._txns.server(request, addr, now)
        try:
            self._dialog.refresh_target(request)
        except ParseError:
            # dropped as garbage, it went unanswered: the agent retransmitted it for
            # 32 s and then, as RFC 3261 14.1 has it, usually hung up the call
            self.garbage += 1
            self._reply(txn, 400, now, reason="Bad Contact")
            return
        headers = (("Contact", self._contact()), ("Allow", ALLOW))
        if not request.body:
            # An offerless re-INVITE: our offer goes in the 200, the answer comes in the ACK.
            body = self.local.current if request.method == "INVITE" else b""
            self._reply(txn, 200, now, headers=headers, body=body)
            return
        try:
            result = self.local.answer(
                Sdp.parse(request.body), prefer=self.media.codec if self.media else None
            )
        except ParseError:
            result = NoCommonCodec("unparseable SDP")
        if isinstance(result, NoCommonCodec):
            self._reply(txn, 488, now)
            return
        body, media = result
        self._reply(txn, 200, now, headers=headers, body=body)
        self._media_update(request.body, media)

    def _on_acked(self, txn: Transaction, ack: Request, now: float) -> None:
        if ack.body and not txn.request.body:
            media = self.local.negotiate(ack.body)
            if isinstance(media, Negotiated):
                self._media_update(ack.body, media)

    def _media_update(self, sdp: bytes, media: Negotiated) -> None:
        if media != self.media:
            self.media = media
            self._emit(MediaChanged(sdp, media))


def _options_headers() -> tuple[Header, ...]:
    return (("Allow", ALLOW), ("Accept", "application/sdp"))
