"""A stand-in for Twilio's cloud on 127.0.0.1, speaking Twilio's protocols byte for byte.

- REST: the Calls resource of API version 2010-04-01 as the ``twilio`` package
  calls it: ``POST /2010-04-01/Accounts/{AccountSid}/Calls.json`` (form-encoded
  ``To``, ``From``, ``Twiml``; HTTP Basic auth with the account SID and auth
  token) answers 201 with the call resource's JSON; ``POST .../Calls/{Sid}.json``
  with ``Status=completed|canceled`` ends it; ``GET .../Calls/{Sid}.json`` reads
  it. Errors are Twilio's JSON bodies (``code``, ``message``, ``more_info``,
  ``status``): 20003 on bad credentials, 21219 on a number it treats as
  unverified, 20404 on an unknown call, 21220 on updating a call that is over.
- The call: ``To`` is "rung": a number in ``numbers`` answers (its agent speaks
  Media Streams: the stand-in opens a websocket to it as Twilio, ``connected``,
  ``start``, ``media``), a number in ``never_answer`` rings until cancelled. On
  answer the TwiML's ``<Connect><Stream url>`` is followed: a websocket signed
  with ``X-Twilio-Signature`` (HMAC-SHA1 of the URL as wss://, keyed by the auth
  token) carries ``connected`` and ``start`` with the TwiML's ``<Parameter>``\\s.
- The bridge: what each side sends is played out at real time (8000 bytes/s,
  20 ms frames, silence when nothing plays), as Twilio plays a stream's audio,
  and sent to the other side as ``media`` (track ``inbound``); each side's marks
  are echoed when their audio has played, ``clear`` empties its queue. Either
  websocket closing, or ``Status=completed`` over REST, ends the call: ``stop``
  and a close to the side(s) still there.

Runs its own event loop in a thread (the test process drives ``loadcaller run``
as a subprocess); everything it saw is in :attr:`StandIn.requests` and
:attr:`StandIn.calls`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import secrets
import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any

from aiohttp import web
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from loadcaller.errors import RemoteProtocolError
from loadcaller.timebase import now_ns
from loadcaller.twilio.caller import TwilioCallerStream
from loadcaller.twilio.messages import AgentClear, AgentMark, AgentMedia, parse_agent_message
from loadcaller.twilio.playout import Playout
from loadcaller.twilio.signature import compute_signature, signed_url

FRAME_S = 0.02
FRAME_BYTES = 160
MULAW_SILENCE = b"\xff"
API = "/2010-04-01/Accounts/{account}/Calls"


@dataclass
class Request:
    """One REST request as it arrived."""

    method: str
    path: str
    form: dict[str, str]
    authorization: str


@dataclass
class CallState:
    sid: str
    to: str
    from_: str
    twiml: str
    status: str = "queued"
    created_s: float = field(default_factory=time.monotonic)
    statuses: list[str] = field(default_factory=lambda: ["queued"])
    stream_url: str = ""
    parameters: dict[str, str] = field(default_factory=dict)
    upgrade_status: int | None = None  # our server's HTTP status when it refused the upgrade
    media_to_agent: int = 0
    media_to_stream: int = 0
    bridge: Bridge | None = None

    def set(self, status: str) -> None:
        self.status = status
        self.statuses.append(status)


def twilio_error(status: int, code: int, message: str) -> web.Response:
    return web.json_response({"code": code, "message": message,
                              "more_info": f"https://www.twilio.com/docs/errors/{code}",
                              "status": status}, status=status)


class Leg:
    """One websocket of the bridge and the playout of what its peer sends."""

    def __init__(self, ws: ClientConnection, stream: TwilioCallerStream) -> None:
        self.ws = ws
        self.stream = stream
        self.playout = Playout(now_ns())
        self.closed = False

    async def send(self, text: str) -> None:
        if not self.closed:
            try:
                await self.ws.send(text)
            except ConnectionClosed:
                self.closed = True

    async def read(self) -> None:
        """The peer's media, marks and clears into this leg's playout, until it closes."""
        try:
            async for message in self.ws:
                t = now_ns()
                msg = parse_agent_message(message)
                if isinstance(msg, AgentMedia):
                    self.playout.push(msg.payload, t)
                elif isinstance(msg, AgentMark):
                    self.playout.mark(msg.name, t)
                elif isinstance(msg, AgentClear):
                    _, marks = self.playout.cut(t)
                    for name in marks:
                        await self.send(self.stream.mark(name))
        except (ConnectionClosed, RemoteProtocolError):  # closed, or broke the protocol
            pass
        self.closed = True


class Bridge:
    """The two legs of one answered call, paced at real time."""

    def __init__(self, call: CallState, agent: Leg, ours: Leg) -> None:
        self.call, self.agent, self.ours = call, agent, ours
        self.done = asyncio.Event()

    async def run(self) -> None:
        readers = [asyncio.create_task(leg.read()) for leg in (self.agent, self.ours)]
        t_next = time.monotonic()
        try:
            while not self.done.is_set() and not (self.agent.closed or self.ours.closed):
                t_next += FRAME_S
                await asyncio.sleep(max(0.0, t_next - time.monotonic()))
                now = now_ns()
                for src, dst in ((self.agent, self.ours), (self.ours, self.agent)):
                    frames, marks = src.playout.advance(now)
                    for frame in frames:  # Twilio's frames are whole: silence is mu-law 0xFF
                        audio = frame.audio.ljust(FRAME_BYTES, MULAW_SILENCE)
                        await dst.send(dst.stream.media(base64.b64encode(audio).decode()))
                        if dst is self.agent:
                            self.call.media_to_agent += 1
                        else:
                            self.call.media_to_stream += 1
                    for name in marks:
                        await src.send(src.stream.mark(name))
        finally:
            for leg in (self.agent, self.ours):  # the call is over: stop to whoever is left
                await leg.send(leg.stream.stop())
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(2.0):
                        await leg.ws.close()
            for task in readers:
                task.cancel()
            if self.call.status == "in-progress":
                self.call.set("completed")


class StandIn:
    """The stand-in Twilio (see the module docstring)."""

    def __init__(self, *, account_sid: str, auth_token: str, numbers: dict[str, str],
                 never_answer: frozenset[str] = frozenset(),
                 unverified: frozenset[str] = frozenset(),
                 stream_token: str | None = None) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.numbers = numbers  # To -> the agent's Media Streams URL
        self.never_answer = never_answer
        self.unverified = unverified
        self.stream_token = stream_token or auth_token  # what it signs our upgrade with
        self.requests: list[Request] = []
        self.calls: dict[str, CallState] = {}
        self.live = 0
        self.max_live = 0
        self.loop = asyncio.new_event_loop()
        self.base_url = ""
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # ---- lifecycle (called from the test's thread) --------------------------------

    def start(self) -> StandIn:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), self.loop).result(10)
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self.loop).result(15)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()

    def hang_up(self, sid: str) -> None:
        """The far end (the agent's phone) hangs up: Twilio stops the stream."""
        def end() -> None:
            call = self.calls[sid]
            call.set("completed")
            if call.bridge is not None:
                call.bridge.done.set()
        self.loop.call_soon_threadsafe(end)

    async def _serve(self) -> None:
        app = web.Application()
        base = API.format(account="{account}")
        app.router.add_post(base + ".json", self._create)
        app.router.add_post(base + "/{sid}.json", self._update)
        app.router.add_get(base + "/{sid}.json", self._fetch)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}"

    async def _shutdown(self) -> None:
        for call in self.calls.values():
            if call.bridge is not None:
                call.bridge.done.set()
        for task in list(self._tasks):
            with contextlib.suppress(Exception, asyncio.CancelledError):
                async with asyncio.timeout(5.0):
                    await task
        if self._runner is not None:
            await self._runner.cleanup()

    # ---- REST ---------------------------------------------------------------------

    async def _authorized(self, request: web.Request) -> web.Response | None:
        form = {k: str(v) for k, v in (await request.post()).items()}
        auth = request.headers.get("Authorization", "")
        self.requests.append(Request(request.method, request.path, form, auth))
        expected = "Basic " + base64.b64encode(
            f"{self.account_sid}:{self.auth_token}".encode()).decode()
        if auth != expected or request.match_info["account"] != self.account_sid:
            return twilio_error(401, 20003, "Authenticate")
        return None

    def _resource(self, call: CallState) -> dict[str, Any]:
        now = formatdate(usegmt=True)
        uri = f"{API.format(account=self.account_sid)}/{call.sid}.json"
        return {
            "sid": call.sid, "account_sid": self.account_sid, "parent_call_sid": None,
            "to": call.to, "to_formatted": call.to, "from": call.from_,
            "from_formatted": call.from_, "phone_number_sid": "PN" + "0" * 32,
            "status": call.status, "direction": "outbound-api", "api_version": "2010-04-01",
            "answered_by": None, "forwarded_from": None, "caller_name": None,
            "group_sid": None, "queue_time": "0", "trunk_sid": None,
            "date_created": now, "date_updated": now, "start_time": None, "end_time": None,
            "duration": None, "price": None, "price_unit": "USD", "annotation": None,
            "uri": uri, "subresource_uris": {
                "notifications": uri.replace(".json", "/Notifications.json"),
                "recordings": uri.replace(".json", "/Recordings.json")},
        }

    async def _create(self, request: web.Request) -> web.Response:
        refused = await self._authorized(request)
        if refused is not None:
            return refused
        form = self.requests[-1].form
        to, from_, twiml = form.get("To", ""), form.get("From", ""), form.get("Twiml", "")
        if not to or not from_:
            return twilio_error(400, 21201, "No 'To' number is specified")
        if to in self.unverified or (to not in self.numbers and to not in self.never_answer):
            return twilio_error(400, 21219, f"The number {to} is unverified. Trial accounts "
                                            "may only make calls to verified numbers.")
        call = CallState("CA" + secrets.token_hex(16), to, from_, twiml)
        root = ET.fromstring(twiml)
        stream = root.find("./Connect/Stream")
        if stream is None:
            return twilio_error(400, 12100, "Document parse failure")
        call.stream_url = stream.get("url", "")
        call.parameters = {p.get("name", ""): p.get("value", "")
                           for p in stream.findall("Parameter")}
        self.calls[call.sid] = call
        task = asyncio.create_task(self._ring(call))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return web.json_response(self._resource(call), status=201)

    async def _update(self, request: web.Request) -> web.Response:
        refused = await self._authorized(request)
        if refused is not None:
            return refused
        call = self.calls.get(request.match_info["sid"])
        if call is None:
            return twilio_error(404, 20404, "The requested resource was not found")
        status = self.requests[-1].form.get("Status", "")
        if call.status not in ("queued", "ringing", "in-progress"):
            return twilio_error(400, 21220, "Call is not in-progress. Cannot redirect.")
        if status == "canceled" and call.status in ("queued", "ringing"):
            call.set("canceled")
        elif status == "completed":
            call.set("completed")
        else:
            return twilio_error(400, 21218, f"Invalid call state transition to {status!r}")
        if call.bridge is not None:
            call.bridge.done.set()
        return web.json_response(self._resource(call))

    async def _fetch(self, request: web.Request) -> web.Response:
        refused = await self._authorized(request)
        if refused is not None:
            return refused
        call = self.calls.get(request.match_info["sid"])
        if call is None:
            return twilio_error(404, 20404, "The requested resource was not found")
        return web.json_response(self._resource(call))

    # ---- the call -------------------------------------------------------------------

    async def _ring(self, call: CallState) -> None:
        await asyncio.sleep(0.05)
        if call.status != "queued":
            return
        call.set("ringing")
        if call.to in self.never_answer:
            return  # rings until cancelled
        await asyncio.sleep(0.2)
        if call.status != "ringing":
            return
        call.set("in-progress")
        self.live += 1
        self.max_live = max(self.max_live, self.live)
        try:
            await self._bridge(call)
        finally:
            self.live -= 1
            if call.status == "in-progress":
                call.set("completed")

    async def _bridge(self, call: CallState) -> None:
        to_agent = TwilioCallerStream(account_sid=self.account_sid, call_sid=call.sid)
        to_us = TwilioCallerStream(account_sid=self.account_sid, call_sid=call.sid,
                                   custom_parameters=call.parameters)
        signature = compute_signature(self.stream_token, signed_url(call.stream_url))
        async with contextlib.AsyncExitStack() as stack:
            agent_ws = await stack.enter_async_context(connect(self.numbers[call.to]))
            try:
                our_ws = await stack.enter_async_context(connect(
                    call.stream_url, additional_headers={"X-Twilio-Signature": signature}))
            except InvalidStatus as exc:  # the stream could not start: Twilio hangs up
                call.upgrade_status = exc.response.status_code
                await agent_ws.send(to_agent.connected())
                await agent_ws.send(to_agent.start())
                await agent_ws.send(to_agent.stop())
                return
            for ws, stream in ((agent_ws, to_agent), (our_ws, to_us)):
                await ws.send(stream.connected())
                await ws.send(stream.start())
            call.bridge = Bridge(call, Leg(agent_ws, to_agent), Leg(our_ws, to_us))
            if call.status == "in-progress":
                await call.bridge.run()
