"""Compile a validated :class:`~loadcaller.profile.Profile` into engine objects.

Audio is resolved here, once per distinct utterance, and shared by every call.
A problem with it (a WAV file that cannot be read, an unknown pack phrase, text
with no espeak-ng to speak it) is a :class:`ProfileError` naming the file, the
line and the field, like a validation error; every one is reported, not just
the first. :func:`check_profile` finds the same problems without synthesising
speech (``loadcaller validate``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from chaos.config import ChaosConfig, parse_config
from loadcaller import profile as pf
from loadcaller import stepcompile
from loadcaller.audio.errors import AudioError
from loadcaller.audio.pack import load_pack_audio
from loadcaller.audio.persona import Persona, PersonaAudio
from loadcaller.audio.recordings import Recording, read_manifest
from loadcaller.audio.synth import Voice, espeak_available, resolve_utterance, synthesize
from loadcaller.calls.callerdata import (
    CallerData,
    DataError,
    load_caller_data,
    substitute,
    target_variables,
    variables_in,
)
from loadcaller.calls.load import LoadPlan
from loadcaller.calls.scenario import CallPolicy, Scenario
from loadcaller.calls.utterance import Utterance, make_utterance
from loadcaller.errors import ProfileError
from loadcaller.gates.parse import Gate
from loadcaller.swarm import shapes
from loadcaller.swarm.shapes import Shape
from loadcaller.transports.base import Target

NS = 1_000_000_000
MAX_VARIANTS = 5000
"""Texts with caller-data variables are synthesised per row and persona before the run:
about 50 ms each with espeak-ng (and a sox run for a gsm persona), so 5,000 take minutes."""


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
    gates: tuple[Gate, ...] = ()  # SLO gates judged on the summary (loadcaller.gates)
    personas: tuple[PersonaRun, ...] = ()  # empty: plain callers, ``scenarios`` as they are
    data: CallerData | None = None  # per-call variables (loadcaller.calls.callerdata)
    scenario_persona: tuple[int | None, ...] = ()  # [scenario]: the persona it names

    @property
    def transport(self) -> str:
        """The target's transport (``twilio``, ``sip``, ...)."""
        return self.target.transport


@dataclass(frozen=True, slots=True)
class PersonaRun:
    """A persona compiled: its policy (patience, noise bed) and its scenarios' audio."""

    name: str
    weight: float
    policy: CallPolicy
    scenarios: tuple[tuple[Scenario, ...], ...]  # [data row][scenario]; one row without data


def _voice(v: pf.Voice) -> Voice:
    return Voice(name=v.name, rate=v.rate, pitch=v.pitch)


class _Utterances:
    def __init__(self, base_dir: Path, cache_dir: Path | None) -> None:
        self.base_dir = base_dir
        self.cache_dir = cache_dir
        self.cache: dict[tuple[object, ...], Utterance] = {}
        self.problems: list[str] = []  # "file:line: field: message", one per bad utterance
        self.recordings: dict[str, Recording] | None = None

    def get(self, args: pf.SayArgs, voice: pf.Voice, where: str, *,
            synthesize: bool = True, persona: PersonaAudio | None = None,
            row: dict[str, str] | None = None) -> Utterance | None:
        """The utterance, or None after recording the problem in :attr:`problems`.

        ``synthesize=False`` checks text without running espeak-ng (when it is
        installed, any text can be spoken) and returns None for it. A persona's
        utterance is spoken its way and goes through its noise and line; ``row``
        fills the text's ``{column}`` variables.
        """
        v = (persona.spec.voice if persona else None) or args.voice or voice
        if persona is not None and args.voice is not None:
            v = args.voice  # a step's own voice wins over the persona's
        text = substitute(args.text, row) if args.text and row else args.text
        key = (text, args.phrase, args.wav, args.recording, v,
               persona.name if persona else None)
        if key in self.cache:
            return self.cache[key]
        try:
            if args.recording:
                rec = (self.recordings or {}).get(args.recording)
                if rec is None:
                    raise KeyError(f"no recording {args.recording!r}: "
                                   + ("the profile has no recordings: directory"
                                      if self.recordings is None else "not in the manifest"))
                audio = resolve_utterance(None, rec.path, _voice(v), None)
            elif text and persona is not None and synthesize:
                speech = persona.words(text)
                audio = persona.join([_speak(t, _voice(v), self.cache_dir)
                                      for t in speech.pieces], speech.gap_s)
            elif args.phrase:
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
                audio = resolve_utterance(text, wav, _voice(v), self.cache_dir)
            if persona is not None and synthesize:
                audio = persona.process(audio)
        except (AudioError, OSError, KeyError, ValueError, MemoryError, OverflowError) as exc:
            msg = exc.args[0] if exc.args else exc
            self.problems.append(f"{where}: {msg}")
            return None
        utt = make_utterance(args.phrase or args.wav or args.recording or text or "?", audio)
        self.cache[key] = utt
        return utt


def _speak(text: str, voice: Voice, cache_dir: Path | None) -> bytes:
    """One piece of a persona's speech (espeak-ng, cached on disk); ``get`` shadows the name."""
    return synthesize(text, voice, cache_dir=cache_dir)


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
    data = _extras(p, source, base_dir, utts)
    policy = CallPolicy(turn_timeout_ns=int(p.call.turn_timeout * NS),
                        max_reply_ns=int(p.call.max_reply * NS),
                        max_call_ns=int(p.call.max_call_duration * NS),
                        give_up_after_no_response=p.call.give_up_after_no_response)
    personas: list[PersonaRun] = []
    specs = p.all_personas()
    if specs or data is not None:
        rows: list[dict[str, str] | None] = list(data.rows) if data else [None]
        choices: list[Persona | None] = [*specs] or [None]
        for spec in choices:
            audio = None if spec is None else PersonaAudio(spec, seed=p.seed, base_dir=base_dir)
            by_row = tuple(_scenarios(p, source, utts, audio, row) for row in rows)
            if utts.problems:
                break
            run_policy = policy if spec is None else replace(
                policy, noise_bed=audio.bed_frames() if audio else (),
                patience_ns=None if spec.patience is None else int(spec.patience * NS))
            personas.append(PersonaRun("" if spec is None else spec.name,
                                       1.0 if spec is None else spec.weight, run_policy, by_row))
    scenarios = personas[0].scenarios[0] if personas else _scenarios(p, source, utts)
    names = [s.name for s in specs]
    if utts.problems:
        raise ProfileError("\n".join(utts.problems))
    return RunSpec(
        name=p.name,
        target=p.target,
        plan=LoadPlan(p.load.users, p.load.spawn_rate, p.load.duration, p.load.stop_timeout),
        policy=policy,
        scenarios=scenarios,
        seed=p.seed,
        shape=compile_shape(p.load),
        chaos=None if p.chaos is None else parse_config(p.chaos, source),
        media_outbound=p.media.outbound if p.media else None,
        media_inbound=p.media.inbound if p.media else None,
        gates=tuple(p.gates),
        personas=tuple(personas),
        data=data,
        scenario_persona=tuple(None if sc.persona is None else names.index(sc.persona)
                               for sc in p.scenarios),
    )


def _extras(p: pf.Profile, source: str, base_dir: Path, utts: _Utterances) -> CallerData | None:
    """Read the recordings manifest and the caller data; problems go to ``utts``."""
    if p.recordings is not None:
        try:
            utts.recordings = read_manifest(base_dir / p.recordings)
        except ValueError as exc:
            utts.problems.append(f"{p.where(('recordings',), source)}: {exc}")
    for i, spec in enumerate(p.all_personas()):
        try:
            PersonaAudio(spec, seed=p.seed, base_dir=base_dir).check()
        except (ValueError, AudioError, OSError) as exc:
            loc = ("persona",) if p.persona is not None else ("personas", i)
            utts.problems.append(f"{p.where(loc, source)}: {exc}")
    if p.data is None:
        return None
    try:
        data = load_caller_data(base_dir / p.data.csv, p.data.order)
    except DataError as exc:
        utts.problems.append(f"{p.where(('data', 'csv'), source)}: {exc}")
        return None
    used = [(p.where((*loc, "text"), source), var)
            for si, sc in enumerate(p.scenarios)
            for args, loc in stepcompile.says(sc.steps, ("scenarios", si, "steps"))
            if args.text for var in variables_in(args.text)]
    used += [(p.where(("target", *field.split(".")), source), var)
             for field, var in target_variables(p.target)]
    for where, var in used:
        if var not in data.columns:
            utts.problems.append(f"{where}: {{{var}}} is not a column of {p.data.csv} "
                                 f"(columns: {', '.join(data.columns)})")
    variants = len(data.rows) * max(1, len(p.all_personas()))
    if used and variants > MAX_VARIANTS:
        utts.problems.append(
            f"{p.where(('data', 'csv'), source)}: {len(data.rows)} rows x "
            f"{max(1, len(p.all_personas()))} personas = {variants} variants of each text "
            f"to synthesise before the run; at most {MAX_VARIANTS}: use fewer rows")
    return data


def _scenarios(p: pf.Profile, source: str, utts: _Utterances,
               persona: PersonaAudio | None = None,
               row: dict[str, str] | None = None) -> tuple[Scenario, ...]:
    scenarios = []
    for si, sc in enumerate(p.scenarios):
        def say(args: pf.SayArgs, loc: stepcompile.Loc) -> Utterance | None:
            where = p.where((*loc, stepcompile.say_field(args)), source)
            return utts.get(args, p.voice, where, persona=persona, row=row)

        steps = stepcompile.compile_steps(sc.steps, ("scenarios", si, "steps"), say)
        scenarios.append(Scenario(sc.name, steps, sc.weight))
    return tuple(scenarios)


def check_profile(p: pf.Profile, *, source: str = "<profile>", base_dir: Path = Path(".")) -> None:
    """Raise :class:`ProfileError` listing every problem compiling ``p`` would meet.

    Reads and decodes WAV files and looks up pack phrases as a run would, but
    synthesises nothing: with espeak-ng installed any text can be spoken, without
    it only the pack's texts (see :func:`loadcaller.audio.synth.synthesize`).
    Nothing is started, dialled or written.
    """
    utts = _Utterances(base_dir, None)
    _extras(p, source, base_dir, utts)
    for si, sc in enumerate(p.scenarios):
        for args, loc in stepcompile.says(sc.steps, ("scenarios", si, "steps")):
            where = p.where((*loc, stepcompile.say_field(args)), source)
            utts.get(args, p.voice, where, synthesize=False)
    if utts.problems:
        raise ProfileError("\n".join(utts.problems))
    compile_shape(p.load)
