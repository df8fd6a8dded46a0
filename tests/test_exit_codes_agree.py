"""Every table of exit codes says what ``loadcaller --help`` says (the source of truth).

``--help``'s :data:`~loadcaller.cli.EXIT_CODES_HELP` lists the codes and the order in
which they win when several apply; the report's :data:`EXIT_MEANING`, the
scheduled-runs table, the README and the precedence sentences must agree with it.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from loadcaller.cli import EXIT_CODES_HELP
from loadcaller.report.sections import EXIT_MEANING, verdict

ROOT = Path(__file__).resolve().parents[1]


def help_codes() -> set[int]:
    return {int(m) for m in re.findall(r"^  (\d+)  ", EXIT_CODES_HELP, re.M)}


def precedence(text: str) -> list[int]:
    """The codes of a "When several apply: ..." sentence, in order, up to its ';'."""
    m = re.search(r"[Ww]hen several apply[:,](.*?);", text, re.S)
    assert m, "no precedence sentence"
    return [int(n) for n in re.findall(r"\b(\d+)\b", m.group(1))]


HELP_ORDER = precedence(EXIT_CODES_HELP)


def test_help_lists_the_codes_and_their_order() -> None:
    assert help_codes() == {0, 1, 2, 3, 4, 5, 130, 143}
    assert HELP_ORDER == [130, 143, 5, 3, 1, 0]
    assert "bad input (2) stops the command before any call" in " ".join(
        EXIT_CODES_HELP.split())


def test_the_report_knows_every_code() -> None:
    assert set(EXIT_MEANING) == help_codes()
    state, why = verdict({}, 5)
    assert state == "incomplete" and "results are incomplete" in why[0]


def test_scheduled_runs_doc_agrees() -> None:
    doc = (ROOT / "docs" / "scheduled-runs.md").read_text(encoding="utf-8")
    section = doc.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| ([\d, ]+) \|", section, re.M)
    assert {int(c) for row in rows for c in row.split(",")} == help_codes()
    assert precedence(section) == HELP_ORDER


def test_readme_agrees() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert precedence(readme) == HELP_ORDER


def test_gates_doc_and_judged_exit_name_what_wins_over_a_failed_gate() -> None:
    """Everything before 1 in the help's order is what can come before a failed gate."""
    before_1 = HELP_ORDER[: HELP_ORDER.index(1)]
    profiles = " ".join((ROOT / "docs" / "profiles.md").read_text(encoding="utf-8").split())
    m = re.search(r"Any failed gate makes the exit code 1, unless (.*?) comes first", profiles)
    assert m
    assert [int(n) for n in re.findall(r"\b(\d+)\b", m.group(1))] == before_1
    tree = ast.parse((ROOT / "loadcaller" / "swarm" / "run.py").read_text(encoding="utf-8"))
    fn = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)
              and n.name == "judged_exit")
    doc = " ".join((ast.get_docstring(fn) or "").split())
    m = re.search(r"Precedence: (.*?), then failed calls", doc)
    assert m
    assert [int(n) for n in re.findall(r"\b(\d+)\b", m.group(1))] == before_1
