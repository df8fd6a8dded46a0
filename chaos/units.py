"""Durations and addresses as written in YAML ("250ms", "1m30s", "127.0.0.1:9000")."""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import BeforeValidator

_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(us|ms|s|m|h)")


def parse_duration(value: Any) -> float:
    """Seconds from a number or a string like "250ms", "30s", "1m30s" (finite, >= 0)."""
    if isinstance(value, bool):
        raise ValueError("expected a duration like 250ms, 30s or 1m30s")
    if isinstance(value, int | float):
        return _finite(float(value), value)
    if isinstance(value, str):
        text = value.strip().replace(" ", "")
        try:
            seconds = float(text)
        except ValueError:
            pos, seconds = 0, 0.0
            for m in _PART.finditer(text):
                if m.start() != pos:
                    break
                seconds += float(m.group(1)) * _UNITS[m.group(2)]
                pos = m.end()
            if pos != len(text) or not text:
                raise ValueError(
                    f"bad duration {value!r}; expected e.g. 250ms, 30s, 2m, 1m30s"
                ) from None
        return _finite(seconds, value)
    raise ValueError("expected a duration like 250ms, 30s or 1m30s")


def _finite(seconds: float, given: Any) -> float:
    # YAML's .inf and .nan, "inf", "nan" and "1e999" are floats; a NaN passes `< 0`
    if not math.isfinite(seconds):
        raise ValueError(f"a duration must be a finite number of seconds, not {given!r}")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


def parse_hostport(value: Any) -> tuple[str, int]:
    """(host, port) from "host:port", "[v6]:port" or a two-item list."""
    if isinstance(value, list | tuple) and len(value) == 2:
        host, port = value
    elif isinstance(value, str) and ":" in value:
        host, _, port = value.rpartition(":")
        host = host.strip("[]")
    else:
        raise ValueError(f"expected host:port, got {value!r}")
    try:
        port_num = int(port)
    except (TypeError, ValueError):
        raise ValueError(f"bad port in {value!r}") from None
    if not 0 <= port_num <= 65535:
        raise ValueError(f"port out of range in {value!r}")
    if not host:
        raise ValueError(f"missing host in {value!r}")
    return str(host), port_num


Duration = Annotated[float, BeforeValidator(parse_duration)]
HostPort = Annotated[tuple[str, int], BeforeValidator(parse_hostport)]
