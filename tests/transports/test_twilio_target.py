"""The Twilio target refuses what would fail every call, and bounds what an agent can make
the caller hold."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from loadcaller.transports.twilio_stream import TwilioTarget


@pytest.mark.parametrize(("url", "says"), [
    ("ws://127.0.0.1:99999/media", "Port out of range"),
    ("ws://127.0.0.1:abc/media", "Port could not be cast"),
    ("ws://[::1/media", "Invalid IPv6 URL"),
])
def test_a_url_every_call_would_fail_on_is_refused_up_front(url, says):
    with pytest.raises(ValidationError, match=says):
        TwilioTarget(url=url)


def test_limits_have_safe_defaults_and_read_units():
    target = TwilioTarget(url="ws://127.0.0.1:8080/media")
    assert (target.max_playout_queue, target.max_unsent) == (60.0, 4 * 2**20)
    target = TwilioTarget(url="ws://127.0.0.1:8080/media", max_playout_queue="90s",
                          max_unsent="64KiB")
    assert (target.max_playout_queue, target.max_unsent) == (90.0, 65536)
    for bad in ({"max_playout_queue": 0}, {"max_unsent": 0}):
        with pytest.raises(ValidationError):
            TwilioTarget(url="ws://127.0.0.1:8080/media", **bad)
