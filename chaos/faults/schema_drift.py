"""schema_drift: change the shape of a JSON response (or of each SSE `data:` JSON).

The drift is compiled to RFC 6902 operations by chaos/drift.py. A body that
is not JSON, or where `path` selects nothing, passes through unchanged and the
fault is counted as skipped.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import field_validator, model_validator

from chaos.actions import FaultContext, StreamItem, StreamTransform
from chaos.drift import DriftOp, apply_patch, compile_ops, json_data_problem, parse_path
from chaos.faults.base import HttpFault, Params, register
from chaos.sse import SseTransform, event_data, is_event_stream, with_data

_TYPES = ("string", "number", "integer", "boolean", "array", "object", "null")


class SchemaDriftParams(Params):
    """`op` applied at JSONPath `path`; `to`, `key`, `value` as the op needs."""

    op: DriftOp
    path: str
    to: str | None = None
    key: str | None = None
    value: Any = None

    @field_validator("path")
    @classmethod
    def _valid_path(cls, v: str) -> str:
        parse_path(v)
        return v

    @field_validator("value")
    @classmethod
    def _json_value(cls, v: Any) -> Any:
        problem = json_data_problem(v)
        if problem is not None:
            raise ValueError(f"`value` must be JSON data: {problem}")
        return v

    @model_validator(mode="after")
    def _op_needs(self) -> SchemaDriftParams:
        if self.op == "rename" and not self.to:
            raise ValueError("op rename needs `to` (the new key name)")
        if self.op == "retype" and self.to not in _TYPES:
            raise ValueError(f"op retype needs `to`, one of {', '.join(_TYPES)}")
        if self.op == "add_field" and not self.key:
            raise ValueError("op add_field needs `key` (and usually `value`)")
        return self


def drift_json(text: str | bytes, p: SchemaDriftParams) -> str | None:
    """The drifted JSON text, or None when `text` is not JSON or nothing matched."""
    try:
        doc = json.loads(text)
    except (ValueError, UnicodeDecodeError, RecursionError):  # nested too deep: as it came
        return None
    ops = compile_ops(doc, p.op, p.path, to=p.to, key=p.key, value=p.value)
    if not ops:
        return None
    return json.dumps(apply_patch(doc, ops), ensure_ascii=False)


class _SseDrift(SseTransform):
    def __init__(self, p: SchemaDriftParams) -> None:
        super().__init__()
        self.p = p

    def on_event(self, event: bytes) -> list[StreamItem]:
        data = event_data(event)
        drifted = drift_json(data, self.p) if data is not None else None
        return [event if drifted is None else with_data(event, drifted)]


@register
class SchemaDrift(HttpFault):
    """Rename, remove, null, retype, add, drift enums, empty, wrap or stringify fields."""

    type = "schema_drift"
    Params = SchemaDriftParams
    buffers_body = True

    def rewrite_body(self, body: bytes, content_type: str, ctx: FaultContext) -> bytes | None:
        """The drifted body, None (skipped) when it is not JSON or nothing matched."""
        drifted = drift_json(body, self.params)
        return None if drifted is None else drifted.encode()

    def stream_transform(self, headers: Mapping[str, str],
                         ctx: FaultContext) -> StreamTransform | None:
        """For SSE streams: drift the JSON in each event's data."""
        if is_event_stream(headers.get("Content-Type", "")):
            return _SseDrift(self.params)
        return None
