"""HTTP offer/answer signalling for WebRTC callers, in the two flavours agents speak.

- :class:`PipecatSignalling`: Pipecat's SmallWebRTC JSON. POST
  ``{"sdp", "type": "offer", "pc_id"?, "restart_pc"?}``, answered
  ``{"sdp", "type": "answer", "pc_id"}``; trickled ICE candidates go as a PATCH
  ``{"pc_id", "candidates": [{"candidate", "sdp_mid", "sdp_mline_index"}]}``; a
  renegotiation (the bot asks for it on the data channel) is a new POST with the
  same ``pc_id``.
- :class:`WhipSignalling`: WHIP. POST of the raw SDP as ``application/sdp``,
  answered ``201 Created`` with the answer and a ``Location`` naming the
  session's resource, which is DELETEd at hang-up.

Both send the profile's bearer token and extra headers with every request; their
values are secrets and appear in no message, log line or record. Every failure
of the far end (an HTTP error status, an answer that is not JSON or has no SDP,
a refused connection, a timeout) is :class:`~loadcaller.errors.SetupFailed`
whose reason starts ``signalling:`` and names the status and the URL.
"""

from __future__ import annotations

import abc
import asyncio
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp
from pydantic import SecretStr

from loadcaller import peerjson
from loadcaller.errors import SetupFailed
from loadcaller.redact import redact_url

log = logging.getLogger(__name__)

MAX_ANSWER_BYTES = 256 * 1024  # an SDP answer is a few KiB; more is not an answer
REASON_BODY_CHARS = 120  # of an error response's body, quoted in the reason


@dataclass(frozen=True, slots=True)
class Answer:
    """The far end's SDP answer and the name it gave the session (pc_id, WHIP resource)."""

    sdp: str
    session_id: str


@dataclass(frozen=True, slots=True)
class IceCandidate:
    """One trickled candidate, as Pipecat's PATCH carries it."""

    candidate: str
    sdp_mid: str | None
    sdp_mline_index: int | None


class Signalling(abc.ABC):
    """One call's offer/answer exchange with the agent over HTTP."""

    flavour: str

    def __init__(self, url: str, *, token: SecretStr | None = None,
                 headers: Mapping[str, SecretStr] | None = None,
                 timeout_s: float = 10.0) -> None:
        self.url = url
        self.shown_url = redact_url(url)
        self.timeout_s = timeout_s
        self._headers = dict(headers or {})  # secrets until the request is built
        if token is not None:
            self._headers["Authorization"] = SecretStr(f"Bearer {token.get_secret_value()}")
        self._session: aiohttp.ClientSession | None = None
        self.session_id = ""

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout_s),
                connector=aiohttp.TCPConnector(limit=2, force_close=True))
        return self._session

    async def _request(self, method: str, url: str, *, body: bytes, content_type: str,
                       accept: str) -> tuple[int, Mapping[str, str], bytes]:
        """One request; its status, headers and (bounded) body; SetupFailed if none came."""
        headers = {k: v.get_secret_value() for k, v in self._headers.items()}
        headers.update({"Content-Type": content_type, "Accept": accept})
        shown = redact_url(url)
        try:
            async with self._http().request(method, url, data=body, headers=headers,
                                            allow_redirects=False) as resp:
                data = b""
                async for chunk in resp.content.iter_chunked(64 * 1024):
                    data += chunk
                    if len(data) > MAX_ANSWER_BYTES:
                        raise SetupFailed(f"signalling: answer over {MAX_ANSWER_BYTES} "
                                          f"bytes from {shown}")
                if resp.status >= 300:
                    raise SetupFailed(f"signalling: HTTP {resp.status} {resp.reason or ''}"
                                      .rstrip() + f" from {shown}" + _snippet(data))
                return resp.status, resp.headers, data
        except TimeoutError:
            raise SetupFailed(f"signalling: no answer within {self.timeout_s:g}s from "
                              f"{shown}") from None
        except aiohttp.ClientConnectorError as exc:
            raise SetupFailed(f"signalling: cannot connect to {shown}: "
                              f"{exc.os_error.strerror or exc.os_error}") from exc.os_error
        except aiohttp.ClientError as exc:
            raise SetupFailed(f"signalling: {type(exc).__name__} from {shown}: "
                              f"{_clean(str(exc))}") from None

    @abc.abstractmethod
    async def offer(self, sdp: str) -> Answer:
        """Send our offer; the far end's answer (SetupFailed if it gave none)."""

    async def renegotiate(self, sdp: str) -> Answer:
        """A new offer for the same session (Pipecat asks for one on the data channel)."""
        raise SetupFailed(f"signalling: {self.flavour} has no renegotiation")

    async def trickle(self, candidates: list[IceCandidate]) -> None:  # noqa: B027 - optional
        """Send ICE candidates found after the offer (the flavours that take them)."""

    async def close(self) -> None:
        """End the session at the far end if the flavour says how; close our HTTP client."""
        await self._close_http()

    async def _close_http(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()


def _snippet(data: bytes) -> str:
    text = _clean(data[:REASON_BODY_CHARS].decode("utf-8", "replace")).strip()
    return f": {text}" if text else ""


def _clean(text: str) -> str:
    """Printable, one line: an agent's body goes into our records."""
    return "".join(c if c.isprintable() else " " for c in text)[:REASON_BODY_CHARS]


def _has_sdp(sdp: Any) -> bool:
    return isinstance(sdp, str) and sdp.lstrip().startswith("v=0")


class PipecatSignalling(Signalling):
    """Pipecat SmallWebRTC's JSON offer/answer (see the module docstring)."""

    flavour = "pipecat"

    async def offer(self, sdp: str, *, restart_pc: bool = False) -> Answer:
        body: dict[str, Any] = {"sdp": sdp, "type": "offer"}
        if self.session_id:
            body["pc_id"] = self.session_id
            body["restart_pc"] = restart_pc
        _, _, data = await self._request("POST", self.url, body=json.dumps(body).encode(),
                                         content_type="application/json",
                                         accept="application/json")
        try:
            answer = peerjson.loads(data)
        except ValueError:
            raise SetupFailed(f"signalling: the answer from {self.shown_url} is not JSON"
                              + _snippet(data)) from None
        if not isinstance(answer, dict) or not _has_sdp(answer.get("sdp")):
            raise SetupFailed(f"signalling: the answer from {self.shown_url} has no SDP"
                              + _snippet(data))
        if answer.get("type", "answer") != "answer":
            raise SetupFailed(f"signalling: the answer from {self.shown_url} is of type "
                              f"{_clean(str(answer.get('type')))!r}, not 'answer'")
        pc_id = answer.get("pc_id")
        if isinstance(pc_id, str) and pc_id:
            self.session_id = _clean(pc_id)
        return Answer(str(answer["sdp"]), self.session_id)

    async def renegotiate(self, sdp: str) -> Answer:
        return await self.offer(sdp)

    async def trickle(self, candidates: list[IceCandidate]) -> None:
        if not candidates or not self.session_id:
            return
        body = {"pc_id": self.session_id, "candidates": [
            {"candidate": c.candidate, "sdp_mid": c.sdp_mid, "sdp_mline_index": c.sdp_mline_index}
            for c in candidates]}
        await self._request("PATCH", self.url, body=json.dumps(body).encode(),
                            content_type="application/json", accept="application/json")


class WhipSignalling(Signalling):
    """WHIP: raw SDP in, 201 with the answer and a Location out, DELETE at the end."""

    flavour = "whip"

    def __init__(self, url: str, **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        self.resource_url: str | None = None

    async def offer(self, sdp: str) -> Answer:
        status, headers, data = await self._request(
            "POST", self.url, body=sdp.encode(), content_type="application/sdp",
            accept="application/sdp")
        if status != 201:
            raise SetupFailed(f"signalling: WHIP answered HTTP {status} from "
                              f"{self.shown_url}, not 201 Created")
        location = headers.get("Location")
        if not location:
            raise SetupFailed(f"signalling: WHIP 201 from {self.shown_url} without Location")
        text = data.decode("utf-8", "replace")
        if not _has_sdp(text):
            raise SetupFailed(f"signalling: the answer from {self.shown_url} has no SDP"
                              + _snippet(data))
        resource = urljoin(self.url, location)
        if urlsplit(resource).scheme not in ("http", "https"):
            raise SetupFailed(f"signalling: WHIP Location {_clean(location)!r} from "
                              f"{self.shown_url} is not an http(s) URL")
        self.resource_url = resource
        self.session_id = _clean(urlsplit(resource).path.rstrip("/").rsplit("/", 1)[-1])
        return Answer(text, self.session_id)

    async def close(self) -> None:
        """DELETE the session's resource (best effort: the call is over either way)."""
        resource, self.resource_url = self.resource_url, None
        try:
            if resource is not None:
                await self._request("DELETE", resource, body=b"",
                                    content_type="application/sdp", accept="*/*")
        except SetupFailed as exc:
            log.info("WHIP DELETE failed: %s", exc)
        except asyncio.CancelledError:
            raise
        finally:
            await self._close_http()
