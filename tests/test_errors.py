"""One error hierarchy for loadcaller and chaos, split by blame, caught by the CLI."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from chaos import blame
from chaos import errors as chaos_errors
from loadcaller import cli
from loadcaller import errors as lc_errors
from loadcaller.audio import errors as audio_errors

ROOT = Path(__file__).resolve().parents[1]

LOCAL = [
    lc_errors.LocalError, lc_errors.ProfileError, lc_errors.LocalSetupError,
    audio_errors.AudioError, audio_errors.WavFormatError, audio_errors.SynthesisUnavailable,
    audio_errors.UnknownPhrase,
    chaos_errors.LocalError, chaos_errors.ConfigError, chaos_errors.UnknownFaultType,
]
REMOTE = [
    lc_errors.RemoteError, lc_errors.SetupFailed, lc_errors.RemoteProtocolError,
    chaos_errors.RemoteError, chaos_errors.UpstreamError,
]


@pytest.mark.parametrize("cls", LOCAL, ids=[c.__qualname__ for c in LOCAL])
def test_local_errors_share_the_root_and_the_local_branch(cls: type[Exception]) -> None:
    assert issubclass(cls, blame.LocalError) and not issubclass(cls, blame.RemoteError)


@pytest.mark.parametrize("cls", REMOTE, ids=[c.__qualname__ for c in REMOTE])
def test_remote_errors_share_the_root_and_the_remote_branch(cls: type[Exception]) -> None:
    assert issubclass(cls, blame.RemoteError) and not issubclass(cls, blame.LocalError)


def test_each_package_keeps_its_own_base() -> None:
    assert issubclass(audio_errors.AudioError, lc_errors.LoadcallerError)
    assert issubclass(chaos_errors.ConfigError, chaos_errors.ChaosError)
    assert not issubclass(chaos_errors.LocalError, lc_errors.LoadcallerError)
    assert not issubclass(lc_errors.LocalError, chaos_errors.ChaosError)
    assert issubclass(audio_errors.UnknownPhrase, KeyError)  # still, for pack lookups


def test_chaos_stays_standalone() -> None:
    """The shared root lives in chaos because chaos imports nothing from loadcaller."""
    for path in (ROOT / "chaos").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            assert not any(n.split(".")[0] == "loadcaller" for n in names), path


@pytest.mark.parametrize("exc", [
    chaos_errors.LocalError("the control API bound to 0.0.0.0 needs a token (--token)"),
    audio_errors.WavFormatError("x.wav: not a RIFF/WAVE file"),
], ids=["chaos_local_error", "audio_error"])
def test_cli_reports_any_local_error_as_bad_input(exc: Exception,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """Before the shared root, `except LocalError` in the CLI let chaos's escape."""
    def dispatch(_args: object) -> int:
        raise exc

    monkeypatch.setattr(cli, "_dispatch", dispatch)
    assert cli.main(["schema"]) == cli.EXIT_BAD_INPUT
    assert capsys.readouterr().err == f"loadcaller: {exc}\n"


@pytest.mark.parametrize("path", ["loadcaller/errors.py", "loadcaller/audio/errors.py",
                                  "chaos/errors.py", "chaos/blame.py"])
def test_the_tree_is_drawn_in_the_docstring(path: str) -> None:
    doc = ast.get_docstring(ast.parse((ROOT / path).read_text())) or ""
    assert "├──" in doc or "└──" in doc
    assert "LocalError" in doc and "Error" in doc


def test_the_sip_core_shares_the_blame_tree():
    from chaos import blame
    from loadcaller.sip.errors import LocalProtocolError, ParseError, RemoteProtocolError

    assert issubclass(LocalProtocolError, blame.LocalError)
    assert issubclass(ParseError, RemoteProtocolError)
    assert issubclass(RemoteProtocolError, blame.RemoteError)
