"""Credentials never leave a URL that is printed or written."""

from __future__ import annotations

import pytest

from loadcaller.redact import CREDENTIAL_WORDS, redact_text, redact_url


@pytest.mark.parametrize(("url", "expected"), [
    ("ws://user:pw@127.0.0.1:8080/media?token=abc&x=1",
     "ws://user:***@127.0.0.1:8080/media?token=***&x=1"),
    ("wss://agent.example/media", "wss://agent.example/media"),
    ("wss://bot@agent.example/media", "wss://bot@agent.example/media"),  # no password
    ("wss://h/m?X-Amz-Signature=zz&a=b", "wss://h/m?X-Amz-Signature=***&a=b"),
    ("wss://h/m?APIKEY=1&Api_Key=2&oauth_token=3&sig=4&PWD=5&passwd=6&secret_id=7",
     "wss://h/m?APIKEY=***&Api_Key=***&oauth_token=***&sig=***&PWD=***&passwd=***"
     "&secret_id=***"),
    ("wss://h/m?Authorization=Bearer%20x&p=1", "wss://h/m?Authorization=***&p=1"),
    ("wss://h/m?api%5Fkey=1", "wss://h/m?api%5Fkey=***"),  # %-encoded name
    ("wss://h/m?flag&token=", "wss://h/m?flag&token=***"),
    ("wss://h/m#access_token=q&state=1", "wss://h/m#access_token=***&state=1"),
    ("wss://u:p/a@ss@h/p", "wss://u:***@h/p"),  # a raw / and @ in the password
    ("sip:alice:s3cret@10.0.0.1:5060;transport=tcp",
     "sip:alice:***@10.0.0.1:5060;transport=tcp"),
    ("sips:agent@pbx.example;auth=x?X-Api-Key=k&Subject=hi",
     "sips:agent@pbx.example;auth=***?X-Api-Key=***&Subject=hi"),
    ("sip:agent@127.0.0.1:5060", "sip:agent@127.0.0.1:5060"),
    ("not a url", "not a url"),
])
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


def test_every_credential_word_is_caught_whatever_its_case() -> None:
    for word in CREDENTIAL_WORDS:
        for name in (word, word.upper(), f"x_{word}_y"):
            assert redact_url(f"wss://h/?{name}=SEKRIT") == f"wss://h/?{name}=***"


def test_urls_inside_error_messages() -> None:
    msg = ("p.yaml:3: target.url: Value error, 'sip:u:pw9@h;transport=xyz' is not ok; "
           "also wss://a:b7@h/x?token=t0k")
    out = redact_text(msg)
    assert "pw9" not in out and "b7" not in out and "t0k" not in out
    assert out.startswith("p.yaml:3: target.url: Value error, 'sip:u:***@h;transport=xyz'")
