"""Caller data: per-call variables from a CSV file, as SIPp's injection files.

``data: {csv: callers.csv, order: sequential}`` reads a header row and data
rows; ``{column}`` in a ``say`` text, a Twilio target's ``custom_parameters``
value or a SIP target's ``headers`` value is replaced by that call's row.

Rows are read once, at compile time, and checked there: a missing file, an
empty one, bad UTF-8, a row with the wrong number of cells, a control
character in a cell (it would become a SIP header line) or a ``{column}`` the
file does not have is a profile error naming the file and line. Texts with
variables are synthesised for every row at compile time (see
:data:`MAX_ROWS`), so nothing is ever synthesised on the media clock.

Which row a call gets:

- ``sequential``  the next row, round robin (per process);
- ``random``      a row drawn from the run's seeded generator;
- ``per_user``    one row per Locust user, the same for all its calls.
"""

from __future__ import annotations

import csv
import io
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from pydantic import Field

from loadcaller.config import Model
from loadcaller.transports.base import Target

__all__ = ["MAX_ROWS", "CallerData", "DataError", "DataSpec", "load_caller_data",
           "substitute", "variables_in"]

MAX_ROWS: Final = 1000
"""Rows pre-rendered at compile time: each row's texts are synthesised (about 50 ms each
with espeak-ng, cached on disk), so a thousand rows take a minute the first time."""
MAX_BYTES: Final = 4 * 1024 * 1024
MAX_CELL: Final = 200

_VAR: Final = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")


class DataSpec(Model):
    """Per-call variables from a CSV file (header row first)."""

    csv: str = Field(description="path, relative to the profile")
    order: Literal["sequential", "random", "per_user"] = "sequential"


class DataError(ValueError):
    """A caller-data file that cannot be used; the message starts ``file:line:``."""


@dataclass(frozen=True, slots=True)
class CallerData:
    """The rows of a caller-data file and how calls take them."""

    columns: tuple[str, ...]
    rows: tuple[dict[str, str], ...]
    order: str = "sequential"

    def pick(self, *, calls: int, rng: random.Random, user: int | None) -> int:
        """The row index for a call: ``calls`` placed before it, the user's index."""
        if self.order == "random":
            return rng.randrange(len(self.rows))
        if self.order == "per_user" and user is not None:
            return user % len(self.rows)
        return calls % len(self.rows)


def variables_in(text: str) -> list[str]:
    """The ``{column}`` names in ``text``, in order."""
    return _VAR.findall(text)


def substitute(text: str, row: dict[str, str]) -> str:
    """``text`` with every ``{column}`` of ``row`` replaced (others left as they are)."""
    return _VAR.sub(lambda m: row.get(m.group(1), m.group(0)), text)


def load_caller_data(path: Path, order: str = "sequential") -> CallerData:
    """Read and check a caller-data CSV file; :class:`DataError` with file:line if bad."""
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_BYTES + 1)
    except OSError as exc:
        raise DataError(f"{path}: cannot read the caller data: {exc.strerror or exc}") from None
    if len(raw) > MAX_BYTES:
        raise DataError(f"{path}:1: the file is over {MAX_BYTES // 1024 // 1024} MiB")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(f"{path}:{line}: not UTF-8 (byte 0x{raw[exc.start]:02x}); save the "
                        "file as UTF-8") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    records: list[tuple[int, list[str]]] = []  # (the row's first line, cells)
    start = 1
    try:
        for cells in reader:
            if any(c.strip() for c in cells):
                records.append((start, cells))
            start = reader.line_num + 1
    except csv.Error as exc:
        raise DataError(f"{path}:{reader.line_num}: {exc}") from None
    if not records:
        raise DataError(f"{path}:1: the file is empty; it needs a header row and data rows")
    line, header = records[0]
    columns = tuple(c.strip() for c in header)
    for c in columns:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", c):
            raise DataError(f"{path}:{line}: column {c!r} is not a name (letters, digits, _)")
    if len(set(columns)) != len(columns):
        raise DataError(f"{path}:{line}: a column name appears twice")
    if len(records) == 1:
        raise DataError(f"{path}:{line}: a header row and no data rows")
    if len(records) - 1 > MAX_ROWS:
        raise DataError(f"{path}: {len(records) - 1} rows; at most {MAX_ROWS} (every row's "
                        "texts are synthesised before the run)")
    rows = []
    for line, cells in records[1:]:
        if len(cells) != len(columns):
            raise DataError(f"{path}:{line}: {len(cells)} cells, the header has "
                            f"{len(columns)}")
        for c in cells:
            if _CONTROL.search(c) or len(c) > MAX_CELL:
                raise DataError(f"{path}:{line}: a cell has a control character or is over "
                                f"{MAX_CELL} characters")
        rows.append(dict(zip(columns, (c.strip() for c in cells), strict=True)))
    return CallerData(columns, tuple(rows), order)


def target_for_row(target: Target, row: dict[str, str]) -> Target:
    """``target`` with ``{column}`` filled in its custom parameters or headers."""
    updates = {}
    for name in ("custom_parameters", "headers"):
        values = getattr(target, name, None)
        if isinstance(values, dict) and any(variables_in(str(v)) for v in values.values()):
            updates[name] = {k: substitute(str(v), row) for k, v in values.items()}
    return target.model_copy(update=updates) if updates else target


def target_variables(target: Target) -> list[tuple[str, str]]:
    """(field, variable) for every ``{column}`` the target's templates use."""
    out = []
    for name in ("custom_parameters", "headers"):
        values = getattr(target, name, None)
        if isinstance(values, dict):
            for k, v in values.items():
                out += [(f"{name}.{k}", var) for var in variables_in(str(v))]
    return out
