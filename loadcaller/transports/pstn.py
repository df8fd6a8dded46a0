"""Real phone calls through Twilio (``target.transport: pstn``).

Each call is created over Twilio's REST API (:mod:`loadcaller.twilio.rest`)
with TwiML that connects its audio back to us: ``<Connect><Stream
url=public_url>`` with the call's ``loadcaller_call_id`` as a custom parameter.
Twilio dials ``to`` (the agent's phone number) and opens a websocket to
``public_url`` (a tunnel to ``listen``), where our media-stream server
(:mod:`loadcaller.twilio.streamserver`) hands it to the waiting call. From then
on loadcaller is on the agent's side of Twilio's protocol: Twilio's ``media``
is the agent's voice as it comes down the phone line (played out at real time
by Twilio; stamped on arrival and queued in a :class:`Playout`), and our
``media`` is the caller's speech, which Twilio plays into the call.

Guard rails (:mod:`loadcaller.twilio.guard`), because every call costs money
and rings a phone: ``to`` must be on ``allow`` (checked when the profile
loads), at most ``max_concurrent`` calls at once (more wait for a slot), calls
created at most ``calls_per_second`` (more wait their turn), and no call is
placed once ``max_minutes`` of calls are spent in the run (those end as a local
error, never dialled). ``per_process`` keeps a run's PSTN calls in one process,
so these figures are the run's.

A call that never brings its stream within ``setup_timeout`` is read back over
REST (busy, no-answer, failed, ...), said in the ``failed_setup`` reason, and
cancelled if it still rings; every call placed is ended over REST at hangup.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator
from websockets.asyncio.server import ServerConnection
from websockets.protocol import State

from loadcaller.config import Duration, PositiveDuration, Secret
from loadcaller.errors import LocalSetupError, SetupFailed
from loadcaller.media.frames import SAMPLE_RATE, PlayedFrame
from loadcaller.media.outcomes import CallOutcome
from loadcaller.timebase import now_ns
from loadcaller.transports.base import CallTransport, Target, on_engine_close
from loadcaller.twilio import messages as tw
from loadcaller.twilio.guard import ALLOW_ENTRY, E164, CallBudget, allowed
from loadcaller.twilio.playout import Playout, PlayoutOverflow
from loadcaller.twilio.rest import ENDING_UPDATE, TWILIO_API_BASE, TwilioRest, stream_twiml
from loadcaller.twilio.streamserver import StreamWaiter, close_servers, stream_server

log = logging.getLogger(__name__)

# No per-process figure limits PSTN calls (Twilio's concurrency does, far below
# this): the number keeps a run's calls, and so its guard rails, in one process.
CALLS_PER_PROCESS = 100_000
_MEDIA = b'{"event":"media","streamSid":"%s","media":{"payload":"%s"}}'


class PstnTarget(Target):
    """An agent reached by a real phone call placed through Twilio."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    transport: Literal["pstn"] = "pstn"
    url: str = Field("", description="set from `to` (tel:+E164); not given in profiles")
    to: str = Field(description="the agent's phone number, E.164 (+14155550100)")
    from_number: str = Field(alias="from", description="your Twilio number, E.164")
    account_sid: str = Field(description="Twilio account SID (AC...)")
    auth_token: Secret = Field(description="Twilio auth token (${VAR} or {file: PATH})")
    public_url: str = Field(description="wss:// URL through which Twilio reaches `listen` "
                                        "(a tunnel)")
    listen: str = Field("127.0.0.1:8765", description="host:port our media-stream server binds")
    allow: list[str] = Field(description="E.164 numbers or prefixes ending in * that may be "
                                         "called; `to` must match one")
    max_concurrent: int = Field(5, ge=1, description="PSTN calls at once (more wait)")
    max_minutes: float = Field(10.0, gt=0, description="total call minutes per run; calls "
                                                       "past it are not placed")
    calls_per_second: float = Field(1.0, gt=0, description="call creations per second "
                                                           "(Twilio's default: 1)")
    setup_timeout: PositiveDuration = Field(60.0, description="ringing: from the REST "
                                                              "request to Twilio's stream")
    max_playout_queue: Duration = Field(60.0, gt=0)
    api_base: str = Field(TWILIO_API_BASE, description="Twilio's REST API base URL")

    @model_validator(mode="before")
    @classmethod
    def _url_from_to(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("url") and isinstance(data.get("to"), str):
            return {**data, "url": f"tel:{data['to']}"}
        return data

    @field_validator("to", "from_number")
    @classmethod
    def _e164(cls, v: str) -> str:
        if not E164.match(v):
            raise ValueError(f"{v!r} is not an E.164 phone number (+ and up to 15 digits)")
        return v

    @field_validator("account_sid")
    @classmethod
    def _sid(cls, v: str) -> str:
        if not re.fullmatch(r"AC[0-9a-fA-F]{32}", v):
            raise ValueError("an account SID is AC and 32 hex digits (Twilio console, "
                             "Account Info); the auth token goes in auth_token")
        return v

    @field_validator("public_url")
    @classmethod
    def _ws_url(cls, v: str) -> str:
        if not re.match(r"^wss?://[^/\s]+", v):
            raise ValueError(f"{v!r} is not a wss:// URL")
        return v

    @field_validator("listen")
    @classmethod
    def _host_port(cls, v: str) -> str:
        host, _, port = v.rpartition(":")
        if not host or not port.isdigit() or not 0 <= int(port) < 65536:
            raise ValueError(f"{v!r} is not host:port")
        return v

    @field_validator("api_base")
    @classmethod
    def _http_url(cls, v: str) -> str:
        if not re.match(r"^https?://[^/\s]+$", v.rstrip("/")):
            raise ValueError(f"{v!r} is not an http(s):// base URL")
        return v

    @model_validator(mode="after")
    def _allowed(self) -> PstnTarget:
        if not self.allow:
            raise ValueError("target.allow is empty: list the numbers (or prefixes ending in "
                             "*) this run may call")
        bad = [a for a in self.allow if not ALLOW_ENTRY.match(a)]
        if bad:
            raise ValueError(f"target.allow entries must be E.164 numbers or prefixes ending "
                             f"in *: {', '.join(bad)}")
        if not allowed(self.to, self.allow):
            raise ValueError(f"target.to {self.to} is not in target.allow "
                             f"({', '.join(self.allow)}): refusing to call it")
        return self

    def new_transport(self, *, call_id: str) -> PstnTransport:
        return PstnTransport(self, call_id=call_id)

    def per_process(self) -> tuple[int, str]:
        return CALLS_PER_PROCESS, "PSTN"


@dataclass(slots=True)
class _Account:
    """What one account's calls share in this process: REST client, rate, minutes, slots."""

    rest: TwilioRest
    budget: CallBudget
    slots: asyncio.Semaphore
    users: set[str] = field(default_factory=set)


_ACCOUNTS: dict[tuple[int, str, str], _Account] = {}


def _account(target: PstnTarget) -> _Account:
    key = (id(asyncio.get_running_loop()), target.account_sid, target.api_base)
    acct = _ACCOUNTS.get(key)
    if acct is None:
        acct = _ACCOUNTS[key] = _Account(
            TwilioRest(account_sid=target.account_sid,
                       auth_token=target.auth_token.get_secret_value(),
                       api_base=target.api_base),
            CallBudget(target.calls_per_second, target.max_minutes),
            asyncio.Semaphore(target.max_concurrent))
        on_engine_close(_close_shared)
    return acct


async def _close_shared() -> None:
    loop = id(asyncio.get_running_loop())
    for key in [k for k in _ACCOUNTS if k[0] == loop]:
        await _ACCOUNTS.pop(key).rest.close()
    await close_servers()


class PstnTransport(CallTransport):
    """One real phone call through Twilio (see the module docstring)."""

    name = "pstn"

    def __init__(self, target: PstnTarget, *, call_id: str) -> None:
        super().__init__()
        self.target = target
        self.call_id = call_id
        self.call_sid = ""
        self.stream_sid = b""
        self.ws: ServerConnection | None = None
        self.playout: Playout | None = None
        self._acct: _Account | None = None
        self._streamed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting_on: dict[str, StreamWaiter] | None = None
        self._slot = False
        self._counted = False
        self._rest_ended = False
        self._stopping = False

    @property
    def remote_id(self) -> str:
        return self.call_sid

    # ---- setup ---------------------------------------------------------------

    async def connect(self) -> None:
        acct = self._acct = _account(self.target)
        self._refuse_past_budget(acct)
        await acct.slots.acquire()
        self._slot = True
        try:
            await self._place(acct)
        except (SetupFailed, LocalSetupError):
            await self._end_over_rest("canceled")
            self._release()
            raise

    def _refuse_past_budget(self, acct: _Account) -> None:
        why = acct.budget.refusal(now_ns())
        if why is not None:
            raise LocalSetupError(why)

    async def _place(self, acct: _Account) -> None:
        t = self.target
        self._refuse_past_budget(acct)  # again: the slot may have come minutes later
        wait = acct.budget.next_turn(now_ns())
        if wait > 0:
            await asyncio.sleep(wait / 1e9)
        host, _, port = t.listen.rpartition(":")
        try:
            server = await stream_server(host.strip("[]"), int(port))
        except OSError as exc:
            raise LocalSetupError(f"local: cannot listen on {t.listen} for Twilio's media "
                                  f"streams (target.listen): {exc}") from None
        waiter = StreamWaiter(t.auth_token.get_secret_value(), t.public_url,
                              self._on_start, self._on_message, self._on_closed)
        server.waiting[self.call_id] = waiter
        self._waiting_on = server.waiting
        acct.budget.started(self.call_id, now_ns())
        self._counted = True
        self.call_sid = await acct.rest.create(
            to=t.to, from_=t.from_number, twiml=stream_twiml(t.public_url, self.call_id))
        try:
            async with asyncio.timeout(t.setup_timeout):
                await asyncio.shield(self._streamed)
        except TimeoutError:
            raise SetupFailed(await self._unanswered(acct)) from None

    async def _unanswered(self, acct: _Account) -> str:
        """Why no stream came: the call's status over REST; ended if it still rings."""
        self._unwait()
        waited = f"no media stream from Twilio within {self.target.setup_timeout:g}s"
        try:
            status = await acct.rest.status(self.call_sid)
        except Exception as exc:  # the reason still says what we know
            return f"{waited}; call {self.call_sid} status unknown ({type(exc).__name__})"
        update = ENDING_UPDATE.get(status)
        if update is not None:
            await self._end_over_rest(update)
            return f"{waited}: call {self.call_sid} was {status} ({update} by loadcaller)"
        self._rest_ended = True  # busy, no-answer, failed, canceled: over already
        return f"{waited}: call {self.call_sid} ended {status}"

    def _on_start(self, ws: ServerConnection, start: tw.Start, t: int) -> None:
        """Twilio's stream for this call arrived (its ``start`` received at ``t``)."""
        self.ws = ws
        self.stream_sid = start.stream_sid.encode()
        self.answered_ns = t
        self.playout = Playout(t, max_bytes=round(self.target.max_playout_queue * SAMPLE_RATE))
        if not self._streamed.done():
            self._streamed.set_result(None)

    # ---- media clock side ----------------------------------------------------

    def send_audio(self, frame: bytes) -> None:
        ws = self.ws
        if ws is None or self._stopping or ws.protocol.state is not State.OPEN:
            return
        ws.protocol.send_text(_MEDIA % (self.stream_sid, tw.b64_bytes(frame)))
        ws.send_data()  # synchronous: one transport.write, no coroutine per frame

    def heard(self, now: int) -> list[PlayedFrame]:
        if self.playout is None:
            return []
        frames, _ = self.playout.advance(now)
        return frames

    async def hangup(self) -> None:
        """End the call over REST (``completed``) and close Twilio's websocket."""
        self._stopping = True
        await self._end_over_rest("completed" if self.ws is not None else "canceled")
        ws = self.ws
        if ws is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2.0):
                    await ws.close()
        self._release()
        self._end(CallOutcome.COMPLETED, "caller hung up")

    # ---- receive path --------------------------------------------------------

    def _on_message(self, msg: tw.TwilioMessage, t: int) -> None:
        if isinstance(msg, tw.Media):
            if self.playout is not None and msg.track == "inbound":
                try:
                    self.playout.push(msg.payload, t)
                except PlayoutOverflow as exc:
                    self._end(CallOutcome.ERROR, str(exc))
        elif isinstance(msg, tw.Stop) and not self._stopping:
            self._rest_ended = True
            self._end(CallOutcome.AGENT_HANGUP, "Twilio sent stop: the call ended on the "
                                                "phone side")

    def _on_closed(self, code: int | None, reason: str) -> None:
        if self._stopping:
            self._end(CallOutcome.COMPLETED, "caller hung up")
        elif code in (1000, 1001):
            self._end(CallOutcome.AGENT_HANGUP, f"Twilio closed the media stream ({code})")
        elif code is None:
            self._end(CallOutcome.DROPPED, "media stream lost: closed without a close frame")
        else:
            self._end(CallOutcome.DROPPED,
                      f"Twilio closed the media stream with code {code} {reason}".strip())

    # ---- plumbing ------------------------------------------------------------

    async def _end_over_rest(self, status: str) -> None:
        """Make sure a call we placed does not linger (best effort, logged)."""
        acct = self._acct
        if acct is None or not self.call_sid or self._rest_ended:
            return
        self._rest_ended = True
        try:
            await acct.rest.end(self.call_sid, status)
        except Exception as exc:
            log.warning("call %s: ending it over Twilio's REST API failed: %s",
                        self.call_sid, type(exc).__name__)

    def _unwait(self) -> None:
        if self._waiting_on is not None:
            self._waiting_on.pop(self.call_id, None)
            self._waiting_on = None

    def _release(self) -> None:
        """Give back the slot and stop the minutes clock (once)."""
        self._unwait()
        acct = self._acct
        if acct is None:
            return
        if self._counted:
            self._counted = False
            acct.budget.ended(self.call_id, now_ns())
        if self._slot:
            self._slot = False
            acct.slots.release()
