"""Profiles: one YAML file describes a run. Validated here, with clear errors.

Configuration flows one way: YAML -> these pydantic models -> compiled engine
objects (:func:`loadcaller.compile.compile_profile`). A validation error names
the file, the line and the field, e.g.::

    profiles/smoke.yaml:14: scenarios[0].steps[1].say.text: Input should be a valid string

``loadcaller schema`` prints the JSON Schema of :class:`Profile` for editors.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    model_validator,
)

from loadcaller.config import Duration
from loadcaller.config import Model as _Model
from loadcaller.errors import ProfileError
from loadcaller.transports.registry import TRANSPORT_NAMES, AnyTarget, target_override
from loadcaller.transports.twilio_stream import TwilioTarget


class Voice(_Model):
    """The synthetic caller's voice (espeak-ng voice name, words/min, pitch 0-99)."""

    name: str = "en-us"
    rate: int = Field(165, ge=80, le=450)
    pitch: int = Field(50, ge=0, le=99)


class ConstantShape(_Model):
    """``load.users`` callers for ``load.duration`` (the default)."""

    type: Literal["constant"]


class RampShape(_Model):
    """From ``start_users`` to ``end_users`` (default ``load.users``) over ``ramp``, then hold."""

    type: Literal["ramp"]
    start_users: int = Field(0, ge=0)
    end_users: int | None = Field(None, ge=0)
    ramp: Duration = 60.0


class StepShape(_Model):
    """``start_users``, plus ``step_users`` every ``step_time``, up to ``max_users``."""

    type: Literal["step"]
    start_users: int = Field(1, ge=0)
    step_users: int = Field(5, ge=1)
    step_time: Duration = 30.0
    max_users: int | None = Field(None, ge=1, description="default load.users")


class SpikeShape(_Model):
    """``load.users`` callers, jumping to ``spike_users`` at ``at`` for ``hold``."""

    type: Literal["spike"]
    spike_users: int = Field(ge=1)
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
    rate: float = Field(gt=0, description="calls started per second")
    max_concurrency: int | None = Field(None, ge=1)
    late_after: Duration = 0.5


LoadShape = Annotated[
    ConstantShape | RampShape | StepShape | SpikeShape | SoakShape | OpenShape,
    Field(discriminator="type"),
]


class Load(_Model):
    """Users calling one call after another, or a load shape."""

    users: int = Field(10, ge=1, le=100_000)
    spawn_rate: float = Field(10.0, gt=0, description="users started per second")
    duration: Duration = 30.0
    stop_timeout: Duration = Field(30.0, description="grace for calls in progress at the end")
    shape: LoadShape | None = Field(None, description="constant, ramp, step, spike, soak or "
                                    "open; users, spawn_rate and duration are its defaults")


class CallRules(_Model):
    turn_timeout: Duration = Field(8.0, description="no reply onset by then: no_response")
    max_reply: Duration = 30.0
    max_call_duration: Duration = 300.0
    give_up_after_no_response: int = Field(2, ge=1)


class SayArgs(_Model):
    """What to say: a pack phrase id, text (espeak-ng, or the pack), or a WAV file."""

    text: str | None = None
    phrase: str | None = None
    wav: str | None = None
    voice: Voice | None = None

    @model_validator(mode="after")
    def _one_source(self) -> SayArgs:
        given = [k for k in ("text", "phrase", "wav") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError("say needs exactly one of text, phrase or wav")
        return self


def _say_args(v: Any) -> Any:
    return {"text": v} if isinstance(v, str) else v


class SayStep(_Model):
    say: Annotated[SayArgs, BeforeValidator(_say_args)]


class WaitArgs(_Model):
    timeout: Duration | None = None


class WaitStep(_Model):
    wait_for_agent: Annotated[WaitArgs, BeforeValidator(lambda v: v or {})]


class PauseStep(_Model):
    pause: Duration


class DtmfStep(_Model):
    dtmf: Annotated[str, Field(pattern=r"^[0-9*#A-Da-d]+$")]


class HangupStep(_Model):
    hangup: None = None


STEP_KINDS = ("say", "wait_for_agent", "pause", "dtmf", "hangup")


def _step_kind(v: Any) -> str | None:
    if isinstance(v, str):
        return v if v in STEP_KINDS else None
    if isinstance(v, dict) and len(v) == 1:
        key = next(iter(v))
        return key if key in STEP_KINDS else None
    if isinstance(v, BaseModel):
        return next(iter(type(v).model_fields))
    return None


def _bare_step(v: Any) -> Any:
    return {v: None} if isinstance(v, str) else v


Step = Annotated[
    Annotated[SayStep, Tag("say")]
    | Annotated[WaitStep, Tag("wait_for_agent")]
    | Annotated[PauseStep, Tag("pause")]
    | Annotated[DtmfStep, Tag("dtmf")]
    | Annotated[HangupStep, Tag("hangup")],
    Discriminator(
        _step_kind,
        custom_error_type="unknown_step",
        custom_error_message="a step is one of: " + ", ".join(STEP_KINDS),
    ),
    BeforeValidator(_bare_step),
]


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
            if spec is not None:
                build_impairment(spec, random.Random(0))  # raises with the known types
        return self


class Scenario(_Model):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    weight: float = Field(1.0, gt=0)
    steps: list[Step] = Field(min_length=1)


class Profile(_Model):
    """A whole run."""

    name: str = "run"
    target: AnyTarget = Field(default_factory=TwilioTarget)
    load: Load = Load()
    voice: Voice = Voice()
    call: CallRules = CallRules()
    scenarios: list[Scenario] = Field(min_length=1)
    seed: int | None = None
    media: MediaImpairments | None = Field(
        None, description="impair the caller's own media path (any transport, no proxy)")
    chaos: dict[str, Any] | None = Field(
        None, description="a chaos proxy started with the callers (docs/faults.md schema)")


# ---- loading with file:line:field errors -----------------------------------------


class _Loader(yaml.SafeLoader):
    """YAML 1.2 booleans: only true/false, so a caller can say ``no`` or ``yes``."""


_Loader.yaml_implicit_resolvers = {
    ch: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for ch, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def _field_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    parts = [p for i, p in enumerate(loc) if i == 0 or p != loc[i - 1]]  # drop union tags
    if len(parts) > 1 and parts[0] == "target" and parts[1] in TRANSPORT_NAMES:
        del parts[1]  # the target union's tag (the transport)
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _line_of(root: yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    node = root
    if node is None:
        return None
    line = node.start_mark.line + 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                    node, line = value, value.start_mark.line + 1
                    break
            # a part not in the YAML (a union tag) is skipped
        elif (isinstance(node, yaml.SequenceNode) and isinstance(part, int)
              and 0 <= part < len(node.value)):
            node = node.value[part]
            line = node.start_mark.line + 1
    return line


def parse_profile(text: str, source: str = "<profile>",
                  overrides: dict[str, Any] | None = None) -> Profile:
    """Validate profile YAML text; raise :class:`ProfileError` naming file:line: field."""
    try:
        root = yaml.compose(text, Loader=_Loader)
        data = yaml.load(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        raise ProfileError(f"{where}: YAML syntax error: {exc.problem}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ProfileError(f"{source}:1: a profile is a YAML mapping (name, target, load, ...)")
    for path, value in (overrides or {}).items():
        if path == "target.url":  # --target: its scheme may pick another transport
            current = data.get("target")
            data["target"] = target_override(str(value), current if isinstance(current, dict)
                                             else None)
            continue
        node = data
        *parents, leaf = path.split(".")
        for key in parents:
            node = node.setdefault(key, {}) if isinstance(node, dict) else node
        if isinstance(node, dict):
            node[leaf] = value
    try:
        profile = Profile.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            line = _line_of(root, loc)
            where = f"{source}:{line}" if line else source
            lines.append(f"{where}: {_field_path(loc)}: {err['msg']}")
        raise ProfileError("\n".join(lines)) from None
    if profile.chaos is not None:
        _check_chaos(profile.chaos, root, source)
    return profile


def _check_chaos(section: dict[str, Any], root: yaml.Node | None, source: str) -> None:
    """Validate the chaos section with the proxy's own schema, lines included."""
    from chaos.config import parse_config
    from chaos.errors import ConfigError

    node = None
    if isinstance(root, yaml.MappingNode):
        node = next((v for k, v in root.value if getattr(k, "value", None) == "chaos"), None)
    try:
        parse_config(section, source, node=node)
    except ConfigError as exc:
        prefixed = re.sub(rf"^({re.escape(source)}(?::\d+)?: )", r"\1chaos.", str(exc),
                          flags=re.M)
        raise ProfileError(prefixed) from None


def load_profile(path: Path, overrides: dict[str, Any] | None = None) -> Profile:
    """Read and validate a profile file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProfileError(f"{path}: cannot read the profile: {exc.strerror}") from None
    return parse_profile(text, str(path), overrides)
