"""A small sans-I/O SIP answering side: many dialogs on one socket.

How this works: :class:`SipServer` is driven like :class:`~loadcaller.sip.uac.SipCall`
(``receive``, ``datagrams_to_send``, ``get_timer``, ``handle_timer``,
``next_event``) but serves every call that reaches its address, keyed by
Call-ID. A new INVITE is answered ``100 Trying`` at once (we cannot promise
the 200 ms of RFC 3261 17.2.1 from here) and reported as :class:`IncomingCall`;
the driver then calls :meth:`ring`, :meth:`answer`, :meth:`reject` or
:meth:`hangup`. A 200 is retransmitted (timer G) until its ACK
(:class:`CallConfirmed`) or timer H (then ``ack_timeout`` and a BYE, RFC 3261
13.3.1.4). CANCEL, BYE, OPTIONS, INFO and in-dialog re-INVITE/UPDATE are
answered by the core. With ``auth=(realm, user, password)`` every new INVITE
is challenged (401, or 407 with ``proxy_auth``) until it carries valid digest
credentials for a nonce we issued; a wrong answer is challenged again.

It exists for the reference agent and for tests against :class:`SipCall`; it
is not a registrar or a proxy.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from loadcaller.sip.dialog import Dialog
from loadcaller.sip.digest import challenge, verify
from loadcaller.sip.endpoint import ALLOW, Endpoint
from loadcaller.sip.errors import LocalProtocolError, ParseError
from loadcaller.sip.events import (
    CallConfirmed,
    CallEnded,
    IncomingCall,
    RequestAnswered,
    ServerEvent,
)
from loadcaller.sip.message import Request, Response
from loadcaller.sip.sdp import NoCommonCodec, Sdp
from loadcaller.sip.session import LocalSession
from loadcaller.sip.transaction import Addr, State, Transaction

__all__ = ["SipServer"]

Header = tuple[str, str]
_MAX_NONCES = 10_000


@dataclass(slots=True)
class _Call:
    call_id: str
    invite: Request
    txn: Transaction
    addr: Addr
    tag: str
    state: str = "ringing"  # ringing -> answered -> confirmed; ended
    dialog: Dialog | None = None
    session: LocalSession | None = None
    bye_after_ack: bool = False
    acks: dict[int, bytes] = field(default_factory=dict)  # our re-INVITE CSeq -> its ACK


class SipServer(Endpoint[ServerEvent]):
    """The answering side of many calls on one local address."""

    def __init__(
        self,
        local_addr: Addr,
        rng: random.Random,
        *,
        transport: str = "udp",
        user_agent: str = "loadcaller-agent",
        contact_user: str = "agent",
        auth: tuple[str, str, str] | None = None,
        proxy_auth: bool = False,
    ) -> None:
        super().__init__(local_addr=local_addr, transport=transport, rng=rng, user_agent=user_agent)
        self._user = contact_user
        self._auth = auth
        self._proxy_auth = proxy_auth
        self._nonces: dict[str, None] = {}
        self._calls: dict[str, _Call] = {}
        self._ours: dict[Transaction, str] = {}  # our client transactions -> Call-ID
        self.auth_failures = 0

    @property
    def calls(self) -> list[str]:
        """Call-IDs of calls not yet ended."""
        return list(self._calls)

    # -- the driver's calls ---------------------------------------------------

    def _call(self, call_id: str) -> _Call:
        call = self._calls.get(call_id)
        if call is None:
            raise LocalProtocolError(f"no live call {call_id!r}")
        return call

    def _headers(self) -> tuple[Header, ...]:
        return (("Contact", self.contact(self._user)), ("Allow", ALLOW))

    def ring(self, call_id: str, now: float, *, sdp: bytes = b"", status: int = 180) -> None:
        """A provisional response: 180 Ringing, or 183 with ``sdp`` for early media."""
        call = self._call(call_id)
        if call.state != "ringing" or not 100 < status < 200:
            raise LocalProtocolError(f"cannot send {status} on a call that is {call.state}")
        self._reply(call.txn, status, now, to_tag=call.tag, headers=self._headers(), body=sdp)

    def answer(self, call_id: str, sdp_answer: bytes, now: float) -> None:
        """200 OK with ``sdp_answer`` (empty: no body), retransmitted until the ACK."""
        call = self._call(call_id)
        if call.state != "ringing":
            raise LocalProtocolError(f"cannot answer a call that is {call.state}")
        call.dialog = Dialog.as_uas(call.invite, call.tag, 0)
        call.session = LocalSession(sdp_answer) if sdp_answer else None
        call.state = "answered"
        self._reply(call.txn, 200, now, to_tag=call.tag, headers=self._headers(), body=sdp_answer)

    def reject(
        self,
        call_id: str,
        status: int,
        now: float,
        *,
        reason: str | None = None,
        headers: tuple[Header, ...] = (),
    ) -> None:
        """A final 3xx-6xx (give a Contact header for a 3xx)."""
        call = self._call(call_id)
        if call.state != "ringing" or not 300 <= status <= 699:
            raise LocalProtocolError(f"cannot reject with {status} a call that is {call.state}")
        self._reply(call.txn, status, now, reason=reason, to_tag=call.tag, headers=headers)
        self._end(call, "rejected")

    def hangup(self, call_id: str, now: float) -> None:
        """BYE (after the ACK, RFC 3261 15); before the answer this rejects with 480."""
        call = self._call(call_id)
        if call.state == "ringing":
            self.reject(call_id, 480, now)
        elif call.state == "answered":
            call.bye_after_ack = True
        elif call.state == "confirmed":
            self._send_bye(call, now)

    def reinvite(self, call_id: str, sdp: bytes, now: float) -> None:
        """A re-INVITE with a new offer (hold: ``a=sendonly``); see RequestAnswered."""
        self._send_in_dialog(self._call(call_id), "INVITE", now, body=sdp)

    def options(self, call_id: str, now: float) -> None:
        """An in-dialog OPTIONS (a keep-alive probe); see RequestAnswered."""
        self._send_in_dialog(self._call(call_id), "OPTIONS", now)

    # -- sending --------------------------------------------------------------

    def _send_in_dialog(self, call: _Call, method: str, now: float, body: bytes = b"") -> None:
        if call.state != "confirmed" or call.dialog is None:
            raise LocalProtocolError(f"no confirmed dialog for {method} on {call.call_id}")
        headers: tuple[Header, ...] = (("User-Agent", self.user_agent),)
        if body:
            headers += (("Content-Type", "application/sdp"),)
        request = call.dialog.request(
            method,
            via=self.via(self.new_branch()),
            contact=self.contact(self._user) if method == "INVITE" else None,
            headers=headers,
            body=body,
        )
        self._ours[self._txns.client(request, call.addr, now)] = call.call_id

    def _send_bye(self, call: _Call, now: float) -> None:
        call.state = "ending"
        self._send_in_dialog_bye(call, now)

    def _send_in_dialog_bye(self, call: _Call, now: float) -> None:
        assert call.dialog is not None
        bye = call.dialog.request("BYE", via=self.via(self.new_branch()))
        self._ours[self._txns.client(bye, call.addr, now)] = call.call_id

    def _end(self, call: _Call, reason: str) -> None:
        if self._calls.pop(call.call_id, None) is not None:
            self._events.append(CallEnded(call.call_id, reason))

    # -- what comes in --------------------------------------------------------

    def _on_request(self, request: Request, addr: Addr, now: float) -> None:
        method = request.method
        call = self._calls.get(request.call_id)
        if method == "INVITE" and request.to.tag is None:
            if call is not None:
                self._reply_new(request, addr, 482, now)  # a second INVITE for a live call
            else:
                self._new_invite(request, addr, now)
        elif method == "CANCEL":
            self._cancel(request, addr, now)
        elif method == "OPTIONS" and request.to.tag is None:
            self._reply_new(request, addr, 200, now, headers=self._headers())
        elif request.to.tag is None and method != "BYE":  # out of dialog: not served here
            self._reply_new(request, addr, 405, now, headers=(("Allow", ALLOW),))
        elif call is None or call.dialog is None or not call.dialog.matches(request):
            self._reply_new(request, addr, 481, now)
        elif not call.dialog.accept_remote_seq(request):
            self._reply_new(request, addr, 500, now)
        elif method == "BYE":
            self._reply_new(request, addr, 200, now)
            self._end(call, "remote_bye")
        elif method in ("INVITE", "UPDATE"):
            self._answer_offer(call, request, addr, now)
        elif method in ("OPTIONS", "INFO", "NOTIFY"):
            self._reply_new(request, addr, 200, now, headers=self._headers())
        else:
            self._reply_new(request, addr, 501, now, headers=(("Allow", ALLOW),))

    def _new_invite(self, request: Request, addr: Addr, now: float) -> None:
        txn = self._txns.server(request, addr, now)
        self._reply(txn, 100, now)
        if self._auth is not None and not self._authorized(request):
            realm = self._auth[0]
            nonce = self._hex()
            self._nonces[nonce] = None
            while len(self._nonces) > _MAX_NONCES:
                del self._nonces[next(iter(self._nonces))]
            status, name = (
                (407, "Proxy-Authenticate") if self._proxy_auth else (401, "WWW-Authenticate")
            )
            tag = self._hex(32)
            self._reply(txn, status, now, to_tag=tag, headers=((name, challenge(realm, nonce)),))
            return
        call = _Call(request.call_id, request, txn, addr, self._hex(32))
        self._calls[call.call_id] = call
        self._events.append(IncomingCall(call.call_id, addr, request.body, request))

    def _authorized(self, request: Request) -> bool:
        assert self._auth is not None
        realm, user, password = self._auth
        name = "Proxy-Authorization" if self._proxy_auth else "Authorization"
        value = request.header(name)
        if value is None:
            return False
        nonce = verify(value, method=request.method, username=user, password=password, realm=realm)
        if nonce is None or nonce not in self._nonces:
            self.auth_failures += 1
            return False
        return True

    def _cancel(self, request: Request, addr: Addr, now: float) -> None:
        invite_txn = self._txns.invite_of(request)
        if invite_txn is None:
            self._reply_new(request, addr, 481, now)
            return
        call = self._calls.get(request.call_id)
        tag = call.tag if call is not None else self._hex(32)
        self._reply_new(request, addr, 200, now, to_tag=tag)  # the INVITE's tag (RFC 3261 9.2)
        if invite_txn.state is State.PROCEEDING:
            self._reply(invite_txn, 487, now, to_tag=tag)
            if call is not None:
                self._end(call, "cancelled")

    def _answer_offer(self, call: _Call, request: Request, addr: Addr, now: float) -> None:
        assert call.dialog is not None
        call.dialog.refresh_target(request)
        txn = self._txns.server(request, addr, now)
        body = b""
        if request.body and call.session is not None:
            try:
                result = call.session.answer(Sdp.parse(request.body))
            except ParseError:
                result = NoCommonCodec("unparseable SDP")
            if isinstance(result, NoCommonCodec):
                self._reply(txn, 488, now)
                return
            body = result[0]
        elif call.session is not None and request.method == "INVITE":
            body = call.session.current
        self._reply(txn, 200, now, headers=self._headers(), body=body)

    def _on_acked(self, txn: Transaction, ack: Request, now: float) -> None:
        call = self._calls.get(ack.call_id)
        if call is None or txn is not call.txn:
            return
        call.state = "confirmed"
        self._events.append(CallConfirmed(call.call_id, ack.body))
        if call.bye_after_ack:
            self._send_bye(call, now)

    def _on_response(self, txn: Transaction, response: Response, now: float) -> None:
        call_id = self._ours.get(txn)
        call = self._calls.get(call_id) if call_id else None
        if call is None or call.dialog is None or response.status < 200:
            return
        method = txn.request.method
        if method == "BYE":
            self._end(call, "local_bye")
            return
        if method == "INVITE" and response.status < 300:
            seq = txn.request.cseq.seq
            if seq in call.acks:  # a retransmitted 2xx: ACK again, report once
                self._outbox.append((call.acks[seq], call.addr))
                return
            ack = call.dialog.request("ACK", via=self.via(self.new_branch()), seq=seq)
            call.acks[seq] = ack.serialize()
            self._outbox.append((call.acks[seq], call.addr))
        self._events.append(RequestAnswered(call.call_id, method, response.status, response.body))

    def handle_timer(self, now: float) -> None:
        super().handle_timer(now)
        self._ours = {t: c for t, c in self._ours.items() if not t.terminated}

    def _on_timeout(self, txn: Transaction, now: float) -> None:
        call_id = self._ours.pop(txn, None) or txn.request.call_id
        call = self._calls.get(call_id)
        if call is None:
            return
        method = txn.request.method
        if txn is call.txn:
            if call.state == "answered":  # our 2xx never ACKed
                self._end(call, "ack_timeout")
                self._send_in_dialog_bye(call, now)
        elif method == "BYE":
            self._end(call, "bye_unanswered")
        else:
            self._events.append(RequestAnswered(call_id, method, 408))
