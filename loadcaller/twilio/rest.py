"""Twilio's REST API for PSTN calls, through the ``twilio`` package.

:class:`TwilioRest` creates a call (``calls.create_async`` with inline TwiML
that connects the call's audio to our media-stream server), reads its status
and ends it. Requests go through :class:`BaseUrlHttpClient`, the package's
aiohttp client with the request URL moved from ``https://api.twilio.com`` to
``api_base`` (tests point it at a stand-in on 127.0.0.1).

Errors come back as :class:`~loadcaller.errors.SetupFailed` with Twilio's own
message and code (``Twilio refused the call: ... (Twilio error 21219, HTTP
400)``); the auth token is never in a message or a log line (the package logs
requests at INFO; its logger is held at WARNING).
"""

from __future__ import annotations

import asyncio
import base64
import logging
from typing import Any
from xml.sax.saxutils import quoteattr

from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from loadcaller.errors import SetupFailed

TWILIO_API_BASE = "https://api.twilio.com"
REQUEST_TIMEOUT_S = 15.0
CALL_ID_PARAMETER = "loadcaller_call_id"
# statuses a call can still leave, by the update that ends it
ENDING_UPDATE = {"queued": "canceled", "ringing": "canceled", "in-progress": "completed"}

logging.getLogger("twilio.async_http_client").setLevel(logging.WARNING)
logging.getLogger("twilio.http_client").setLevel(logging.WARNING)


def stream_twiml(public_url: str, call_id: str) -> str:
    """The TwiML that connects a call's audio to our media-stream server."""
    return ("<Response><Connect>"
            f"<Stream url={quoteattr(public_url)}>"
            f"<Parameter name={quoteattr(CALL_ID_PARAMETER)} value={quoteattr(call_id)}/>"
            "</Stream></Connect></Response>")


class BaseUrlHttpClient(AsyncTwilioHttpClient):
    """The package's aiohttp client, sending to ``api_base`` instead of Twilio's host."""

    def __init__(self, api_base: str) -> None:
        super().__init__(pool_connections=True)
        self.api_base = api_base.rstrip("/")

    async def request(self, method: str, url: str, params: dict[str, object] | None = None,
                      data: dict[str, object] | None = None,
                      headers: dict[str, str] | None = None,
                      auth: tuple[str, str] | None = None, **kwargs: Any) -> Response:
        if self.api_base != TWILIO_API_BASE and url.startswith(TWILIO_API_BASE):
            url = self.api_base + url[len(TWILIO_API_BASE):]
        if auth is not None:  # as a header: aiohttp deprecates its auth= parameter
            basic = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            headers = {**(headers or {}), "Authorization": f"Basic {basic}"}
        response: Response = await super().request(method, url, params, data, headers, None,
                                                   **kwargs)
        return response


def refusal(exc: TwilioRestException, what: str) -> str:
    """One line for a Twilio REST error: its message, code and HTTP status."""
    code = f"Twilio error {exc.code}, " if exc.code else ""
    message = str(exc.msg)
    if message.startswith("Unable to "):  # the package's "Unable to create record: ..."
        message = message.partition(": ")[2] or message
    return f"{what}: {message} ({code}HTTP {exc.status})"


class TwilioRest:
    """One account's REST client (one per process and account; :meth:`close` at the end)."""

    def __init__(self, *, account_sid: str, auth_token: str, api_base: str) -> None:
        self.http = BaseUrlHttpClient(api_base)
        self.client = Client(account_sid, auth_token, account_sid=account_sid,
                             http_client=self.http)

    async def create(self, *, to: str, from_: str, twiml: str) -> str:
        """Place the call; its SID. SetupFailed with Twilio's reason when it refuses."""
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT_S):
                call = await self.client.calls.create_async(to=to, from_=from_, twiml=twiml)
        except TwilioRestException as exc:
            raise SetupFailed(refusal(exc, "Twilio refused the call")) from None
        except TimeoutError:
            raise SetupFailed(f"Twilio's API did not answer within {REQUEST_TIMEOUT_S:g}s "
                              "(creating the call)") from None
        except OSError as exc:  # aiohttp's connection errors are OSErrors
            raise SetupFailed(f"Twilio's API unreachable: {exc}") from exc
        return str(call.sid)

    async def status(self, sid: str) -> str:
        """The call's status (queued, ringing, in-progress, busy, no-answer, ...)."""
        async with asyncio.timeout(REQUEST_TIMEOUT_S):
            call = await self.client.calls(sid).fetch_async()
        return str(call.status)

    async def end(self, sid: str, status: str = "completed") -> None:
        """Update the call to ``status`` (``completed`` hangs up, ``canceled`` stops ringing)."""
        async with asyncio.timeout(REQUEST_TIMEOUT_S):
            await self.client.calls(sid).update_async(status=status)

    async def close(self) -> None:
        await self.http.close()
