"""Building blocks of the validated configuration (profiles and transport targets)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, SecretStr

from chaos.units import parse_duration

Duration = Annotated[float, BeforeValidator(parse_duration)]


class Model(BaseModel):
    """A profile section: unknown fields are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _resolve_secret(value: Any) -> Any:
    """``${VAR}`` reads an environment variable, ``{file: PATH}`` a file's first line."""
    if isinstance(value, dict):
        if set(value) != {"file"}:
            raise ValueError("a secret is a string, ${VAR}, or {file: PATH}")
        path = Path(str(value["file"])).expanduser()
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise ValueError(f"cannot read the secret file {path}: {exc.strerror}") from None
        return lines[0].strip() if lines else ""
    if isinstance(value, str):
        m = _ENV.fullmatch(value.strip())
        if m is not None:
            name = m.group(1)
            if name not in os.environ:
                raise ValueError(f"environment variable {name} is not set")
            return os.environ[name]
    return value


_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")

Secret = Annotated[SecretStr, BeforeValidator(_resolve_secret)]
"""A password or token: never printed (``**********``), from the profile, ``${VAR}``
or ``{file: PATH}``; ``.get_secret_value()`` where it is used."""
