"""The chaos config: pydantic models, YAML loading, errors located by file:line:field.

Shape of a config (docs/faults.md has every fault)::

    seed: 7
    control: {listen: 127.0.0.1:9100}
    routes:
      - {name: llm, kind: http, listen: 127.0.0.1:9000, upstream: http://127.0.0.1:8000}
    faults:
      - {type: latency, route: llm, delay: 2s, probability: 0.3, at: 30s, for: 60s}

A fault entry mixes the shared settings (FaultSettings, applied by the wrapper)
with the parameters of its `type`, validated by that fault's own `Params`
model. Validation errors are mapped back to YAML lines by walking the composed
node tree with the pydantic error location.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from chaos import yamlsafe
from chaos.errors import ConfigError, ConfigIssue, UnknownFaultType
from chaos.faults import REGISTRY, Fault, fault_class
from chaos.timeline import Ramp, Schedule
from chaos.units import Duration, HostPort

Loc = tuple[str | int, ...]


class _Model(BaseModel):
    # numbers must be finite: `.nan` passes every range check
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True,
                              allow_inf_nan=False)


class RouteConfig(_Model):
    """One listener: where it listens, what it proxies to, which protocol."""

    name: str
    kind: Literal["http", "ws", "udp"]
    listen: HostPort
    upstream: str
    #: HTTP only: give up on an upstream silent this long (504); none by default
    timeout: Duration | None = None

    @field_validator("upstream")
    @classmethod
    def _check_upstream(cls, upstream: str, info: ValidationInfo) -> str:
        kind = info.data.get("kind")
        if kind is None:
            return upstream  # the missing or bad kind is reported on its own
        schemes = {"http": ("http://", "https://"), "ws": ("ws://", "wss://")}
        if kind in schemes and not upstream.startswith(schemes[kind]):
            raise ValueError(
                f"upstream of a {kind} route must start with {' or '.join(schemes[kind])}")
        if kind == "udp":
            from chaos.units import parse_hostport

            parse_hostport(upstream)
        else:
            _check_base_url(upstream)
        return upstream


def _check_base_url(url: str) -> None:
    """An http/ws upstream is a base URL: a host, maybe a port and a path, nothing else.

    The client's target is appended to it (chaos/target.py), so a query or a
    fragment here would swallow every path.
    """
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if not parts.hostname:
        raise ValueError(f"upstream {url!r} has no host")
    try:
        parts.port  # noqa: B018  (validates it)
    except ValueError:
        raise ValueError(f"upstream {url!r} has a bad port") from None
    if parts.query or parts.fragment or "?" in url or "#" in url:
        raise ValueError(f"upstream {url!r} may not have a query or fragment: "
                         "it is a base URL the client's path is appended to")


class ControlConfig(_Model):
    """Where the control API listens, and its bearer token."""

    listen: HostPort = ("127.0.0.1", 9100)
    token: str | None = None


class Match(_Model):
    """Which requests or messages a fault considers (all given keys must match)."""

    host: str | None = None
    path: str | None = None
    method: str | list[str] | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    message: Literal["text", "binary"] | None = None


class Window(_Model):
    """Absolute on/off offsets, an alternative to `at` + `for`."""

    start: Duration = 0.0
    end: Duration | None = None

    @model_validator(mode="after")
    def _end_after_start(self) -> Window:
        # an end at or before the start is a fault that never switches on
        if self.end is not None and self.end <= self.start:
            raise ValueError(f"window.end ({self.end:g}s) must come after "
                             f"window.start ({self.start:g}s)")
        return self


class RampSpec(_Model):
    """Move `field` (probability or a magnitude parameter) from `from` to `to`."""

    field: str = "probability"
    from_: float = Field(alias="from")
    to: float
    over: Duration | None = None


class FaultSettings(_Model):
    """Settings shared by every fault, applied by the wrapper."""

    type: str
    name: str | None = None
    route: str | None = None
    match: Match = Field(default_factory=Match)
    direction: Literal["upstream", "downstream", "both"] = "both"
    probability: float = Field(1.0, ge=0.0, le=1.0)
    every_nth: int | None = Field(None, ge=1)
    after_n: int = Field(0, ge=0)
    max_count: int | None = Field(None, ge=1)
    at: Duration = 0.0
    for_: Duration | None = Field(None, alias="for")
    window: Window | None = None
    ramp: RampSpec | None = None
    seed: int | None = None

    @field_validator("name")
    @classmethod
    def _check_name(cls, name: str | None) -> str | None:
        # the control API addresses a fault as /faults/{name}
        if name is not None and (not name.strip() or "/" in name):
            raise ValueError("a fault name must be non-empty and without '/' "
                             "(the control API addresses it as /faults/{name})")
        return name

    @model_validator(mode="after")
    def _one_timeline(self) -> FaultSettings:
        # with both, `window` silently won: an `at: 5m` that never applied
        if self.window is not None and ("at" in self.model_fields_set
                                        or "for_" in self.model_fields_set):
            raise ValueError("give either `at`/`for` or `window`, not both")
        return self


_SETTING_KEYS = {
    (f.alias or name) for name, f in FaultSettings.model_fields.items()
} | set(FaultSettings.model_fields)


@dataclass(frozen=True)
class FaultSpec:
    """A validated fault entry: its class, shared settings and own parameters."""

    name: str
    cls: type[Fault]
    settings: FaultSettings
    params: Any

    @property
    def schedule(self) -> Schedule:
        """When the fault is on, as a timeline Schedule."""
        s = self.settings
        if s.window is not None:
            start = s.window.start
            length = None if s.window.end is None else max(0.0, s.window.end - start)
        else:
            start, length = s.at, s.for_
        ramp = None
        if s.ramp is not None:
            over = s.ramp.over if s.ramp.over is not None else (length or 0.0)
            ramp = Ramp(s.ramp.field, s.ramp.from_, s.ramp.to, over)
        return Schedule(start, length, ramp)

    def to_dict(self) -> dict[str, Any]:
        """Plain data as accepted by parse_fault (round trip for the control API)."""
        out = self.settings.model_dump(mode="json", by_alias=True, exclude_defaults=True)
        out["type"] = self.cls.type
        out["name"] = self.name
        out.update(self.params.model_dump(mode="json", exclude_defaults=True))
        return out


@dataclass(frozen=True)
class ChaosConfig:
    """A whole validated config."""

    routes: tuple[RouteConfig, ...]
    faults: tuple[FaultSpec, ...] = ()
    seed: int | None = None
    control: ControlConfig | None = None
    source: str = "<config>"

    def route(self, name: str) -> RouteConfig:
        """The route called `name` (KeyError when absent)."""
        for r in self.routes:
            if r.name == name:
                return r
        raise KeyError(name)


class _TopLevel(_Model):
    seed: int | None = None
    control: ControlConfig | None = None
    routes: list[RouteConfig] = Field(min_length=1)
    faults: list[Any] = Field(default_factory=list)


_field = yamlsafe.field_name


def _issues(err: ValidationError, prefix: Loc, source: str,
            locate: Callable[[Loc], int | None]) -> list[ConfigIssue]:
    issues = []
    for e in err.errors():
        loc = prefix + tuple(e["loc"])
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown field"
        issues.append(ConfigIssue(source, locate(loc), _field(loc), msg))
    return issues


def parse_fault(data: Any, *, source: str = "<fault>", prefix: Loc = (),
                locate: Callable[[Loc], int | None] = lambda loc: None,
                default_name: str | None = None) -> FaultSpec:
    """Validate one fault entry (YAML mapping or control API JSON) into a FaultSpec."""
    if not isinstance(data, dict):
        raise ConfigError([ConfigIssue(source, locate(prefix), _field(prefix),
                                       "a fault must be a mapping with a `type`")])
    if "type" not in data:
        raise ConfigError([ConfigIssue(source, locate(prefix), _field(prefix),
                                       "missing field `type`")])
    try:
        cls = fault_class(str(data["type"]))
    except UnknownFaultType as e:
        loc = (*prefix, "type")
        raise UnknownFaultType(e.name, e.known, source=source, line=locate(loc),
                               field=_field(loc)) from None
    settings_in = {k: v for k, v in data.items() if k in _SETTING_KEYS}
    params_in = {k: v for k, v in data.items() if k not in _SETTING_KEYS}
    issues: list[ConfigIssue] = []
    settings = params = None
    try:
        settings = FaultSettings.model_validate(settings_in)
    except ValidationError as e:
        issues += _issues(e, prefix, source, locate)
    try:
        params = cls.Params.model_validate(params_in)
    except ValidationError as e:
        known = ", ".join(cls.Params.model_fields) or "(none)"
        for issue in _issues(e, prefix, source, locate):
            if issue.message == "unknown field":
                issue = ConfigIssue(issue.source, issue.line, issue.field,
                                    f"unknown field for fault {cls.type!r} "
                                    f"(its parameters: {known})")
            issues.append(issue)
    if settings is not None:
        issues += _check_settings_fit(cls, settings, prefix, source, locate)
    if settings is not None and settings.ramp is not None:
        if settings.ramp.over is None and settings.for_ is None and (
                settings.window is None or settings.window.end is None):
            loc = (*prefix, "ramp", "over")
            issues.append(ConfigIssue(source, locate(loc), _field(loc),
                                      "a ramp needs `over`, or a `for`/`window.end` to span"))
        allowed = ("probability", *cls.magnitude_fields)
        if settings.ramp.field not in allowed:
            loc = (*prefix, "ramp", "field")
            issues.append(ConfigIssue(source, locate(loc), _field(loc),
                                      f"cannot ramp {settings.ramp.field!r}; "
                                      f"choose one of {', '.join(allowed)}"))
        elif params is not None:
            issues += _check_ramp_ends(cls, params_in, settings.ramp, prefix, source, locate)
    if issues:
        raise ConfigError(issues)
    assert settings is not None
    name = settings.name or default_name or cls.type
    return FaultSpec(name=name, cls=cls, settings=settings, params=params)


def _check_ramp_ends(cls: type[Fault], params_in: dict[str, Any], ramp: RampSpec,
                     prefix: Loc, source: str,
                     locate: Callable[[Loc], int | None]) -> list[ConfigIssue]:
    """Both ends of a ramp must be values the field accepts (so is every value between).

    The ramped value bypasses validation at run time: `bandwidth` ramped from 0
    divided by zero on every response, a probability ramped to 3 was clamped silently.
    """
    issues = []
    for end, value in (("from", ramp.from_), ("to", ramp.to)):
        loc = (*prefix, "ramp", end)
        if ramp.field == "probability":
            bad = None if 0.0 <= value <= 1.0 else "a probability is between 0 and 1"
        else:
            try:
                cls.Params.model_validate({**params_in, ramp.field: value})
                bad = None
            except ValidationError as e:
                bad = e.errors()[0]["msg"].removeprefix("Value error, ")
        if bad is not None:
            issues.append(ConfigIssue(source, locate(loc), _field(loc),
                                      f"{ramp.field} cannot be {value:g}: {bad}"))
    return issues


def _check_settings_fit(cls: type[Fault], s: FaultSettings, prefix: Loc, source: str,
                        locate: Callable[[Loc], int | None]) -> list[ConfigIssue]:
    """Shared settings that cannot apply to this kind of fault are errors, not no-ops."""
    problems: list[tuple[Loc, str]] = []
    handshake = getattr(cls, "scope", "") == "handshake"
    if s.direction != "both" and (cls.layer == "http" or handshake):
        problems.append((("direction",), "`direction` applies to WebSocket message and UDP "
                                          "faults only"))
    if s.match.message is not None and (cls.layer != "ws" or handshake):
        problems.append((("match", "message"), "`match.message` applies to WebSocket "
                                               "message faults only"))
    if cls.layer == "udp" and (s.match.host or s.match.path or s.match.method
                               or s.match.headers):
        problems.append((("match",), "UDP faults cannot match on host, path, method or "
                                     "headers; use `direction`"))
    return [ConfigIssue(source, locate((*prefix, *loc)), _field((*prefix, *loc)), message)
            for loc, message in problems]


def _locator(node: yaml.Node | None) -> Callable[[Loc], int | None]:
    def locate(loc: Loc) -> int | None:
        if node is None:
            return None
        current: yaml.Node = node
        line: int = node.start_mark.line + 1
        for part in loc:
            nxt: yaml.Node | None = None
            if isinstance(current, yaml.MappingNode) and isinstance(part, str):
                for key, value in current.value:
                    if getattr(key, "value", None) == part:
                        nxt, line = value, key.start_mark.line + 1
                        break
            elif (isinstance(current, yaml.SequenceNode) and isinstance(part, int)
                  and 0 <= part < len(current.value)):
                nxt = current.value[part]
                line = nxt.start_mark.line + 1
            if nxt is None:
                break
            current = nxt
        return line
    return locate


def parse_config(data: Any, source: str = "<profile>", *,
                 node: yaml.Node | None = None) -> ChaosConfig:
    """Validate a chaos section already loaded from YAML or JSON.

    `node` (the composed YAML node of the same data) lets errors carry line
    numbers; a loadcaller profile passes the node of its `chaos:` section.
    Raises ConfigError listing every problem found.
    """
    locate = _locator(node)
    if not isinstance(data, dict):
        raise ConfigError([ConfigIssue(source, locate(()), "",
                                       "the chaos config must be a mapping")])
    try:
        top = _TopLevel.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_issues(e, (), source, locate)) from None
    issues: list[ConfigIssue] = []
    names = [r.name for r in top.routes]
    for i, name in enumerate(names):
        if names.index(name) != i:
            loc = ("routes", i, "name")
            issues.append(ConfigIssue(source, locate(loc), _field(loc),
                                      f"duplicate route {name!r}"))
    specs: list[FaultSpec] = []
    unknown: UnknownFaultType | None = None
    kinds = {r.name: r.kind for r in top.routes}
    for i, raw in enumerate(top.faults):
        try:
            default = f"{raw.get('type')}-{i}" if isinstance(raw, dict) else None
            spec = parse_fault(raw, source=source, prefix=("faults", i), locate=locate,
                               default_name=default)
        except UnknownFaultType as e:
            unknown = unknown or e
            issues += e.issues
            continue
        except ConfigError as e:
            issues += e.issues
            continue
        issues += _check_route(spec, kinds, ("faults", i), source, locate)
        if spec.name in {s.name for s in specs}:
            loc = ("faults", i, "name")
            issues.append(ConfigIssue(source, locate(loc), _field(loc),
                                      f"duplicate fault name {spec.name!r}"))
        specs.append(spec)
    if unknown is not None and len(issues) == 1:
        raise unknown
    if issues:
        raise ConfigError(issues)
    return ChaosConfig(routes=tuple(top.routes), faults=tuple(specs), seed=top.seed,
                       control=top.control, source=source)


def _check_route(spec: FaultSpec, kinds: Mapping[str, str], prefix: Loc, source: str,
                 locate: Callable[[Loc], int | None]) -> list[ConfigIssue]:
    layer = spec.cls.layer
    loc = (*prefix, "route")
    if spec.settings.route is None:
        if layer not in kinds.values():
            return [ConfigIssue(source, locate(prefix), _field(prefix),
                                f"fault {spec.cls.type!r} needs a {layer} route; "
                                "none is configured")]
        return []
    kind = kinds.get(spec.settings.route)
    if kind is None:
        return [ConfigIssue(source, locate(loc), _field(loc),
                            f"unknown route {spec.settings.route!r}; routes: {', '.join(kinds)}")]
    if kind != layer:
        return [ConfigIssue(source, locate(loc), _field(loc),
                            f"fault {spec.cls.type!r} acts on {layer} routes, "
                            f"but route {spec.settings.route!r} is {kind}")]
    return []


def check_fault_route(spec: FaultSpec, config: ChaosConfig, source: str = "<request>") -> None:
    """Raise ConfigError when `spec` cannot attach to a route of `config`."""
    issues = _check_route(spec, {r.name: r.kind for r in config.routes}, (), source,
                          lambda loc: None)
    if issues:
        raise ConfigError(issues)


def load_config(path: Path) -> ChaosConfig:
    """Read and validate a chaos YAML file; errors name the file, line and field.

    The YAML is read within bounds (chaos/yamlsafe.py: UTF-8, nesting depth,
    size with aliases expanded, no duplicate keys).
    """
    source = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        issue = ConfigIssue(source, None, "", f"cannot read: {e.strerror or e}")
        raise ConfigError([issue]) from None
    data, node = yamlsafe.load_text(yamlsafe.decode(raw, source), source)
    return parse_config(data if data is not None else {}, source, node=node)


def known_fault_types() -> Sequence[str]:
    """Every registered fault type, sorted."""
    return sorted(REGISTRY)
