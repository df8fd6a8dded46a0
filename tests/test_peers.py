"""tests/peers.py: a missing peer fails under CI and skips elsewhere."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.peers import require_binary, require_module, under_ci

ABSENT_BINARY = "loadcaller-test-no-such-binary"
ABSENT_MODULE = "loadcaller_test_no_such_module"


def outcome(check: Callable[[], object]) -> tuple[str, str]:
    """("failed" | "skipped" | "passed", message) of running `check` in a test.

    Both outcomes are caught here: a skip escaping this test would report the
    test itself as skipped rather than failed.
    """
    try:
        check()
    except pytest.fail.Exception as e:
        return "failed", str(e)
    except pytest.skip.Exception as e:
        return "skipped", str(e)
    return "passed", ""


@pytest.mark.parametrize("value", ["true", "TRUE", "1", "yes"])
def test_missing_binary_fails_under_ci(monkeypatch, value):
    monkeypatch.setenv("CI", value)
    assert under_ci()
    result, message = outcome(lambda: require_binary(ABSENT_BINARY, "no-such-package"))
    assert result == "failed"
    assert ABSENT_BINARY in message and "apt-get install no-such-package" in message


@pytest.mark.parametrize("value", [None, "", "false", "0"])
def test_missing_binary_skips_off_ci(monkeypatch, value):
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    assert not under_ci()
    result, message = outcome(lambda: require_binary(ABSENT_BINARY, "no-such-package"))
    assert result == "skipped"
    assert "Debian package no-such-package" in message


def test_missing_module_fails_under_ci_and_skips_off_ci(monkeypatch):
    monkeypatch.setenv("CI", "true")
    result, message = outcome(lambda: require_module(ABSENT_MODULE, "no-such-dist>=1"))
    assert result == "failed" and "pip install 'no-such-dist>=1'" in message
    assert outcome(lambda: require_module(f"{ABSENT_MODULE}.sub", "no-such-dist"))[0] == "failed"
    monkeypatch.setenv("CI", "false")
    result, message = outcome(lambda: require_module(ABSENT_MODULE, "no-such-dist>=1"))
    assert result == "skipped" and "PyPI package no-such-dist>=1" in message


def test_present_peers_pass_either_way(monkeypatch):
    for value in ("true", "false"):
        monkeypatch.setenv("CI", value)
        assert require_binary("sh", "dash").endswith("/sh")
        assert require_module("json", "json") == "json"
