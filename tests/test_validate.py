"""`loadcaller validate`: secrets in every form validate and are never printed."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ENV_SECRET = "s3cret-from-env-7f3a"
FILE_SECRET = "s3cret-from-file-91c2"
LITERAL_SECRET = "s3cret-literal-55d0"
SECRETS = (ENV_SECRET, FILE_SECRET, LITERAL_SECRET)

STEPS = "scenarios: [{name: a, steps: [wait_for_agent, {say: {phrase: hello_order}}, hangup]}]\n"


def _validate(*paths: Path) -> tuple[int, str, str]:
    proc = subprocess.run(
        [sys.executable, "-m", "loadcaller", "validate", *map(str, paths)],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
        env={**os.environ, "LC_VALIDATE_TOKEN": ENV_SECRET},
    )
    return proc.returncode, proc.stdout, proc.stderr


def _write(directory: Path) -> dict[str, Path]:
    secret_file = directory / "sip-password"
    secret_file.write_text(FILE_SECRET + "\nsecond line ignored\n")
    files = {
        "env": f"target:\n  url: wss://agent.example/media\n"
               f"  auth_token: '${{LC_VALIDATE_TOKEN}}'\n{STEPS}",
        "file": f"target:\n  url: sip:bot@127.0.0.1:5080\n  auth_username: alice\n"
                f"  auth_password: {{file: '{secret_file}'}}\n{STEPS}",
        "literal": f"target: {{url: 'ws://127.0.0.1:1/x', auth_token: {LITERAL_SECRET}}}\n"
                   f"{STEPS}",
    }
    out = {}
    for name, text in files.items():
        out[name] = directory / f"{name}.yaml"
        out[name].write_text(text)
    return out


def test_secret_forms_validate_and_are_not_printed(tmp_path: Path) -> None:
    files = _write(tmp_path)
    code, out, err = _validate(*files.values())
    assert code == 0, err
    assert out.splitlines() == [f"ok {p}" for p in files.values()]
    for secret in SECRETS:
        assert secret not in out + err


def test_errors_next_to_secrets_do_not_print_them(tmp_path: Path) -> None:
    files = _write(tmp_path)
    broken = []
    for name, path in files.items():
        # other errors in the same target section, and the secret's own line broken
        text = path.read_text().replace("target:\n", "target:\n  setup_timeout: forever\n")
        text = text.replace("target: {", "target: {setup_timeout: forever, ")
        bad = tmp_path / f"bad-{name}.yaml"
        bad.write_text(text + "load: {users: 0}\n")
        broken.append(bad)
    unclosed = tmp_path / "unclosed.yaml"
    unclosed.write_text(f'{STEPS}target:\n  auth_token: "{LITERAL_SECRET}\n  url: ws://x/y\n')
    not_a_secret = tmp_path / "not-a-secret.yaml"
    not_a_secret.write_text(f"{STEPS}target:\n  auth_token: {{file: '{tmp_path}/sip-password', "
                            f"mode: plain}}\n")
    code, out, err = _validate(*broken, unclosed, not_a_secret)
    assert code == 2 and out == ""
    assert "Traceback" not in err
    for bad in broken:
        line = 1 if bad.name == "bad-literal.yaml" else 2
        assert f"{bad}:{line}: target.setup_timeout: " in err, err
    assert f"{unclosed}:" in err and "YAML syntax error" in err
    assert f"{not_a_secret}:3: target.auth_token: " in err
    for secret in SECRETS:
        assert secret not in err


def test_a_results_copy_asks_for_its_redacted_secrets_again(tmp_path: Path) -> None:
    from loadcaller.profile import load_profile
    from loadcaller.report.profile_copy import write_profile_copy

    files = _write(tmp_path)
    files["url"] = tmp_path / "url.yaml"
    files["url"].write_text(f"target: {{url: 'wss://bot:{LITERAL_SECRET}@agent.example/m?"
                            f"token={FILE_SECRET}&lang=en'}}\n{STEPS}")
    copies = []
    os.environ["LC_VALIDATE_TOKEN"] = ENV_SECRET
    try:
        for name, path in files.items():
            write_profile_copy(load_profile(path), tmp_path / name)
            copies.append(tmp_path / name / "profile.yaml")
    finally:
        del os.environ["LC_VALIDATE_TOKEN"]
    code, out, err = _validate(*copies)
    assert code == 2 and out == "" and "Traceback" not in err
    for copy, field in zip(copies, ["target.auth_token", "target.auth_password",
                                    "target.auth_token", "target.url"], strict=True):
        assert re.search(rf"^{re.escape(str(copy))}:\d+: {re.escape(field)}: \*\*\* is a "
                         r"redacted secret .*: give the secret again", err, re.M), err
    for secret in SECRETS:
        assert secret not in err + "".join(c.read_text() for c in copies)
