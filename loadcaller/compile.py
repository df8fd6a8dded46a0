"""Compile a validated :class:`~loadcaller.profile.Profile` into engine objects.

Audio is resolved here, once per distinct utterance, and shared by every call.
A problem with it (a WAV file that cannot be read, an unknown pack phrase, text
with no espeak-ng to speak it) is a :class:`ProfileError` naming the file, the
line and the field, like a validation error; every one is reported, not just
the first. :func:`check_profile` finds the same problems without synthesising
speech (``loadcaller validate``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chaos.config import ChaosConfig, parse_config
from loadcaller import profile as pf
from loadcaller.audio.errors import AudioError
from loadcaller.audio.pack import load_pack_audio
from loadcaller.audio.synth import Voice, espeak_available, resolve_utterance
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
        self.problems: list[str] = []  # "file:line: field: message", one per bad utterance

    def get(self, args: pf.SayArgs, voice: pf.Voice, where: str, *,
            synthesize: bool = True) -> Utterance | None:
        """The utterance, or None after recording the problem in :attr:`problems`.

        ``synthesize=False`` checks text without running espeak-ng (when it is
        installed, any text can be spoken) and returns None for it.
        """
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
            elif args.text and not synthesize and espeak_available():
                _voice(v)  # the voice is checked; the text needs no check
                return None
            else:
                wav = (self.base_dir / args.wav) if args.wav else None
                audio = resolve_utterance(args.text, wav, _voice(v), self.cache_dir)
        except (AudioError, OSError, KeyError, ValueError, MemoryError, OverflowError) as exc:
            msg = exc.args[0] if exc.args else exc
            self.problems.append(f"{where}: {msg}")
            return None
        utt = make_utterance(args.phrase or args.wav or args.text or "?", audio)
        self.cache[key] = utt
        return utt


def _where_say(p: pf.Profile, source: str, si: int, i: int, args: pf.SayArgs) -> str:
    field = "phrase" if args.phrase else "wav" if args.wav else "text"
    return p.where(("scenarios", si, "steps", i, "say", field), source)


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
            if isinstance(st, pf.SayStep):
                utt = utts.get(st.say, p.voice, _where_say(p, source, si, i, st.say))
                if utt is not None:
                    steps.append(Say(utt))
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
    if utts.problems:
        raise ProfileError("\n".join(utts.problems))
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


def check_profile(p: pf.Profile, *, source: str = "<profile>", base_dir: Path = Path(".")) -> None:
    """Raise :class:`ProfileError` listing every problem compiling ``p`` would meet.

    Reads and decodes WAV files and looks up pack phrases as a run would, but
    synthesises nothing: with espeak-ng installed any text can be spoken, without
    it only the pack's texts (see :func:`loadcaller.audio.synth.synthesize`).
    Nothing is started, dialled or written.
    """
    utts = _Utterances(base_dir, None)
    for si, sc in enumerate(p.scenarios):
        for i, st in enumerate(sc.steps):
            if isinstance(st, pf.SayStep):
                utts.get(st.say, p.voice, _where_say(p, source, si, i, st.say),
                         synthesize=False)
    if utts.problems:
        raise ProfileError("\n".join(utts.problems))
    compile_shape(p.load)
