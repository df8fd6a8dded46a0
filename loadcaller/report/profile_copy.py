"""The results directory's copy of the profile a run used, with its secrets out.

A report (or a person, months later) must be able to say what ran: the profile
as validated, with the command line's overrides applied and defaults filled in,
is written to ``profile.yaml`` when the run starts. Secrets never reach it:
``Secret`` fields dump as ``**********`` (pydantic), target URLs and every other
string lose their credentials (:func:`~loadcaller.redact.redact_text`), and a
value under a key whose name looks like a credential (``api_key``, a header
called ``Authorization``) becomes ``***``.

The copy is a profile itself: ``loadcaller validate`` and ``run`` take it (fields
by their YAML names, ``if`` not ``if_``; ``hangup`` written as such) and it
compiles to the same run. A redacted secret cannot be: validation refuses a
``***`` where a secret was (:func:`loadcaller.profile.redacted_secrets`), so the
copy is not run with ``***`` as a password; give the secret again. Relative
file paths (``say: {wav: ...}``, ``data.csv``) stay relative to the original
profile's directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from loadcaller.redact import REDACTED, is_credential_name, redact_text

PROFILE_COPY = "profile.yaml"


def scrub(value: Any, key: str = "") -> Any:
    """``value`` (JSON-like) with credentials replaced, recursively."""
    if key and is_credential_name(key) and isinstance(value, str | int | float):
        return REDACTED
    if isinstance(value, dict):
        return {k: scrub(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


def profile_yaml(profile: Any) -> str:
    """The validated profile (a pydantic model) as redacted YAML."""
    data = scrub(profile.model_dump(mode="json", by_alias=True, exclude_none=True))
    head = ("# the profile this run used (overrides applied, defaults filled in, secrets out:\n"
            "# a *** is a redacted secret; give it again, e.g. as ${VAR}, to run this again)\n")
    return head + str(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))


def write_profile_copy(profile: Any, directory: Path) -> None:
    """Write ``directory/profile.yaml``; an error is a printed warning, not the run's end."""
    import sys

    try:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / PROFILE_COPY).write_text(profile_yaml(profile), encoding="utf-8")
    except (OSError, ValueError, yaml.YAMLError) as exc:
        print(f"loadcaller: warning: could not write {PROFILE_COPY}: {exc}", file=sys.stderr,
              flush=True)
