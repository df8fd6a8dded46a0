"""status: answer with an error status instead of calling the upstream.

Presets give the bodies real APIs send: `429` (OpenAI-style rate limit),
`503`, `529` (Anthropic-style overloaded), `502_html` (an nginx error page),
`500`, `504`. `retry_after` is sent as written: an int is seconds, a string
goes out verbatim (an HTTP-date, or a malformed value such as "soon", "-1",
"1.5"); `retry_after_date` sends an HTTP-date that many seconds ahead.
"""

from __future__ import annotations

import json
import time
from email.utils import formatdate
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from chaos.actions import FaultContext, RequestAction, Respond
from chaos.faults.base import HttpFault, Params, check_header_name, check_header_value, register
from chaos.units import Duration

_HTML_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)

PRESETS: dict[str, tuple[int, str, str, str | None]] = {
    # name: (status, content type, body, default Retry-After)
    "429": (429, "application/json", json.dumps({"error": {
        "message": "Rate limit reached. Please try again later.",
        "type": "requests", "code": "rate_limit_exceeded"}}), "20"),
    "503": (503, "text/plain", "Service Unavailable", None),
    "529": (529, "application/json", json.dumps({"type": "error", "error": {
        "type": "overloaded_error", "message": "Overloaded"}}), None),
    "502_html": (502, "text/html", _HTML_502, None),
    "500": (500, "application/json", json.dumps({"error": {
        "message": "The server had an error while processing your request.",
        "type": "server_error"}}), None),
    "504": (504, "text/plain", "Gateway Timeout", None),
}


class StatusParams(Params):
    """A preset, or an explicit status with optional body and headers."""

    preset: Literal["429", "503", "529", "502_html", "500", "504"] | None = None
    status: int | None = Field(None, ge=200, le=599)
    body: str | None = None
    content_type: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    retry_after: int | str | None = None
    retry_after_date: Duration | None = None

    @field_validator("headers")
    @classmethod
    def _check_headers(cls, headers: dict[str, str]) -> dict[str, str]:
        for name, value in headers.items():
            check_header_name(name)
            check_header_value(value, f"header {name!r}")
        return headers

    @field_validator("content_type", "retry_after")
    @classmethod
    def _check_value(cls, value: int | str | None, info: ValidationInfo) -> int | str | None:
        if isinstance(value, str):
            check_header_value(value, f"`{info.field_name}`")
        return value

    @model_validator(mode="after")
    def _need_status(self) -> StatusParams:
        if self.preset is None and self.status is None:
            raise ValueError("give a `status` or a `preset` (429, 503, 529, 502_html, 500, 504)")
        return self


@register
class Status(HttpFault):
    """Answer with an error status."""

    type = "status"
    Params = StatusParams

    def on_request(self, ctx: FaultContext) -> RequestAction | None:
        """Build the error response."""
        p: StatusParams = self.params
        status, ctype, body, retry = 500, "text/plain", "", None
        if p.preset is not None:
            status, ctype, body, retry = PRESETS[p.preset]
        status = p.status if p.status is not None else status
        body = p.body if p.body is not None else body
        ctype = p.content_type or ctype
        if p.retry_after is not None:
            retry = str(p.retry_after)
        if p.retry_after_date is not None:
            retry = formatdate(time.time() + p.retry_after_date, usegmt=True)
        headers = [("Content-Type", ctype), *p.headers.items()]
        if retry is not None:
            headers.append(("Retry-After", retry))
        return Respond(status, tuple(headers), body.encode())
