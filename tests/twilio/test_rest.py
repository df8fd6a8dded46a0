"""The TwiML a PSTN call is created with, and Twilio's errors as one line."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from twilio.base.exceptions import TwilioRestException

from loadcaller.twilio.rest import refusal, stream_twiml


def test_twiml_connects_the_call_to_our_stream_with_the_call_id_escaped() -> None:
    url = 'wss://t.example/media?a=1&b="2"'
    root = ET.fromstring(stream_twiml(url, "id<&>'\""))
    assert root.tag == "Response"
    (connect,) = list(root)
    (stream,) = list(connect)
    assert (connect.tag, stream.tag, stream.get("url")) == ("Connect", "Stream", url)
    (param,) = list(stream)
    assert param.attrib == {"name": "loadcaller_call_id", "value": "id<&>'\""}


def test_a_twilio_error_says_its_message_code_and_status() -> None:
    exc = TwilioRestException(400, "https://api.twilio.com/x", msg="Unable to create "
                              "record: The number is unverified.", code=21219)
    assert refusal(exc, "Twilio refused the call") == (
        "Twilio refused the call: The number is unverified. (Twilio error 21219, HTTP 400)")
