"""Secrets in profiles: from the profile, ${VAR} or {file: PATH}, never printed."""

import pytest

from loadcaller.errors import ProfileError
from loadcaller.profile import parse_profile

BASE = "scenarios: [{name: s, steps: [{wait_for_agent: {}}]}]\n"


def test_secret_from_environment_variable(monkeypatch):
    monkeypatch.setenv("LC_TEST_TOKEN", "s3cret-token")
    p = parse_profile(BASE + "target: {url: 'ws://127.0.0.1:1/x', auth_token: '${LC_TEST_TOKEN}'}")
    assert p.target.auth_token.get_secret_value() == "s3cret-token"
    assert "s3cret" not in repr(p) and "s3cret" not in str(p.target)
    assert "s3cret" not in p.model_dump_json()


def test_missing_environment_variable_is_a_profile_error(monkeypatch):
    monkeypatch.delenv("LC_TEST_NOPE", raising=False)
    with pytest.raises(ProfileError, match=r"<profile>:2: target\.auth_token: .*LC_TEST_NOPE"):
        parse_profile(BASE + "target: {url: 'ws://127.0.0.1:1/x', auth_token: '${LC_TEST_NOPE}'}")


def test_secret_from_file(tmp_path):
    f = tmp_path / "token"
    f.write_text("from-a-file\nignored\n")
    p = parse_profile(BASE + f"target: {{url: 'ws://127.0.0.1:1/x', auth_token: {{file: '{f}'}}}}")
    assert p.target.auth_token.get_secret_value() == "from-a-file"
    with pytest.raises(ProfileError, match="cannot read the secret file"):
        parse_profile(BASE + "target: {url: 'ws://127.0.0.1:1/x', "
                      f"auth_token: {{file: '{tmp_path / 'absent'}'}}}}")
