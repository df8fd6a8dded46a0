"""Compile a validated :class:`~loadcaller.profile.Profile` into engine objects.

Audio is resolved here, once per distinct utterance, and shared by every call.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chaos.config import ChaosConfig, parse_config
from loadcaller import profile as pf
from loadcaller.audio.errors import AudioError
from loadcaller.audio.pack import load_pack_audio
from loadcaller.audio.synth import Voice, resolve_utterance
from loadcaller.calls.load import LoadPlan
from loadcaller.calls.scenario import (
    CallPolicy,
    Dtmf,
    Hangup,
    Pause,
    Say,
    Scenario,
    Step,
    WaitForAgent,
)
from loadcaller.calls.utterance import Utterance, make_utterance
from loadcaller.errors import ProfileError
from loadcaller.swarm import shapes
from loadcaller.swarm.shapes import Shape
from loadcaller.transports.base import Target

NS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class RunSpec:
    """Everything a run needs, compiled."""

    name: str
    target: Target
    plan: LoadPlan
    policy: CallPolicy
    scenarios: tuple[Scenario, ...]
    seed: int | None
    shape: Shape | None = None  # load.shape; None: constant users for the duration
    chaos: ChaosConfig | None = None  # a chaos proxy started with the callers
    media_outbound: Any = None  # packet-model specs for the caller's own media path
    media_inbound: Any = None

    @property
    def transport(self) -> str:
        """The target's transport (``twilio``, ``sip``, ...)."""
        return self.target.transport


def _voice(v: pf.Voice) -> Voice:
    return Voice(name=v.name, rate=v.rate, pitch=v.pitch)


class _Utterances:
    def __init__(self, base_dir: Path, cache_dir: Path | None) -> None:
        self.base_dir = base_dir
        self.cache_dir = cache_dir
        self.cache: dict[tuple[object, ...], Utterance] = {}

    def get(self, args: pf.SayArgs, voice: pf.Voice, where: str) -> Utterance:
        v = args.voice or voice
        key = (args.text, args.phrase, args.wav, v)
        if key in self.cache:
            return self.cache[key]
        try:
            if args.phrase:
                accent = v.name.split("+", 1)[0]
                try:
                    audio = load_pack_audio(args.phrase, accent)
                except KeyError:
                    audio = load_pack_audio(args.phrase)
            else:
                wav = (self.base_dir / args.wav) if args.wav else None
                audio = resolve_utterance(args.text, wav, _voice(v), self.cache_dir)
        except (AudioError, OSError, KeyError, ValueError) as exc:
            msg = exc.args[0] if exc.args else exc
            raise ProfileError(f"{where}: {msg}") from None
        utt = make_utterance(args.phrase or args.wav or args.text or "?", audio)
        self.cache[key] = utt
        return utt


def compile_shape(load: pf.Load) -> Shape | None:
    """The pure load shape (``loadcaller.swarm.shapes``) a profile's ``load`` asks for."""
    sh, users, rate, dur = load.shape, load.users, load.spawn_rate, load.duration
    if sh is None or isinstance(sh, pf.ConstantShape):
        return None if sh is None else shapes.Constant(users, rate, dur)
    if isinstance(sh, pf.RampShape):
        end = users if sh.end_users is None else sh.end_users
        return shapes.Ramp(sh.start_users, end, sh.ramp, dur)
    if isinstance(sh, pf.StepShape):
        top = users if sh.max_users is None else sh.max_users
        return shapes.Step(sh.start_users, sh.step_users, sh.step_time, top, rate, dur)
    if isinstance(sh, pf.SpikeShape):
        return shapes.Spike(users, sh.spike_users, sh.at, sh.hold, rate, dur)
    if isinstance(sh, pf.SoakShape):
        return shapes.Soak(users, sh.ramp, dur)
    conc = users if sh.max_concurrency is None else sh.max_concurrency
    return shapes.Open(sh.rate, conc, dur, sh.late_after)


def compile_profile(p: pf.Profile, *, source: str = "<profile>", base_dir: Path = Path("."),
                    cache_dir: Path | None = None) -> RunSpec:
    """Resolve audio and build the engine's objects from a profile."""
    utts = _Utterances(base_dir, cache_dir)
    scenarios = []
    for si, sc in enumerate(p.scenarios):
        steps: list[Step] = []
        for i, st in enumerate(sc.steps):
            where = f"{source}: scenarios[{si}].steps[{i}]"
            if isinstance(st, pf.SayStep):
                steps.append(Say(utts.get(st.say, p.voice, where)))
            elif isinstance(st, pf.WaitStep):
                timeout = st.wait_for_agent.timeout
                steps.append(WaitForAgent(None if timeout is None else int(timeout * NS)))
            elif isinstance(st, pf.PauseStep):
                steps.append(Pause(int(st.pause * NS)))
            elif isinstance(st, pf.DtmfStep):
                steps.append(Dtmf(st.dtmf))
            else:
                steps.append(Hangup())
        scenarios.append(Scenario(sc.name, tuple(steps), sc.weight))
    return RunSpec(
        name=p.name,
        target=p.target,
        plan=LoadPlan(p.load.users, p.load.spawn_rate, p.load.duration, p.load.stop_timeout),
        policy=CallPolicy(turn_timeout_ns=int(p.call.turn_timeout * NS),
                          max_reply_ns=int(p.call.max_reply * NS),
                          max_call_ns=int(p.call.max_call_duration * NS),
                          give_up_after_no_response=p.call.give_up_after_no_response),
        scenarios=tuple(scenarios),
        seed=p.seed,
        shape=compile_shape(p.load),
        chaos=None if p.chaos is None else parse_config(p.chaos, source),
        media_outbound=p.media.outbound if p.media else None,
        media_inbound=p.media.inbound if p.media else None,
    )
