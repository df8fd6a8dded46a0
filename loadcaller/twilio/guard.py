"""Guard rails for real phone calls: every PSTN call costs money and rings a phone.

Sans-I/O. :func:`allowed` decides whether a destination is on the profile's
allowlist (checked when the profile loads). :class:`CallBudget` keeps one
Twilio account's figures in one process (``PstnTarget.per_process`` keeps a
run's PSTN calls in one process, so they are the run's):

- calls per second: :meth:`CallBudget.next_turn` hands out creation instants at
  most ``1 / calls_per_second`` apart (Twilio's default is 1 call per second per
  account; over it Twilio queues or refuses, so we wait on our side);
- total minutes: :meth:`CallBudget.minutes_used` counts every call from its
  creation to its end (calls in progress count up to ``now``);
  :meth:`CallBudget.refusal` says why a new call must not be placed once
  ``max_minutes`` is spent. Calls in progress are not cut short.

Time is passed in (``now_ns``); the transport does the waiting.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

E164 = re.compile(r"^\+[1-9][0-9]{1,14}$")
ALLOW_ENTRY = re.compile(r"^\+[0-9]{0,15}\*?$")
NS_PER_S = 1_000_000_000


def allowed(number: str, allow: list[str] | tuple[str, ...]) -> bool:
    """Whether ``number`` is one of ``allow``: an exact E.164 number, or a prefix ending ``*``."""
    for entry in allow:
        if entry.endswith("*"):
            if number.startswith(entry[:-1]):
                return True
        elif number == entry:
            return True
    return False


@dataclass(slots=True)
class CallBudget:
    """One account's call rate and minutes in this process (see the module docstring)."""

    calls_per_second: float
    max_minutes: float
    _next_ns: int | None = None
    _ended_ns: int = 0  # call time of the calls that have ended
    _live: dict[str, int] = field(default_factory=dict)  # call id -> created at

    def next_turn(self, now_ns: int) -> int:
        """Nanoseconds to wait before creating the next call (the turn is taken now)."""
        gap = round(NS_PER_S / self.calls_per_second)
        turn = now_ns if self._next_ns is None else max(now_ns, self._next_ns)
        self._next_ns = turn + gap
        return turn - now_ns

    def minutes_used(self, now_ns: int) -> float:
        live = sum(now_ns - t for t in self._live.values())
        return (self._ended_ns + live) / (60 * NS_PER_S)

    def refusal(self, now_ns: int) -> str | None:
        """Why no new call may be placed now (the minutes are spent), or None."""
        used = self.minutes_used(now_ns)
        if used < self.max_minutes:
            return None
        return (f"local: PSTN call not placed: target.max_minutes {self.max_minutes:g} spent "
                f"({used:.2f} min of calls this run)")

    def started(self, call_id: str, now_ns: int) -> None:
        self._live[call_id] = now_ns

    def ended(self, call_id: str, now_ns: int) -> None:
        t = self._live.pop(call_id, None)
        if t is not None:
            self._ended_ns += now_ns - t
