"""Profiles: one YAML file describes a run. Validated here, with clear errors.

Configuration flows one way: YAML -> these pydantic models -> compiled engine
objects (:func:`loadcaller.compile.compile_profile`). A validation error names
the file, the line and the field, e.g.::

    profiles/smoke.yaml:14: scenarios[0].steps[1].say.text: Input should be a valid string

``loadcaller schema`` prints :func:`profile_json_schema` for editors; every
shipped profile validates against it (tests/test_schema.py). ``loadcaller
validate`` runs :func:`load_profile` and :func:`loadcaller.compile.check_profile`.

The YAML itself is loaded by :mod:`loadcaller.yamlload`, parsed once and
bounded (size, depth, alias expansion, finite numbers); the limits here are
the profile's own: DTMF strings of at most :data:`MAX_DTMF_DIGITS` digits,
texts of at most :data:`MAX_SAY_TEXT` characters, durations finite and at most
30 days (:data:`loadcaller.config.Duration`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Final, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    GetJsonSchemaHandler,
    PlainSerializer,
    PlainValidator,
    PrivateAttr,
    Tag,
    ValidationError,
    WithJsonSchema,
    model_serializer,
    model_validator,
)
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import CoreSchema, core_schema
from yaml.nodes import Node

from loadcaller import yamlload
from loadcaller.audio.persona import Persona
from loadcaller.audio.persona import Voice as Voice  # profiles' voice: pf.Voice
from loadcaller.calls.callerdata import DataSpec
from loadcaller.config import AlsoAccepts, Duration, NotBool, PositiveDuration
from loadcaller.config import Model as _Model
from loadcaller.errors import ProfileError
from loadcaller.gates.parse import (
    GATE_JSON_SCHEMA,
    Gate,
    fault_names,
    gate_from_yaml,
    phase_problem,
)
from loadcaller.redact import REDACTED, redacted_in
from loadcaller.stepmodels import (
    BargeInStep,
    ExpectArgs,
    IfStep,
    RepeatStep,
    SilenceStep,
    resolve_step_type,
    step_cap_problem,
)
from loadcaller.transports import ports
from loadcaller.transports.registry import TRANSPORT_NAMES, AnyTarget, target_override
from loadcaller.transports.twilio_stream import TwilioTarget

MAX_DTMF_DIGITS: Final = 64
MAX_SAY_TEXT: Final = 2000
"""Characters: over two minutes of speech, more than any caller's turn."""
MAX_ERRORS_SHOWN: Final = 100
MAX_USERS: Final = 100_000
"""Concurrent callers: ``load.users`` and every load shape's user counts."""
MAX_RATE: Final = 10_000.0
"""Calls (or users) started per second: far beyond any one swarm's reach."""
NAME_PATTERN: Final = r"^[A-Za-z0-9_.-]+$"
"""A profile's or scenario's name: it names files and directories (at most 100)."""

Users = Annotated[int, NotBool, Field(le=MAX_USERS)]
"""A number of callers (``true`` is not one)."""
Rate = Annotated[float, NotBool, Field(gt=0, le=MAX_RATE)]

Loc = tuple[str | int, ...]


class _AnyOfTargets:
    """JSON Schema of the target union: ``anyOf``, since ``transport`` may be omitted.

    Without ``transport`` the URL's scheme picks the target (else twilio), which a
    ``oneOf`` keyed by ``transport`` cannot express: ``{url: ws://...}`` matches
    both alternatives, and ``oneOf`` wants exactly one.
    """

    def __get_pydantic_json_schema__(self, schema: CoreSchema,
                                     handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        out = dict(handler(schema))
        alternatives = out.pop("oneOf", None)
        out.pop("discriminator", None)
        if alternatives is not None:
            out["anyOf"] = alternatives
        return out


class ConstantShape(_Model):
    """``load.users`` callers for ``load.duration`` (the default)."""

    type: Literal["constant"]


class RampShape(_Model):
    """From ``start_users`` to ``end_users`` (default ``load.users``) over ``ramp``, then hold."""

    type: Literal["ramp"]
    start_users: Users = Field(0, ge=0)
    end_users: Users | None = Field(None, ge=0)
    ramp: Duration = 60.0


class StepShape(_Model):
    """``start_users``, plus ``step_users`` every ``step_time``, up to ``max_users``."""

    type: Literal["step"]
    start_users: Users = Field(1, ge=0)
    step_users: Users = Field(5, ge=1)
    step_time: Duration = 30.0
    max_users: Users | None = Field(None, ge=1, description="default load.users")


class SpikeShape(_Model):
    """``load.users`` callers, jumping to ``spike_users`` at ``at`` for ``hold``."""

    type: Literal["spike"]
    spike_users: Users = Field(ge=1)
    at: Duration = 30.0
    hold: Duration = 30.0


class SoakShape(_Model):
    """A gentle ramp to ``load.users`` over ``ramp``, then hold for ``load.duration``."""

    type: Literal["soak"]
    ramp: Duration = 60.0


class OpenShape(_Model):
    """Open model: ``rate`` calls per second arrive whatever the agent's speed.

    Up to ``max_concurrency`` (default ``load.users``) calls at once; a call that
    cannot start within ``late_after`` of its time is counted as not started.
    """

    type: Literal["open"]
    rate: Rate = Field(description="calls started per second (at most 10,000)")
    max_concurrency: Users | None = Field(None, ge=1)
    late_after: Duration = 0.5


LoadShape = Annotated[
    ConstantShape | RampShape | StepShape | SpikeShape | SoakShape | OpenShape,
    Field(discriminator="type"),
]


class Load(_Model):
    """Users calling one call after another, or a load shape."""

    users: Users = Field(10, ge=1)
    spawn_rate: Rate = Field(10.0, description="users started per second")
    duration: Duration = 30.0
    stop_timeout: Duration = Field(30.0, description="grace for calls in progress at the end")
    shape: LoadShape | None = Field(None, description="constant, ramp, step, spike, soak or "
                                    "open; users, spawn_rate and duration are its defaults")


class CallRules(_Model):
    turn_timeout: PositiveDuration = Field(8.0, description="no reply onset by then: "
                                           "no_response")
    max_reply: PositiveDuration = 30.0
    max_call_duration: PositiveDuration = 300.0
    give_up_after_no_response: Annotated[int, NotBool] = Field(2, ge=1)


class SayArgs(_Model):
    """What to say: a pack phrase id, text (espeak-ng, or the pack), or a WAV file."""

    text: str | None = Field(None, max_length=MAX_SAY_TEXT)
    phrase: str | None = None
    wav: str | None = None
    recording: str | None = Field(None, max_length=200,
                                  description="a file named in recordings/'s manifest")
    voice: Voice | None = None

    @model_validator(mode="after")
    def _one_source(self) -> SayArgs:
        given = [k for k in ("text", "phrase", "wav", "recording") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError("say needs exactly one of text, phrase, wav or recording")
        return self


def _say_args(v: Any) -> Any:
    return {"text": v} if isinstance(v, str) else v


class SayStep(_Model):
    say: Annotated[SayArgs, BeforeValidator(_say_args),
                   AlsoAccepts({"type": "string", "maxLength": MAX_SAY_TEXT,
                                 "description": "text to speak"})]


class WaitArgs(_Model):
    timeout: PositiveDuration | None = None
    expect: ExpectArgs | None = Field(None, description="words or a regex the reply must "
                                      "contain (speech recognition: loadcaller[asr])")


class WaitStep(_Model):
    wait_for_agent: Annotated[WaitArgs, BeforeValidator(lambda v: v or {}),
                              AlsoAccepts({"type": "null"})]


class PauseStep(_Model):
    pause: Duration


def _dtmf(digits: str) -> str:
    if not digits:
        raise ValueError("no DTMF digits")
    if len(digits) > MAX_DTMF_DIGITS:
        raise ValueError(f"{len(digits)} DTMF digits; at most {MAX_DTMF_DIGITS} in one step")
    bad = next((c for c in digits if c not in "0123456789*#ABCDabcd"), None)
    if bad is not None:
        raise ValueError(f"{bad!r} is not a DTMF digit (0-9, *, #, A-D)")
    return digits.upper()


class DtmfStep(_Model):
    dtmf: Annotated[str, AfterValidator(_dtmf), WithJsonSchema(
        {"type": "string", "pattern": f"^[0-9*#A-Da-d]{{1,{MAX_DTMF_DIGITS}}}$"})]


class HangupStep(_Model):
    model_config = ConfigDict(json_schema_extra={"required": ["hangup"]})

    hangup: None = None

    @model_serializer(mode="plain")
    def _bare(self) -> str:
        """Dumped as written, ``hangup``: ``{hangup: null}`` would lose its only key to
        ``exclude_none`` (the results directory's profile.yaml)."""
        return "hangup"


STEP_KINDS = ("say", "wait_for_agent", "pause", "dtmf", "hangup", "barge_in", "silence", "if",
              "repeat")


def _step_kind(v: Any) -> str | None:
    if isinstance(v, str):
        return v if v in STEP_KINDS else None
    if isinstance(v, dict) and len(v) == 1:
        key = next(iter(v))
        return key if key in STEP_KINDS else None
    if isinstance(v, BaseModel):
        name, info = next(iter(type(v).model_fields.items()))
        return info.alias or name
    return None


def _bare_step(v: Any) -> Any:
    return {v: None} if isinstance(v, str) else v


Step = Annotated[
    Annotated[SayStep, Tag("say")]
    | Annotated[WaitStep, Tag("wait_for_agent")]
    | Annotated[PauseStep, Tag("pause")]
    | Annotated[DtmfStep, Tag("dtmf")]
    | Annotated[HangupStep, Tag("hangup")]
    | Annotated[BargeInStep, Tag("barge_in")]
    | Annotated[SilenceStep, Tag("silence")]
    | Annotated[IfStep, Tag("if")]
    | Annotated[RepeatStep, Tag("repeat")],
    Discriminator(
        _step_kind,
        custom_error_type="unknown_step",
        custom_error_message="a step is one of: " + ", ".join(STEP_KINDS),
    ),
    BeforeValidator(_bare_step),
    AlsoAccepts({"enum": ["wait_for_agent", "hangup"]}),
]
resolve_step_type(Step, SayArgs)  # if and repeat hold steps; barge_in says like say


class MediaImpairments(_Model):
    """Packet models (docs/faults.md, UDP/RTP) applied to the caller's 20 ms frames."""

    outbound: dict[str, Any] | list[dict[str, Any]] | None = Field(
        None, description="caller -> agent, e.g. {type: gilbert_elliott, mean_loss: 0.05, "
        "mean_burst: 3}")
    inbound: dict[str, Any] | list[dict[str, Any]] | None = Field(
        None, description="agent -> caller's ear, e.g. {type: preset, preset: 3g}")

    @model_validator(mode="after")
    def _valid_models(self) -> MediaImpairments:
        import random

        from chaos.packet import build_impairment

        for spec in (self.outbound, self.inbound):
            if spec is None:
                continue
            try:
                build_impairment(spec, random.Random(0))  # raises with the known types
            except (TypeError, AttributeError, KeyError) as exc:  # e.g. type: [1]
                raise ValueError(f"not a packet model spec ({exc})") from None
        return self


def _gate_as_yaml(gate: Gate) -> Any:
    """A gate as a profile writes it (the results directory's profile.yaml)."""
    return gate.text if gate.phase is None else {"gate": gate.text, "phase": gate.phase}


GateItem = Annotated[Gate, PlainValidator(gate_from_yaml), WithJsonSchema(GATE_JSON_SCHEMA),
                     PlainSerializer(_gate_as_yaml, return_type=Any)]


class Scenario(_Model):
    name: str = Field(max_length=100, pattern=NAME_PATTERN)
    weight: float = Field(1.0, gt=0)
    persona: str | None = Field(None, description="always this persona (default: the mix)")
    steps: list[Step] = Field(min_length=1)

    @model_validator(mode="after")
    def _bounded(self) -> Scenario:
        problem = step_cap_problem(self.steps)
        if problem is not None:
            raise ValueError(problem)
        return self


class Profile(_Model):
    """A whole run."""

    name: str = Field("run", max_length=100, pattern=NAME_PATTERN,
                      description="names the results directory: A-Z a-z 0-9 _ . -")
    target: Annotated[AnyTarget, _AnyOfTargets()] = Field(default_factory=TwilioTarget)
    load: Load = Load()
    voice: Voice = Voice()
    call: CallRules = CallRules()
    scenarios: list[Scenario] = Field(min_length=1)
    seed: Annotated[int, NotBool] | None = None
    media: MediaImpairments | None = Field(
        None, description="impair the caller's own media path (any transport, no proxy)")
    chaos: dict[str, Any] | None = Field(
        None, description="a chaos proxy started with the callers (docs/faults.md schema)")
    gates: list[GateItem] = Field(
        default_factory=list, description="SLO gates judged after the run (exit 1 when one "
        "fails), e.g. 'turn_latency_p95 < 1.5s' or {gate: ..., phase: FAULT_NAME}")
    persona: Persona | None = Field(None, description="every call's caller (docs/personas.md)")
    personas: list[Persona] | None = Field(None, min_length=1, max_length=50,
                                           description="a weighted mix of callers")
    data: DataSpec | None = Field(None, description="per-call variables from a CSV file")
    recordings: str | None = Field(None, description="a directory of WAV files with a "
                                   "manifest.csv (file,text) for say: {recording: FILE}")

    _source: SourceMap | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _personas(self) -> Profile:
        if self.persona is not None and self.personas is not None:
            raise ValueError("give persona (one) or personas (a mix), not both")
        names = [p.name for p in self.all_personas()]
        if len(set(names)) != len(names):
            raise ValueError("persona names must be unique")
        for sc in self.scenarios:
            if sc.persona is not None and sc.persona not in names:
                raise ValueError(f"scenario {sc.name!r} names persona {sc.persona!r}; "
                                 f"known: {', '.join(names) or '(none)'}")
        return self

    def all_personas(self) -> list[Persona]:
        """The run's personas (``persona`` or ``personas``; empty for plain callers)."""
        return [self.persona] if self.persona is not None else list(self.personas or [])

    def where(self, loc: Loc, source: str = "<profile>") -> str:
        """``file:line: field`` of the value at ``loc`` (the line when loaded from YAML)."""
        if self._source is not None:
            return self._source.where(loc)
        return f"{source}: {_field_path(loc, union_tags=False)}"


class SourceMap:
    """Where a loaded profile's values were written: its file and YAML node tree.

    Compiling uses it to name the line of a WAV file that cannot be read. Any two
    are equal: where a profile came from is not part of its value (pydantic
    compares private attributes too).
    """

    def __init__(self, source: str, root: Node | None) -> None:
        self.source = source
        self.root = root

    def where(self, loc: Loc) -> str:
        line = yamlload.line_of(self.root, loc)
        path = _field_path(loc, union_tags=False)
        return f"{self.source}:{line}: {path}" if line else f"{self.source}: {path}"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SourceMap)

    __hash__ = object.__hash__


# Validators of types we do not own whose JSON Schema must also show their input form.
_BEFORE_INPUTS: dict[Callable[..., Any], dict[str, Any]] = {
    ports._parse_range: {"type": "string", "pattern": r"^\s*[0-9]+(\s*-\s*[0-9]+)?\s*$",
                         "description": "FIRST-LAST, e.g. 16384-32767"},
}


class _ProfileJsonSchema(GenerateJsonSchema):
    def function_before_schema(
            self, schema: core_schema.BeforeValidatorFunctionSchema) -> JsonSchemaValue:
        inner = super().function_before_schema(schema)
        extra = _BEFORE_INPUTS.get(schema["function"]["function"])
        return inner if extra is None else {"anyOf": [inner, extra]}


def profile_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a profile, as ``loadcaller schema`` prints it.

    It accepts every form validation accepts (durations as "30s", bare
    ``wait_for_agent``, ``say: TEXT``, a target without ``transport``, secrets as
    ``{file: PATH}``); validation itself checks more (URLs, files, the chaos section).
    """
    schema = Profile.model_json_schema(schema_generator=_ProfileJsonSchema)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


_UNION_TAGS: Final = {"target": TRANSPORT_NAMES, "shape": frozenset(
    str(get_args(m.model_fields["type"].annotation)[0])
    for m in (ConstantShape, RampShape, StepShape, SpikeShape, SoakShape, OpenShape))}


def _field_path(loc: Loc, *, union_tags: bool = True) -> str:
    """``scenarios[0].steps[1].say`` from a pydantic loc (or a YAML one: no union tags)."""
    out = ""
    parts: list[str | int] = list(loc)
    if union_tags:
        # pydantic puts union tags in the loc: drop the target's and the load shape's,
        # then the steps' (each step's tag is also its only field: "say", "say")
        parts = [p for i, p in enumerate(loc)
                 if not (i and p in _UNION_TAGS.get(str(loc[i - 1]), ()))]
        parts = [p for i, p in enumerate(parts) if i == 0 or p != parts[i - 1]]
    more = len(parts) - 12
    if more > 0:  # a path 64 levels deep says no more than its start
        parts = parts[:12]
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    if more > 0:
        out += f"...({more} more levels)"
    return out or "(top level)"


def _issue(source: str, line: int | None, loc: Loc, message: str) -> str:
    """``file:line: field: message`` for a location in the YAML (no union tags)."""
    where = f"{source}:{line}" if line else source
    return f"{where}: {_field_path(loc, union_tags=False)}: {message}"


def parse_profile(text: str, source: str = "<profile>",
                  overrides: dict[str, Any] | None = None) -> Profile:
    """Validate profile YAML text; raise :class:`ProfileError` naming file:line: field.

    Every problem is reported, one per line (up to :data:`MAX_ERRORS_SHOWN`).
    """
    try:
        root, data, problems = yamlload.load(text)
    except yamlload.YamlError as exc:
        raise ProfileError(_issue(source, exc.line, exc.loc, exc.message)) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ProfileError(_issue(source, 1, (), "a profile is a YAML mapping "
                                  "(name, target, load, scenarios, ...)"))
    _apply_overrides(data, overrides or {})
    # (line, field, message): values YAML could not read, then what pydantic refuses
    issues = [(p.line, _field_path(p.loc, union_tags=False), p.message) for p in problems]
    issues += [(yamlload.line_of(root, loc), _field_path(loc, union_tags=False),
                f"{REDACTED} is a redacted secret (a results directory's copy of a profile): "
                "give the secret again, e.g. ${VAR} or {file: PATH}")
               for loc in redacted_secrets(data)]
    profile: Profile | None = None
    try:
        profile = Profile.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors(include_url=False, include_input=False):
            loc = tuple(err["loc"])
            path = _field_path(loc)
            if not any(path == f or path.startswith((f + ".", f + "[")) for _, f, _ in issues):
                issues.append((yamlload.line_of(root, loc), path, err["msg"]))
        if "scenarios" not in data and {"routes", "faults"} & set(data):
            issues.append((1, "(top level)", "this looks like a chaos-proxy config: run it "
                           "with `chaos-proxy --config`, or nest it under `chaos:`"))
    except (RecursionError, MemoryError, OverflowError, TypeError, AttributeError, KeyError,
            IndexError) as exc:  # a backstop: the input is bounded, validators raise ValueError
        issues.append((None, "(top level)", f"cannot validate the profile "
                       f"({type(exc).__name__}: {exc})"))
    if issues:
        issues.sort(key=lambda i: i[0] or 0)
        lines = [f"{source}:{line}: {path}: {message}" if line else f"{source}: {path}: {message}"
                 for line, path, message in issues[:MAX_ERRORS_SHOWN]]
        if len(issues) > MAX_ERRORS_SHOWN:
            lines.append(f"{source}: ... and {len(issues) - MAX_ERRORS_SHOWN} more errors")
        raise ProfileError("\n".join(lines))
    assert profile is not None
    if profile.chaos is not None:
        _check_chaos(profile.chaos, root, source)
        _check_chaos_timeline(profile, root, source)
    _check_gate_phases(profile, root, source)
    profile._source = SourceMap(source, root)
    return profile


def redacted_secrets(data: Any, loc: Loc = ()) -> list[Loc]:
    """Where raw profile data holds a redacted secret (``***``) instead of a secret."""
    if isinstance(data, dict):
        out = []
        for k, v in data.items():
            if isinstance(v, str) and redacted_in(v, str(k)):
                out.append((*loc, str(k)))
            else:
                out += redacted_secrets(v, (*loc, str(k)))
        return out
    if isinstance(data, list):
        return [found for i, v in enumerate(data) for found in redacted_secrets(v, (*loc, i))]
    if isinstance(data, str) and redacted_in(data):
        return [loc]
    return []


def _apply_overrides(data: dict[str, Any], overrides: dict[str, Any]) -> None:
    for path, value in overrides.items():
        if path == "target.url":  # --target: its scheme may pick another transport
            current = data.get("target")
            data["target"] = target_override(str(value), current if isinstance(current, dict)
                                             else None)
            continue
        node: Any = data
        *parents, leaf = path.split(".")
        for key in parents:
            node = node.setdefault(key, {}) if isinstance(node, dict) else node
        if isinstance(node, dict):
            node[leaf] = value


def _check_chaos(section: dict[str, Any], root: Node | None, source: str) -> None:
    """Validate the chaos section with the proxy's own schema, lines included."""
    from yaml.nodes import MappingNode

    from chaos.config import parse_config
    from chaos.errors import ConfigError

    node = None
    if isinstance(root, MappingNode):
        node = next((v for k, v in root.value if getattr(k, "value", None) == "chaos"), None)
    try:
        parse_config(section, source, node=node)
    except ConfigError as exc:
        prefixed = re.sub(rf"^({re.escape(source)}(?::\d+)?: )", r"\1chaos.", str(exc),
                          flags=re.M)
        raise ProfileError(prefixed) from None
    except (ValueError, TypeError, RecursionError, MemoryError, OverflowError) as exc:
        line = yamlload.line_of(root, ("chaos",))
        raise ProfileError(_issue(source, line, ("chaos",), f"invalid chaos section "
                                  f"({type(exc).__name__}: {exc})")) from None


def _check_chaos_timeline(profile: Profile, root: Node | None, source: str) -> None:
    """A chaos fault that switches on only once the run is over is a mistake, not a plan:
    the nightly chaos run would pass without its chaos (the proxy's timeline starts
    with the run, which ends by load.duration plus the stop_timeout its calls in
    progress get). A dry run (duration 0) has no timeline to check."""
    from chaos.config import parse_config

    load = profile.load
    if profile.chaos is None or load.duration <= 0:
        return
    end = load.duration + load.stop_timeout
    lines = []
    for i, spec in enumerate(parse_config(profile.chaos, source).faults):
        start = spec.schedule.start
        if start >= end:
            loc: Loc = ("chaos", "faults", i,
                        *(("window", "start") if spec.settings.window else ("at",)))
            lines.append(_issue(source, yamlload.line_of(root, loc), loc,
                                f"fault {spec.name!r} switches on {start:g} s into the run, "
                                f"but the run is over by {end:g} s (load.duration "
                                f"{load.duration:g} s + stop_timeout {load.stop_timeout:g} s): "
                                "it would never act"))
    if lines:
        raise ProfileError("\n".join(lines))


def _check_gate_phases(profile: Profile, root: Node | None, source: str) -> None:
    """A phase gate names one of the chaos section's faults (or none)."""
    faults = fault_names(profile.chaos)
    lines = []
    for i, gate in enumerate(profile.gates):
        problem = phase_problem(gate, faults)
        if problem is not None:
            loc: Loc = ("gates", i, "phase")
            lines.append(_issue(source, yamlload.line_of(root, loc), loc, problem))
    if lines:
        raise ProfileError("\n".join(lines))


def load_profile(path: Path, overrides: dict[str, Any] | None = None) -> Profile:
    """Read and validate a profile file (at most 1 MiB of UTF-8 YAML)."""
    try:
        with path.open("rb") as f:
            raw = f.read(yamlload.MAX_BYTES + 1)  # a device or a huge file stops here
    except OSError as exc:
        raise ProfileError(f"{path}: cannot read the profile: {exc.strerror or exc}") from None
    if len(raw) > yamlload.MAX_BYTES:
        raise ProfileError(_issue(str(path), 1, (), f"the profile is over "
                                  f"{yamlload.MAX_BYTES // 1024} KiB; profiles are a few KB"))
    try:
        text = yamlload.decode(raw)
    except yamlload.YamlError as exc:
        raise ProfileError(_issue(str(path), exc.line, exc.loc, exc.message)) from None
    return parse_profile(text, str(path), overrides)
