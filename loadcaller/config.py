"""Building blocks of the validated configuration (profiles and transport targets).

Every number a profile gives ends up in timers and integer nanoseconds, so the
types here refuse what would only fail later, far from the file: infinite and
NaN numbers (``.inf`` is valid YAML; ``int(inf * 1e9)`` raises OverflowError in
the middle of compiling), durations beyond :data:`MAX_DURATION_S`, and secret
files larger than a token could be. Their JSON Schema (``loadcaller schema``)
describes every form they accept, strings like ``"30s"`` and ``{file: PATH}``
included.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Annotated, Any, Final

from annotated_types import Gt
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    GetJsonSchemaHandler,
    SecretStr,
    WithJsonSchema,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from chaos.units import parse_duration

MAX_DURATION_S: Final = 30 * 24 * 3600.0
"""30 days: longer than any soak run, short enough for every timer and clock sum."""

MAX_SECRET_FILE_BYTES: Final = 64 * 1024
"""A token or password file is one short line; more is the wrong file."""

DURATION_PATTERN: Final = (
    r"^\s*[0-9]+(\.[0-9]+)?\s*$|^\s*([0-9]+(\.[0-9]+)?\s*(us|ms|s|m|h)\s*)+$"
)


def _duration(value: Any) -> float:
    """Seconds from a number or "250ms", "30s", "1m30s": finite, 0 to 30 days."""
    try:
        seconds = parse_duration(value)
    except OverflowError:  # an integer too large for a float
        raise ValueError(f"a duration is at most 30 days ({MAX_DURATION_S:,.0f} s)") from None
    if not math.isfinite(seconds):
        raise ValueError("a duration must be a finite number of seconds (not inf or NaN)")
    if seconds > MAX_DURATION_S:
        raise ValueError(f"a duration is at most 30 days ({MAX_DURATION_S:,.0f} s), "
                         f"got {seconds:,.0f} s")
    return seconds


Duration = Annotated[
    float,
    BeforeValidator(_duration),
    WithJsonSchema({
        "anyOf": [
            {"type": "number", "minimum": 0, "maximum": MAX_DURATION_S},
            {"type": "string", "pattern": DURATION_PATTERN},
        ],
        "description": "seconds, or a string like 250ms, 30s, 2m, 1m30s",
    }),
]
"""Seconds, from a number or a string like ``250ms``, ``30s``, ``1m30s``."""

PositiveDuration = Annotated[
    float,
    BeforeValidator(_duration),
    Gt(0),
    WithJsonSchema({
        "anyOf": [
            {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_DURATION_S},
            {"type": "string", "pattern": DURATION_PATTERN},
        ],
        "description": "seconds (more than 0), or a string like 250ms, 30s, 2m, 1m30s",
    }),
]
"""A :data:`Duration` that must be more than 0: a timeout or a limit of 0 would end
every call at once (a 2-user run placed 3,166 "completed" calls in 5 s)."""


def _not_bool(value: Any) -> Any:
    """YAML ``true`` is a Python bool, which is an int: ``users: true`` is no count."""
    if isinstance(value, bool):
        raise ValueError("expected a number, not true or false")
    return value


NotBool = BeforeValidator(_not_bool)
"""Refuses ``true``/``false`` for a count or a rate (``Annotated[int, NotBool, ...]``)."""


class Model(BaseModel):
    """A profile section: unknown fields are errors, values are frozen, numbers finite."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def _read_secret_file(value: dict[Any, Any]) -> str:
    path = Path(str(value["file"])).expanduser()
    try:
        with path.open("rb") as f:
            head = f.read(MAX_SECRET_FILE_BYTES + 1)
    except OSError as exc:
        raise ValueError(f"cannot read the secret file {path}: {exc.strerror}") from None
    if len(head) > MAX_SECRET_FILE_BYTES:
        raise ValueError(f"the secret file {path} is over {MAX_SECRET_FILE_BYTES} bytes; "
                         "it should hold the secret on its first line")
    try:
        lines = head.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        raise ValueError(f"the secret file {path} is not UTF-8 text") from None
    return lines[0].strip() if lines else ""


def _resolve_secret(value: Any) -> Any:
    """``${VAR}`` reads an environment variable, ``{file: PATH}`` a file's first line."""
    if isinstance(value, dict):
        if set(value) != {"file"}:
            raise ValueError("a secret is a string, ${VAR}, or {file: PATH}")
        return _read_secret_file(value)
    if isinstance(value, str):
        m = _ENV.fullmatch(value.strip())
        if m is not None:
            name = m.group(1)
            if name not in os.environ:
                raise ValueError(f"environment variable {name} is not set")
            return os.environ[name]
    return value


_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")

Secret = Annotated[
    SecretStr,
    BeforeValidator(_resolve_secret),
    WithJsonSchema({
        "anyOf": [
            {"type": "string", "description": "the secret itself, or ${ENV_VAR}"},
            {"type": "object", "properties": {"file": {"type": "string"}},
             "required": ["file"], "additionalProperties": False,
             "description": "the first line of a file"},
        ],
        "writeOnly": True,
    }),
]
"""A password or token: never printed (``**********``), from the profile, ``${VAR}``
or ``{file: PATH}``; ``.get_secret_value()`` where it is used."""


class AlsoAccepts:
    """JSON Schema: the type's own schema, or ``alternatives`` (forms a validator converts)."""

    def __init__(self, *alternatives: dict[str, Any]) -> None:
        self.alternatives = alternatives

    def __get_pydantic_json_schema__(self, schema: CoreSchema,
                                     handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        return {"anyOf": [handler(schema), *self.alternatives]}
