"""Schema drift, sans-I/O: a JSONPath selector compiled to RFC 6902 patch ops.

`compile_ops(doc, op, path, ...)` finds the values `path` selects in `doc` and
returns the JSON Patch operations that drift them (rename -> move, remove,
set_null/retype/enum_drift/empty_array/wrap_list/stringify -> replace,
add_field -> add). `apply_patch` applies them to a copy. The operations are
plain dicts, so a run can log exactly what the client was shown.

JSONPath subset: `$`, `.key`, `['key']`, `[n]`, `[*]`, `.*`, `..key`.
"""

from __future__ import annotations

import copy
import json
import math
import re
from typing import Any, Literal

DriftOp = Literal["rename", "remove", "set_null", "retype", "add_field", "enum_drift",
                  "empty_array", "wrap_list", "stringify"]
JsonType = Literal["string", "number", "integer", "boolean", "array", "object", "null"]
Step = tuple[str, Any]  # ("key", name) | ("index", n) | ("wild", None) | ("deep", name|None)
Pointer = tuple[str | int, ...]

_TOKEN = re.compile(
    r"\.\.(?P<deep>[A-Za-z_$][\w$-]*|\*)"
    r"|\.(?P<key>[A-Za-z_$][\w$-]*|\*)"
    r"|\[\s*(?P<index>-?\d+)\s*\]"
    r"|\[\s*\*\s*\]"
    r"|\[\s*'(?P<sq>[^']*)'\s*\]"
    r'|\[\s*"(?P<dq>[^"]*)"\s*\]'
)


def parse_path(path: str) -> list[Step]:
    """Parse a JSONPath (subset) into steps; ValueError names the bad spot."""
    if not path.startswith("$"):
        raise ValueError(f"JSONPath must start with '$': {path!r}")
    steps: list[Step] = []
    pos = 1
    while pos < len(path):
        m = _TOKEN.match(path, pos)
        if m is None:
            raise ValueError(f"bad JSONPath {path!r} at position {pos}: {path[pos:]!r}")
        if m.group("deep") is not None:
            deep = m.group("deep")
            steps.append(("deep", None if deep == "*" else deep))
        elif m.group("key") is not None:
            key = m.group("key")
            steps.append(("wild", None) if key == "*" else ("key", key))
        elif m.group("index") is not None:
            steps.append(("index", int(m.group("index"))))
        elif m.group("sq") is not None or m.group("dq") is not None:
            steps.append(("key", m.group("sq") if m.group("sq") is not None else m.group("dq")))
        else:
            steps.append(("wild", None))
        pos = m.end()
    return steps


def _children(value: Any, at: Pointer) -> list[tuple[Pointer, Any]]:
    if isinstance(value, dict):
        return [((*at, k), v) for k, v in value.items()]
    if isinstance(value, list):
        return [((*at, i), v) for i, v in enumerate(value)]
    return []


def _descendants(value: Any, at: Pointer) -> list[tuple[Pointer, Any]]:
    out = [(at, value)]
    for ptr, child in _children(value, at):
        out += _descendants(child, ptr)
    return out


def select(doc: Any, steps: list[Step]) -> list[Pointer]:
    """Pointers (as tuples) to every existing value the steps select."""
    current: list[tuple[Pointer, Any]] = [((), doc)]
    for kind, arg in steps:
        nxt: list[tuple[Pointer, Any]] = []
        for at, value in current:
            if kind == "key" and isinstance(value, dict) and arg in value:
                nxt.append(((*at, arg), value[arg]))
            elif kind == "index" and isinstance(value, list) and -len(value) <= arg < len(value):
                i = arg % len(value)
                nxt.append(((*at, i), value[i]))
            elif kind == "wild":
                nxt += _children(value, at)
            elif kind == "deep":
                for ptr, v in _descendants(value, at):
                    if arg is None:
                        nxt += _children(v, ptr)
                    elif isinstance(v, dict) and arg in v:
                        nxt.append(((*ptr, arg), v[arg]))
        current = nxt
    return [ptr for ptr, _ in current]


def to_pointer(ptr: Pointer) -> str:
    """RFC 6901 string form of a pointer tuple."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in ptr)


def _get(doc: Any, ptr: Pointer) -> Any:
    for p in ptr:
        doc = doc[p]
    return doc


def retype(value: Any, to: JsonType) -> Any:
    """`value` converted to JSON type `to`, the way a careless API change would."""
    if to == "string":
        return value if isinstance(value, str) else json.dumps(value)
    if to in ("number", "integer"):
        try:
            number = float(value) if not isinstance(value, list | dict) else float(len(value))
        except (TypeError, ValueError):
            number = 0.0
        return int(number) if to == "integer" or number.is_integer() else number
    if to == "boolean":
        return bool(value)
    if to == "array":
        return value if isinstance(value, list) else [value]
    if to == "object":
        return value if isinstance(value, dict) else {"value": value}
    return None


def drift_enum(value: Any, replacement: Any = None) -> Any:
    """A new enum value: `replacement` if given, else an unseen variant of `value`."""
    if replacement is not None:
        return replacement
    if isinstance(value, str):
        return value.upper() if value.upper() != value else value + "_v2"
    return value


def _order(ptr: Pointer) -> tuple[int, tuple[tuple[int, int, str], ...]]:
    return len(ptr), tuple((1, p, "") if isinstance(p, int) else (0, 0, p) for p in ptr)


def _replacement(op: DriftOp, current: Any, to: str | None, value: Any) -> Any:
    if op == "set_null":
        return None
    if op == "retype":
        return retype(current, to or "string")  # type: ignore[arg-type]
    if op == "enum_drift":
        return drift_enum(current, value)
    if op == "empty_array":
        return []
    if op == "wrap_list":
        return [current]
    if op == "stringify":
        return current if isinstance(current, str) else json.dumps(current)
    raise ValueError(f"unknown drift op {op!r}")


def compile_ops(doc: Any, op: DriftOp, path: str, *, to: str | None = None,
                key: str | None = None, value: Any = None) -> list[dict[str, Any]]:
    """RFC 6902 ops that apply drift `op` to everything `path` selects in `doc`."""
    ops: list[dict[str, Any]] = []
    # deepest first, and higher list indices before lower ones, so removing or
    # moving one value leaves the other pointers valid
    for ptr in sorted(select(doc, parse_path(path)), key=_order, reverse=True):
        current = _get(doc, ptr)
        where = to_pointer(ptr)
        if op == "rename":
            if not ptr or not isinstance(ptr[-1], str) or to is None or ptr[-1] == to:
                continue
            ops.append({"op": "move", "from": where, "path": to_pointer((*ptr[:-1], to))})
        elif op == "remove":
            if ptr:
                ops.append({"op": "remove", "path": where})
        elif op == "add_field":
            if isinstance(current, dict) and key is not None:
                ops.append({"op": "add", "path": to_pointer((*ptr, key)), "value": value})
        else:
            new = _replacement(op, current, to, value)
            if new != current or type(new) is not type(current):
                ops.append({"op": "replace", "path": where, "value": new})
    return ops


def _split(pointer: str) -> list[str]:
    return [p.replace("~1", "/").replace("~0", "~") for p in pointer.split("/")[1:]]


def _parent(doc: Any, pointer: str) -> tuple[Any, str | int]:
    parts = _split(pointer)
    target = doc
    for p in parts[:-1]:
        target = target[int(p)] if isinstance(target, list) else target[p]
    last: str | int = parts[-1]
    if isinstance(target, list):
        last = len(target) if last == "-" else int(last)
    return target, last


def apply_patch(doc: Any, ops: list[dict[str, Any]]) -> Any:
    """Apply RFC 6902 add/remove/replace/move ops to a deep copy of `doc`."""
    out = copy.deepcopy(doc)
    for op in ops:
        if op["path"] == "" and op["op"] == "replace":
            out = copy.deepcopy(op["value"])
            continue
        if op["op"] == "move":
            parent, last = _parent(out, op["from"])
            moved = parent.pop(last)
            parent, last = _parent(out, op["path"])
            if isinstance(parent, list):
                parent.insert(int(last), moved)
            else:
                parent[last] = moved
            continue
        parent, last = _parent(out, op["path"])
        if op["op"] == "remove":
            del parent[last]
        elif op["op"] == "add" and isinstance(parent, list):
            parent.insert(int(last), copy.deepcopy(op["value"]))
        elif op["op"] in ("add", "replace"):
            parent[last] = copy.deepcopy(op["value"])
        else:
            raise ValueError(f"unsupported patch op {op['op']!r}")
    return out


def json_data_problem(value: Any, max_depth: int = 100,
                      max_items: int = 100_000) -> str | None:
    """Why `value` cannot go into a JSON body, or None when it can.

    JSON data is None, bool, int, finite float, str, lists and str-keyed dicts,
    nested at most `max_depth` deep, `max_items` values in all (shared values
    counted each time they appear, as json.dumps writes them). YAML also gives
    dates, bytes (!!binary), sets, NaN and infinity, which json.dumps refuses or
    writes as non-JSON (`NaN`) at request time, and aliases can make a value
    contain itself (endless depth) or expand without bound.
    """
    todo: list[tuple[Any, int]] = [(value, 0)]
    count = 0
    while todo:
        item, depth = todo.pop()
        count += 1
        if count > max_items:
            return f"more than {max_items:,} values"
        if depth > max_depth:
            return f"nested more than {max_depth} levels deep (or it contains itself)"
        if item is None or isinstance(item, bool | int | str):
            continue
        if isinstance(item, float):
            if not math.isfinite(item):
                return f"{item} is not a JSON number"
        elif isinstance(item, dict):
            bad = next((k for k in item if not isinstance(k, str)), None)
            if bad is not None:
                return f"object keys must be strings, not {bad!r}"
            todo += [(v, depth + 1) for v in item.values()]
        elif isinstance(item, list):
            todo += [(v, depth + 1) for v in item]
        else:
            return f"a {type(item).__name__} value is not JSON data (quote it to send a string)"
    return None
