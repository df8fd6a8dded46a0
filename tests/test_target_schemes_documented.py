"""Every URL scheme that picks a transport is named where a user looks for it:
`loadcaller run --help`, the README and docs/profiles.md's `target` section."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadcaller.cli import build_parser
from loadcaller.transports.registry import known_schemes

ROOT = Path(__file__).resolve().parents[1]


def _named(scheme: str, text: str) -> bool:
    """``webrtc+https`` is also named by ``webrtc+http(s)``."""
    short = scheme[:-1] + "(s)" if scheme.endswith("https") else scheme
    return scheme in text or short in text


def _target_help() -> str:
    run = build_parser()._subparsers._group_actions[0].choices["run"]  # type: ignore[union-attr]
    (action,) = [a for a in run._actions if "--target" in a.option_strings]
    return " ".join(str(action.help).split())


def _profiles_target_section() -> str:
    text = (ROOT / "docs" / "profiles.md").read_text()
    return text.split("## `target`", 1)[1].split("### ", 1)[0]


@pytest.mark.parametrize("scheme", known_schemes())
def test_run_help_names_every_target_scheme(scheme: str) -> None:
    assert _named(scheme, _target_help()), f"--target's help does not name {scheme}"


@pytest.mark.parametrize("scheme", known_schemes())
def test_the_docs_name_every_target_scheme(scheme: str) -> None:
    assert _named(scheme, (ROOT / "README.md").read_text())
    assert _named(scheme, _profiles_target_section()), f"docs/profiles.md: {scheme}"
