"""SIP transactions (RFC 3261 section 17, with RFC 6026's Accepted state).

How this works
--------------
A transaction is one request and its responses. There are four kinds (client
or server, INVITE or not), and each is the table below: ``(state, input) ->
(next state, actions)``. Inputs are what happened (a 1xx/2xx/3xx-6xx arrived,
the request arrived again, an ACK arrived, our core sent a response, a timer
fired); actions are what the transaction does about it (send, resend, ACK,
hand a response up, report a timeout or an ACK). A pair missing from a table
is absorbed: that is how duplicates and late messages die.

Timers belong to states: ``_TIMERS[kind][state]`` lists the RFC timers running
in a state. When the state changes, timers the new state does not list stop
and the ones it adds start, so ``TRYING -> PROCEEDING`` keeps E and F running
while ``CALLING -> PROCEEDING`` stops A and B. A retransmit timer (A, E, G)
re-arms itself with back-off (A doubles without limit, E and G cap at T2).
Over TCP/TLS retransmit timers never start and the wait timers (D, I, J, K)
are zero, as the RFC says.

Two liberties, both inside RFC behaviour: the retransmission of a 2xx to
INVITE until its ACK (a TU duty in RFC 3261 13.3.1.4) lives in the server
INVITE table as state ACCEPTED with timers G and H, so one table shows it; and
the client INVITE table hands retransmitted 2xx up in ACCEPTED (RFC 6026 7.2)
so the call re-sends its ACK.

Timers (seconds): T1 0.5, T2 4, T4 5; A=T1 doubling, B=F=H=L=M=64*T1, D=32,
E=G=T1 doubling to T2, I=K=T4, J=64*T1.
"""

from __future__ import annotations

from enum import Enum, auto

from loadcaller.sip.headers import BRANCH_COOKIE
from loadcaller.sip.message import Request, Response

__all__ = ["T1", "T2", "T4", "Addr", "Kind", "State", "Transaction", "Transactions", "ack_for"]

T1, T2, T4 = 0.5, 4.0, 5.0
Addr = tuple[str, int]
Outbox = list[tuple[bytes, Addr]]


class Kind(Enum):
    INVITE_CLIENT = auto()
    NON_INVITE_CLIENT = auto()
    INVITE_SERVER = auto()
    NON_INVITE_SERVER = auto()


class State(Enum):
    CALLING = auto()
    TRYING = auto()
    PROCEEDING = auto()
    COMPLETED = auto()
    ACCEPTED = auto()
    CONFIRMED = auto()
    TERMINATED = auto()


class In(Enum):
    RECV_1XX = auto()
    RECV_2XX = auto()
    RECV_FINAL = auto()  # 300-699
    RECV_REQUEST = auto()  # the request again (a retransmission)
    RECV_ACK = auto()
    SEND_1XX = auto()
    SEND_2XX = auto()
    SEND_FINAL = auto()
    A = auto()
    B = auto()
    D = auto()
    E = auto()
    F = auto()
    G = auto()
    H = auto()
    I = auto()  # noqa: E741 - the RFC's name
    J = auto()
    K = auto()
    M = auto()


class Do(Enum):
    SEND = auto()  # send the response the core gave us (server)
    RESEND = auto()  # send the request (client) or last response (server) again
    SEND_ACK = auto()  # ACK a 3xx-6xx to INVITE (client)
    REARM = auto()  # re-arm the retransmit timer that fired, with back-off
    REARM_T2 = auto()  # ... at T2 (non-INVITE client, Proceeding)
    DELIVER = auto()  # hand the response to the core
    TIMEOUT = auto()  # tell the core the transaction timed out
    ACKED = auto()  # tell the core the ACK for our 2xx arrived


S, I_ = State, In
Row = tuple[State, tuple[Do, ...]]
_TABLES: dict[Kind, dict[tuple[State, In], Row]] = {
    Kind.INVITE_CLIENT: {  # RFC 3261 figure 5 + RFC 6026 figure 5
        (S.CALLING, I_.A): (S.CALLING, (Do.RESEND, Do.REARM)),
        (S.CALLING, I_.B): (S.TERMINATED, (Do.TIMEOUT,)),
        (S.CALLING, I_.RECV_1XX): (S.PROCEEDING, (Do.DELIVER,)),
        (S.CALLING, I_.RECV_2XX): (S.ACCEPTED, (Do.DELIVER,)),
        (S.CALLING, I_.RECV_FINAL): (S.COMPLETED, (Do.DELIVER, Do.SEND_ACK)),
        (S.PROCEEDING, I_.RECV_1XX): (S.PROCEEDING, (Do.DELIVER,)),
        (S.PROCEEDING, I_.RECV_2XX): (S.ACCEPTED, (Do.DELIVER,)),
        (S.PROCEEDING, I_.RECV_FINAL): (S.COMPLETED, (Do.DELIVER, Do.SEND_ACK)),
        (S.ACCEPTED, I_.RECV_2XX): (S.ACCEPTED, (Do.DELIVER,)),
        (S.ACCEPTED, I_.M): (S.TERMINATED, ()),
        (S.COMPLETED, I_.RECV_FINAL): (S.COMPLETED, (Do.SEND_ACK,)),
        (S.COMPLETED, I_.D): (S.TERMINATED, ()),
    },
    Kind.NON_INVITE_CLIENT: {  # RFC 3261 figure 6
        (S.TRYING, I_.E): (S.TRYING, (Do.RESEND, Do.REARM)),
        (S.TRYING, I_.F): (S.TERMINATED, (Do.TIMEOUT,)),
        (S.TRYING, I_.RECV_1XX): (S.PROCEEDING, (Do.DELIVER,)),
        (S.TRYING, I_.RECV_2XX): (S.COMPLETED, (Do.DELIVER,)),
        (S.TRYING, I_.RECV_FINAL): (S.COMPLETED, (Do.DELIVER,)),
        (S.PROCEEDING, I_.E): (S.PROCEEDING, (Do.RESEND, Do.REARM_T2)),
        (S.PROCEEDING, I_.F): (S.TERMINATED, (Do.TIMEOUT,)),
        (S.PROCEEDING, I_.RECV_1XX): (S.PROCEEDING, (Do.DELIVER,)),
        (S.PROCEEDING, I_.RECV_2XX): (S.COMPLETED, (Do.DELIVER,)),
        (S.PROCEEDING, I_.RECV_FINAL): (S.COMPLETED, (Do.DELIVER,)),
        (S.COMPLETED, I_.K): (S.TERMINATED, ()),
    },
    Kind.INVITE_SERVER: {  # RFC 3261 figure 7 + RFC 6026 figure 7
        (S.PROCEEDING, I_.RECV_REQUEST): (S.PROCEEDING, (Do.RESEND,)),
        (S.PROCEEDING, I_.SEND_1XX): (S.PROCEEDING, (Do.SEND,)),
        (S.PROCEEDING, I_.SEND_2XX): (S.ACCEPTED, (Do.SEND,)),
        (S.PROCEEDING, I_.SEND_FINAL): (S.COMPLETED, (Do.SEND,)),
        (S.ACCEPTED, I_.RECV_REQUEST): (S.ACCEPTED, (Do.RESEND,)),
        (S.ACCEPTED, I_.G): (S.ACCEPTED, (Do.RESEND, Do.REARM)),
        (S.ACCEPTED, I_.RECV_ACK): (S.CONFIRMED, (Do.ACKED,)),
        (S.ACCEPTED, I_.H): (S.TERMINATED, (Do.TIMEOUT,)),
        (S.COMPLETED, I_.RECV_REQUEST): (S.COMPLETED, (Do.RESEND,)),
        (S.COMPLETED, I_.G): (S.COMPLETED, (Do.RESEND, Do.REARM)),
        (S.COMPLETED, I_.RECV_ACK): (S.CONFIRMED, ()),
        (S.COMPLETED, I_.H): (S.TERMINATED, (Do.TIMEOUT,)),
        (S.CONFIRMED, I_.I): (S.TERMINATED, ()),
    },
    Kind.NON_INVITE_SERVER: {  # RFC 3261 figure 8
        (S.TRYING, I_.SEND_1XX): (S.PROCEEDING, (Do.SEND,)),
        (S.TRYING, I_.SEND_2XX): (S.COMPLETED, (Do.SEND,)),
        (S.TRYING, I_.SEND_FINAL): (S.COMPLETED, (Do.SEND,)),
        (S.PROCEEDING, I_.RECV_REQUEST): (S.PROCEEDING, (Do.RESEND,)),
        (S.PROCEEDING, I_.SEND_1XX): (S.PROCEEDING, (Do.SEND,)),
        (S.PROCEEDING, I_.SEND_2XX): (S.COMPLETED, (Do.SEND,)),
        (S.PROCEEDING, I_.SEND_FINAL): (S.COMPLETED, (Do.SEND,)),
        (S.COMPLETED, I_.RECV_REQUEST): (S.COMPLETED, (Do.RESEND,)),
        (S.COMPLETED, I_.J): (S.TERMINATED, ()),
    },
}
_TIMERS: dict[Kind, dict[State, tuple[In, ...]]] = {
    Kind.INVITE_CLIENT: {S.CALLING: (I_.A, I_.B), S.COMPLETED: (I_.D,), S.ACCEPTED: (I_.M,)},
    Kind.NON_INVITE_CLIENT: {
        S.TRYING: (I_.E, I_.F), S.PROCEEDING: (I_.E, I_.F), S.COMPLETED: (I_.K,),
    },
    Kind.INVITE_SERVER: {S.COMPLETED: (I_.G, I_.H), S.ACCEPTED: (I_.G, I_.H), S.CONFIRMED: (I_.I,)},
    Kind.NON_INVITE_SERVER: {S.COMPLETED: (I_.J,)},
}  # fmt: skip
_FIRST_STATE = {
    Kind.INVITE_CLIENT: S.CALLING,
    Kind.NON_INVITE_CLIENT: S.TRYING,
    Kind.INVITE_SERVER: S.PROCEEDING,
    Kind.NON_INVITE_SERVER: S.TRYING,
}
_RETRANSMIT = (I_.A, I_.E, I_.G)


def _duration(timer: In, reliable: bool) -> float | None:
    """How long a timer runs from its start; None: it does not run on this transport."""
    if timer in _RETRANSMIT:
        return None if reliable else T1
    if timer in (I_.B, I_.F, I_.H, I_.M):
        return 64 * T1
    if reliable:
        return 0.0
    return {I_.D: 32.0, I_.I: T4, I_.K: T4, I_.J: 64 * T1}[timer]


def _status_input(status: int, *, sent: bool) -> In:
    if status < 200:
        return In.SEND_1XX if sent else In.RECV_1XX
    if status < 300:
        return In.SEND_2XX if sent else In.RECV_2XX
    return In.SEND_FINAL if sent else In.RECV_FINAL


def ack_for(invite: Request, response: Response) -> Request:
    """The ACK of a 3xx-6xx, sent within the INVITE transaction (RFC 3261 17.1.1.3)."""
    headers: list[tuple[str, str]] = [("Via", invite.header_list("Via")[0])]
    headers += [("Route", r) for r in invite.header_list("Route")]
    headers += [
        ("Max-Forwards", "70"),
        ("From", invite.header("From") or ""),
        ("To", response.header("To") or ""),
        ("Call-ID", invite.call_id),
        ("CSeq", f"{invite.cseq.seq} ACK"),
    ]
    return Request(method="ACK", uri=invite.uri, headers=tuple(headers))


def server_key(request: Request) -> tuple[str, ...]:
    """RFC 3261 17.2.3: branch + sent-by + method, ACK and CANCEL as INVITE's peers."""
    via = request.top_via
    method = "INVITE" if request.method == "ACK" else request.method
    branch = via.branch or ""
    if branch.startswith(BRANCH_COOKIE):
        return (branch, f"{via.host}:{via.port}", method)
    # RFC 2543 peer: no unique branch; fall back on the dialog-ish identifiers.
    cseq = request.cseq.seq
    return (request.call_id, request.from_.tag or "", str(cseq), str(via), method)


class Transaction:
    """One transaction: a kind, a state from its table, and its running timers."""

    def __init__(
        self, kind: Kind, request: Request, addr: Addr, *, reliable: bool, outbox: Outbox
    ) -> None:
        self.kind = kind
        self.request = request
        self.addr = addr
        self.reliable = reliable
        self.state = _FIRST_STATE[kind]
        self.last_response: Response | None = None
        self._outbox = outbox
        self._resend: bytes | None = None  # request (client) or last response (server)
        self._ack: bytes | None = None
        self._deadlines: dict[In, float] = {}
        self._intervals: dict[In, float] = {}
        self._table = _TABLES[kind]

    @property
    def is_client(self) -> bool:
        return self.kind in (Kind.INVITE_CLIENT, Kind.NON_INVITE_CLIENT)

    @property
    def deadline(self) -> float | None:
        return min(self._deadlines.values(), default=None)

    @property
    def terminated(self) -> bool:
        return self.state is S.TERMINATED

    def start(self, now: float) -> None:
        """Send the request (client) and start the first state's timers."""
        if self.is_client:
            self._resend = self.request.serialize()
            self._outbox.append((self._resend, self.addr))
        self._enter(self.state, None, now)

    def receive_response(self, response: Response, now: float) -> bool:
        """A response to our request arrived: True if the core should see it."""
        self.last_response = response
        return Do.DELIVER in self._step(_status_input(response.status, sent=False), now, response)

    def receive_request(self, request: Request, now: float) -> bool:
        """Our request arrived again, or its ACK: True if it acknowledged our 2xx."""
        inp = In.RECV_ACK if request.method == "ACK" else In.RECV_REQUEST
        return Do.ACKED in self._step(inp, now, None)

    def send_response(self, response: Response, now: float) -> None:
        """Our core answers the request (server transactions)."""
        self._step(_status_input(response.status, sent=True), now, response)

    def handle_timer(self, now: float) -> bool:
        """Fire every timer due by ``now``: True if the transaction timed out."""
        timed_out = False
        while True:
            due = [(t, when) for t, when in self._deadlines.items() if when <= now]
            if not due:
                return timed_out
            timer, when = min(due, key=lambda item: item[1])
            del self._deadlines[timer]
            timed_out |= Do.TIMEOUT in self._step(timer, when, None, now=now)

    def _step(
        self, inp: In, at: float, message: Response | None, *, now: float | None = None
    ) -> tuple[Do, ...]:
        row = self._table.get((self.state, inp))
        if row is None:
            return ()
        new_state, actions = row
        now = at if now is None else now
        for action in actions:
            if action is Do.SEND and message is not None:
                self.last_response = message
                self._resend = message.serialize()
                self._outbox.append((self._resend, self.addr))
            elif action is Do.RESEND and self._resend is not None:
                self._outbox.append((self._resend, self.addr))
            elif action is Do.SEND_ACK and message is not None:
                self._ack = ack_for(self.request, message).serialize()
                self._outbox.append((self._ack, self.addr))
            elif action is Do.SEND_ACK and self._ack is not None:
                self._outbox.append((self._ack, self.addr))
            elif action in (Do.REARM, Do.REARM_T2):
                self._rearm(inp, at, now, action)
        if new_state is not self.state:
            self._enter(new_state, self.state, now)
        return actions

    def _rearm(self, timer: In, fired_at: float, now: float, action: Do) -> None:
        interval = self._intervals.get(timer, T1)
        if action is Do.REARM_T2:
            interval = T2
        elif timer is In.A:
            interval *= 2
        else:
            interval = min(interval * 2, T2)
        self._intervals[timer] = interval
        # Scheduled from when it was due, not when we noticed: no drift on a late tick.
        self._deadlines[timer] = max(fired_at + interval, now)

    def _enter(self, state: State, old: State | None, now: float) -> None:
        timers = _TIMERS[self.kind]
        before = set(timers.get(old, ())) if old is not None else set()
        after = timers.get(state, ())
        self.state = state
        for timer in before - set(after):
            self._deadlines.pop(timer, None)
            self._intervals.pop(timer, None)
        for timer in after:
            if timer in before:
                continue
            duration = _duration(timer, self.reliable)
            if duration is not None:
                self._deadlines[timer] = now + duration
                self._intervals[timer] = duration


class Transactions:
    """The transactions of one endpoint, matched by RFC 3261 17.1.3 and 17.2.3 keys."""

    def __init__(self, outbox: Outbox, *, reliable: bool) -> None:
        self._outbox = outbox
        self.reliable = reliable
        self._client: dict[tuple[str, str], Transaction] = {}
        self._server: dict[tuple[str, ...], Transaction] = {}

    def __len__(self) -> int:
        return len(self._client) + len(self._server)

    def client(self, request: Request, addr: Addr, now: float) -> Transaction:
        """Create a client transaction and send its request."""
        kind = Kind.INVITE_CLIENT if request.method == "INVITE" else Kind.NON_INVITE_CLIENT
        txn = Transaction(kind, request, addr, reliable=self.reliable, outbox=self._outbox)
        self._client[(request.top_via.branch or "", request.method)] = txn
        txn.start(now)
        return txn

    def server(self, request: Request, addr: Addr, now: float) -> Transaction:
        """Create a server transaction for a new request."""
        kind = Kind.INVITE_SERVER if request.method == "INVITE" else Kind.NON_INVITE_SERVER
        txn = Transaction(kind, request, addr, reliable=self.reliable, outbox=self._outbox)
        self._server[server_key(request)] = txn
        txn.start(now)
        return txn

    def for_response(self, response: Response) -> Transaction | None:
        return self._client.get((response.top_via.branch or "", response.cseq.method))

    def for_request(self, request: Request) -> Transaction | None:
        """The server transaction of a retransmission, or of an ACK to a non-2xx."""
        return self._server.get(server_key(request))

    def invite_of(self, cancel: Request) -> Transaction | None:
        """The INVITE server transaction a CANCEL targets."""
        return self._server.get((*server_key(cancel)[:-1], "INVITE"))

    def accepted_invite(self, call_id: str, seq: int) -> Transaction | None:
        """The server INVITE whose 2xx an ACK (on its own branch) acknowledges."""
        for txn in self._server.values():
            r = txn.request
            if r.method == "INVITE" and r.call_id == call_id and r.cseq.seq == seq:
                return txn
        return None

    def get_timer(self) -> float | None:
        deadlines = [t.deadline for t in (*self._client.values(), *self._server.values())]
        return min((d for d in deadlines if d is not None), default=None)

    def handle_timer(self, now: float) -> list[Transaction]:
        """Fire due timers; the transactions that timed out (then forgotten)."""
        timed_out = []
        for txn in [*self._client.values(), *self._server.values()]:
            deadline = txn.deadline
            if deadline is not None and deadline <= now and txn.handle_timer(now):
                timed_out.append(txn)
        self.sweep()
        return timed_out

    def sweep(self) -> None:
        """Forget terminated transactions."""
        self._client = {k: t for k, t in self._client.items() if not t.terminated}
        self._server = {k: t for k, t in self._server.items() if not t.terminated}
