"""X-Twilio-Signature as the official twilio SDK computes and validates it."""

from twilio.request_validator import RequestValidator

from loadcaller.twilio.signature import compute_signature, signed_url, validate_signature


def test_signature_is_the_one_twilios_sdk_accepts_for_the_wss_url():
    url = signed_url("ws://agent.example:8080/media?tenant=a")
    assert url == "wss://agent.example:8080/media?tenant=a"
    sig = compute_signature("secret-token", url)
    assert RequestValidator("secret-token").validate(url, {}, sig)
    assert not RequestValidator("other-token").validate(url, {}, sig)
    assert validate_signature("secret-token", url, sig)
    assert not validate_signature("secret-token", url + "x", sig)
