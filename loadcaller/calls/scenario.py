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
class Expect:
    """What a reply must contain, checked on what the caller heard (speech recognition).

    ``words`` must all appear (whole words, any case); ``regex``, when given, must
    match the transcript (``re.search``, case-insensitive).
    """

    words: tuple[str, ...] = ()
    regex: str | None = None


@dataclass(frozen=True, slots=True)
class WaitForAgent:
    """Wait for the agent's reply (or greeting) to start, then to end."""

    timeout_ns: int | None = None  # None: the call's turn timeout
    expect: Expect | None = None


@dataclass(frozen=True, slots=True)
class BargeIn:
    """Talk over the agent: say ``utterance`` ``after_ns`` into its reply as heard.

    With ``after_max_ns`` the instant is drawn per call, uniformly in
    [after_ns, after_max_ns] from the script's seeded generator. The agent's stop
    reaction is measured from the first interrupting frame sent to the end of the
    agent's audio as heard; ``stop_timeout_ns`` after that frame an agent still
    speaking is ``not_stopped``.
    """

    utterance: Utterance
    after_ns: int
    after_max_ns: int | None = None
    stop_timeout_ns: int = 3_000_000_000
    timeout_ns: int | None = None  # for the reply to begin; None: the call's turn timeout


@dataclass(frozen=True, slots=True)
class Silence:
    """Say nothing for up to ``duration_ns`` and measure whether the agent reprompts."""

    duration_ns: int


@dataclass(frozen=True, slots=True)
class If:
    """Run ``then`` when the last measured turn's outcome is one of ``outcomes``,
    else ``orelse`` (no turn measured yet: the outcome is ``none``)."""

    outcomes: frozenset[str]
    then: tuple[Step, ...]
    orelse: tuple[Step, ...] = ()


@dataclass(frozen=True, slots=True)
class Repeat:
    """Run ``steps`` ``times`` times over."""

    times: int
    steps: tuple[Step, ...]


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


Step = Say | WaitForAgent | Pause | Dtmf | Hangup | BargeIn | Silence | If | Repeat


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    steps: tuple[Step, ...]
    weight: float = 1.0

    @property
    def turns(self) -> int:
        """How many measured turns (a say followed by a wait_for_agent)."""
        count, said = 0, False
        for step in flat_steps(self.steps):
            if isinstance(step, Say | BargeIn):
                said = True
            elif isinstance(step, WaitForAgent) and said:
                count, said = count + 1, False
        return count


def flat_steps(steps: tuple[Step, ...]) -> list[Step]:
    """Every leaf step once, in order (each branch of an ``if``, a ``repeat``'s body once)."""
    out: list[Step] = []
    for step in steps:
        if isinstance(step, If):
            out += flat_steps(step.then) + flat_steps(step.orelse)
        elif isinstance(step, Repeat):
            out += flat_steps(step.steps)
        else:
            out.append(step)
    return out


def expanded_steps(steps: tuple[Step, ...]) -> int:
    """The most steps one call can run: repeats multiplied out, the longer branch of an if."""
    total = 0
    for step in steps:
        if isinstance(step, If):
            total += 1 + max(expanded_steps(step.then), expanded_steps(step.orelse))
        elif isinstance(step, Repeat):
            total += 1 + step.times * expanded_steps(step.steps)
        else:
            total += 1
    return total


@dataclass(frozen=True, slots=True)
class CallPolicy:
    """Timing rules every call follows."""

    turn_timeout_ns: int = 8_000_000_000
    max_reply_ns: int = 30_000_000_000
    max_call_ns: int = 300_000_000_000
    give_up_after_no_response: int = 2  # consecutive unanswered waits, then hang up
    # the persona's (loadcaller.audio.persona): hang up as caller_abandoned when a reply
    # takes longer than this; and the noise frames sent, looped, instead of silence
    patience_ns: int | None = None
    noise_bed: tuple[bytes, ...] = ()
