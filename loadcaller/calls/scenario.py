"""A scenario as the call runner executes it: compiled steps, audio resolved.

Profiles (YAML, validated) compile to these frozen dataclasses; nothing below
the loader reads raw dicts.
"""

from __future__ import annotations

from dataclasses import dataclass

from loadcaller.calls.utterance import Utterance


@dataclass(frozen=True, slots=True)
class Say:
    """Speak an utterance; the turn's clock starts at its last frame."""

    utterance: Utterance


@dataclass(frozen=True, slots=True)
class WaitForAgent:
    """Wait for the agent's reply (or greeting) to start, then to end."""

    timeout_ns: int | None = None  # None: the call's turn timeout


@dataclass(frozen=True, slots=True)
class Pause:
    """Stay silent (sending silence frames) for a while."""

    duration_ns: int


@dataclass(frozen=True, slots=True)
class Dtmf:
    """Send DTMF digits."""

    digits: str


@dataclass(frozen=True, slots=True)
class Hangup:
    """End the call."""


Step = Say | WaitForAgent | Pause | Dtmf | Hangup


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    steps: tuple[Step, ...]
    weight: float = 1.0

    @property
    def turns(self) -> int:
        """How many measured turns (a say followed by a wait_for_agent)."""
        count, said = 0, False
        for step in self.steps:
            if isinstance(step, Say):
                said = True
            elif isinstance(step, WaitForAgent) and said:
                count, said = count + 1, False
        return count


@dataclass(frozen=True, slots=True)
class CallPolicy:
    """Timing rules every call follows."""

    turn_timeout_ns: int = 8_000_000_000
    max_reply_ns: int = 30_000_000_000
    max_call_ns: int = 300_000_000_000
    give_up_after_no_response: int = 2  # consecutive unanswered waits, then hang up
