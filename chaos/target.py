"""Request targets: a relayed request goes to its route's upstream and nowhere else.

The proxies build the upstream URL from the route's `upstream` and the client's
request target. Glued as strings, the target could pick the host: after
`ws://upstream:8001` the target `@127.0.0.1:6379/secret` makes the authority
`upstream:8001@127.0.0.1:6379` (user info, then the attacker's host), and the
WebSocket relay fetched from that host and passed its answer back (SSRF).

So a target must be origin-form (RFC 9112 3.2.1): printable ASCII starting
with `/`, which ends the upstream's authority, so scheme, host and port stay
the route's. Absolute-form (`GET http://evil/`), asterisk-form (`OPTIONS *`)
and anything else get 400, CONNECT (authority-form: this is a reverse proxy)
405. Backslashes are refused too: WHATWG URL parsers, which many upstream
frameworks follow, read `/\\evil` as `//evil`. The proxies parse the joined URL
again with the parser their client uses and compare it with the upstream
(`check_pinned`); a mismatch would be a bug here and is refused, not relayed.

`//host/x` and `/%2F%2Fhost` start with `/` and go to the upstream like any
path: a client whose base URL ends in `/` sends `//v1/...`, and refusing that
would break real runs.
"""

from __future__ import annotations

from chaos.errors import RemoteError


class BadTarget(RemoteError):
    """The client's request target may not be relayed; `status` is the answer (4xx)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def origin_form(method: str, target: str) -> str:
    """`target` when it is an origin-form target that may be relayed; BadTarget if not."""
    if method.upper() == "CONNECT":
        raise BadTarget(405, "CONNECT is not supported: this is a reverse proxy")
    if not target.startswith("/"):
        shown = target if len(target) <= 80 else target[:80] + "..."
        raise BadTarget(400, f"the request target must start with '/' (origin-form), "
                             f"got {shown!r}")
    if "\\" in target:
        raise BadTarget(400, "the request target contains a backslash")
    if not all(" " < ch < "\x7f" for ch in target):
        raise BadTarget(400, "the request target must be printable ASCII")
    if "#" in target:
        raise BadTarget(400, "the request target contains a fragment ('#')")
    return target


def check_pinned(got: tuple[object, ...], want: tuple[object, ...], target: str) -> None:
    """Raise BadTarget unless the joined URL kept the upstream's (scheme, host, port)."""
    if got != want:
        raise BadTarget(400, f"the request target {target[:80]!r} would leave the upstream")
