"""What every test shares."""

from __future__ import annotations

from typing import Any

LONG = 2000  # characters: past this, pytest's own `in`/`not in` explanation is replaced
CONTEXT = 1500


def pytest_assertrepr_compare(op: str, left: Any, right: Any) -> list[str] | None:
    """Explain a failed ``"x" not in text`` on a long text by showing where x is.

    pytest explains it with a difflib diff of the whole text, which is quadratic:
    on a long stderr (``assert "Traceback" not in err``) it hung a CI run past the
    test timeout instead of showing the traceback.
    """
    if op not in ("in", "not in") or not isinstance(left, str) or not isinstance(right, str):
        return None
    if len(right) <= LONG:
        return None
    if op == "in":
        return [f"{left[:200]!r} is not in a text of {len(right)} characters; its end:",
                *right[-CONTEXT:].splitlines()]
    at = right.find(left)
    return [f"{left[:200]!r} is in a text of {len(right)} characters, at {at}; from there "
            "(pytest -vv shows more):",
            *right[at:at + CONTEXT].splitlines()]
