"""Compile a scenario's validated steps (nested ``if`` and ``repeat`` included).

Each ``say`` (a say step's, or a barge-in's) is resolved by the caller's
``say`` function, given the step's location in the profile so a problem names
its file and line; a say that cannot be resolved is left out (the problem is
reported by the caller, every one of them, before anything runs).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from loadcaller import profile as pf
from loadcaller import stepmodels as sm
from loadcaller.calls.scenario import (
    BargeIn,
    Dtmf,
    Expect,
    Hangup,
    If,
    Pause,
    Repeat,
    Say,
    Silence,
    Step,
    WaitForAgent,
)
from loadcaller.calls.utterance import Utterance

NS = 1_000_000_000
Loc = tuple[str | int, ...]
SayFn = Callable[[pf.SayArgs, Loc], Utterance | None]


def _ns(seconds: float) -> int:
    return int(seconds * NS)


def compile_steps(steps: Sequence[Any], loc: Loc, say: SayFn) -> tuple[Step, ...]:
    """The scenario's steps; ``loc`` is where ``steps`` are in the profile."""
    out: list[Step] = []
    for i, st in enumerate(steps):
        here = (*loc, i)
        if isinstance(st, pf.SayStep):
            utt = say(st.say, (*here, "say"))
            if utt is not None:
                out.append(Say(utt))
        elif isinstance(st, pf.WaitStep):
            args = st.wait_for_agent
            expect = None
            if args.expect is not None:
                expect = Expect(tuple(args.expect.words), args.expect.regex)
            out.append(WaitForAgent(None if args.timeout is None else _ns(args.timeout), expect))
        elif isinstance(st, pf.PauseStep):
            out.append(Pause(_ns(st.pause)))
        elif isinstance(st, pf.DtmfStep):
            out.append(Dtmf(st.dtmf))
        elif isinstance(st, sm.BargeInStep):
            b = st.barge_in
            utt = say(b.say, (*here, "barge_in", "say"))
            if utt is not None:
                low, high = ((b.after.min, b.after.max) if isinstance(b.after, sm.DurationRange)
                             else (b.after, None))
                out.append(BargeIn(utt, _ns(low), None if high is None else _ns(high),
                                   _ns(b.stop_timeout),
                                   None if b.timeout is None else _ns(b.timeout)))
        elif isinstance(st, sm.SilenceStep):
            out.append(Silence(_ns(st.silence)))
        elif isinstance(st, sm.IfStep):
            a = st.if_
            out.append(If(frozenset(a.outcome), compile_steps(a.then, (*here, "if", "then"), say),
                          compile_steps(a.else_, (*here, "if", "else"), say)))
        elif isinstance(st, sm.RepeatStep):
            r = st.repeat
            out.append(Repeat(r.times, compile_steps(r.steps, (*here, "repeat", "steps"), say)))
        else:
            out.append(Hangup())
    return tuple(out)


def says(steps: Sequence[Any], loc: Loc) -> Iterator[tuple[pf.SayArgs, Loc]]:
    """Every say in ``steps`` (nested ones and barge-ins' included) with its location."""
    for i, st in enumerate(steps):
        here = (*loc, i)
        if isinstance(st, pf.SayStep):
            yield st.say, (*here, "say")
        elif isinstance(st, sm.BargeInStep):
            yield st.barge_in.say, (*here, "barge_in", "say")
        elif isinstance(st, sm.IfStep):
            yield from says(st.if_.then, (*here, "if", "then"))
            yield from says(st.if_.else_, (*here, "if", "else"))
        elif isinstance(st, sm.RepeatStep):
            yield from says(st.repeat.steps, (*here, "repeat", "steps"))


def say_field(args: pf.SayArgs) -> str:
    """The field of a say that names its audio (for a problem's location)."""
    return ("phrase" if args.phrase else "wav" if args.wav else
            "recording" if args.recording else "text")
