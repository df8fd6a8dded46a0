"""Profile models of the steps that make callers behave like callers (validated here).

``barge_in`` (talk over the agent), ``silence`` (dead air), ``if`` (branch on the
last turn's outcome), ``repeat`` (a loop with a cap) and ``expect`` (what a
reply must say) as :mod:`loadcaller.profile` validates them; compiled to
:mod:`loadcaller.calls.scenario`'s dataclasses by :mod:`loadcaller.compile`.
``if`` and ``repeat`` hold steps of any kind, so their ``steps`` are resolved
once :data:`loadcaller.profile.Step` exists (:func:`resolve_step_type`).

A scenario can only run a bounded number of steps: ``repeat`` needs ``times``
and a scenario's steps, loops multiplied out, are at most
:data:`MAX_SCENARIO_STEPS`.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Any, Final

from pydantic import BeforeValidator, Field, field_validator, model_validator

from loadcaller.calls import asr
from loadcaller.config import AlsoAccepts, Duration, NotBool
from loadcaller.config import Model as _Model
from loadcaller.media.outcomes import TurnOutcome

if TYPE_CHECKING:
    from loadcaller.profile import SayArgs, Step

MAX_SCENARIO_STEPS: Final = 10_000  # steps one call may run, repeats multiplied out
MAX_REPEAT: Final = 1_000
MAX_EXPECT_WORDS: Final = 50
IF_OUTCOMES: Final = (*(o.value for o in TurnOutcome), "none")


class ExpectArgs(_Model):
    """What the reply must contain: all ``words`` (a list, or one string split on
    spaces) and/or a ``regex`` (case-insensitive), checked on speech recognition of
    what the caller heard. Needs ``pip install 'loadcaller[asr]'``."""

    words: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        default_factory=list, max_length=MAX_EXPECT_WORDS)
    regex: str | None = Field(None, max_length=500)

    @model_validator(mode="before")
    @classmethod
    def _forms(cls, v: Any) -> Any:
        if isinstance(v, str):
            return {"words": v.split()}
        if isinstance(v, dict) and isinstance(v.get("words"), str):
            return {**v, "words": v["words"].split()}
        return v

    @model_validator(mode="after")
    def _check(self) -> ExpectArgs:
        if not self.words and self.regex is None:
            raise ValueError("expect needs words or a regex")
        if self.regex is not None:
            try:
                re.compile(self.regex)
            except re.error as exc:
                raise ValueError(f"expect.regex is not a regular expression: {exc}") from None
        if not asr.available():
            raise ValueError(asr.MISSING)
        return self


def _range(v: Any) -> Any:
    """``300ms..900ms`` -> {"min": "300ms", "max": "900ms"}; a single duration stays."""
    if isinstance(v, str) and ".." in v:
        low, _, high = v.partition("..")
        return {"min": low.strip(), "max": high.strip()}
    return v


class DurationRange(_Model):
    min: Duration
    max: Duration

    @model_validator(mode="after")
    def _ordered(self) -> DurationRange:
        if self.max < self.min:
            raise ValueError(f"the range's end ({self.max:g} s) is before its start "
                             f"({self.min:g} s)")
        return self


class BargeInArgs(_Model):
    """Say ``say`` ``after`` (a duration, or a range ``300ms..900ms`` drawn per call)
    into the agent's reply as heard; the agent still speaking ``stop_timeout``
    after the interruption began is ``not_stopped``."""

    say: Annotated[SayArgs, BeforeValidator(lambda v: {"text": v} if isinstance(v, str) else v),
                   AlsoAccepts({"type": "string", "minLength": 1})]
    after: Annotated[Duration | DurationRange, BeforeValidator(_range),
                     AlsoAccepts({"type": "string", "pattern": r"^[^.]+\.\.[^.]+$"})] = 0.5
    stop_timeout: Duration = Field(3.0, gt=0)
    timeout: Duration | None = Field(None, description="for the reply to begin "
                                     "(default: call.turn_timeout)")


class BargeInStep(_Model):
    barge_in: BargeInArgs


class SilenceStep(_Model):
    silence: Duration = Field(gt=0, description="say nothing this long; measure the reprompt")


class IfArgs(_Model):
    """Run ``then`` when the last measured turn's outcome is ``outcome`` (or one of a
    list), else ``else``. Before any turn the outcome is ``none``."""

    outcome: Annotated[list[str], AlsoAccepts({"enum": list(IF_OUTCOMES)})] = Field(min_length=1)
    then: list[Step] = Field(min_length=1)
    else_: list[Step] = Field(default_factory=list, alias="else")

    @field_validator("outcome", mode="before")
    @classmethod
    def _one_or_more(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("outcome")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        bad = [o for o in v if o not in IF_OUTCOMES]
        if bad:
            raise ValueError(f"unknown turn outcome {bad[0]!r}; one of: {', '.join(IF_OUTCOMES)}")
        return v


class IfStep(_Model):
    if_: IfArgs = Field(alias="if")


class RepeatArgs(_Model):
    """Run ``steps`` ``times`` times (a loop always has a cap)."""

    times: Annotated[int, NotBool] = Field(ge=1, le=MAX_REPEAT)
    steps: list[Step] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _capped(cls, v: Any) -> Any:
        if isinstance(v, dict) and "times" not in v:
            raise ValueError("repeat needs times (how many rounds): a loop without a cap "
                             "would never end")
        return v


class RepeatStep(_Model):
    repeat: RepeatArgs


def expanded(steps: list[Any]) -> int:
    """The most steps a call can run through ``steps``: repeats multiplied out."""
    total = 0
    for st in steps:
        if isinstance(st, IfStep):
            total += 1 + max(expanded(st.if_.then), expanded(st.if_.else_))
        elif isinstance(st, RepeatStep):
            total += 1 + st.repeat.times * expanded(st.repeat.steps)
        else:
            total += 1
        if total > MAX_SCENARIO_STEPS:  # stop multiplying: the answer is already "too many"
            return total
    return total


def step_cap_problem(steps: list[Any]) -> str | None:
    n = expanded(steps)
    if n > MAX_SCENARIO_STEPS:
        return (f"the scenario could run over {MAX_SCENARIO_STEPS:,} steps (repeats "
                f"multiplied out: {n:,}+); lower a repeat's times")
    return None


def resolve_step_type(step_type: Any, say_args: Any) -> None:
    """Give ``if`` and ``repeat`` the profile's step union, ``barge_in`` its say
    (called once :mod:`loadcaller.profile` has defined them)."""
    namespace = {"Step": step_type, "SayArgs": say_args}
    for model in (BargeInArgs, BargeInStep, IfArgs, RepeatArgs, IfStep, RepeatStep):
        model.model_rebuild(_types_namespace=namespace)
