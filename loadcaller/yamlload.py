"""Bounded YAML loading for profiles: parse once, refuse what would blow up later.

A profile is user input, so the loader refuses, with the line and the field
where it happens, what would otherwise surface far from the file as a
traceback or a hang (each of these was found by a hostile review):

- more than :data:`MAX_BYTES` (1 MiB; a real profile is a few KB, and 1 MiB
  takes a second or two to load);
- nesting deeper than :data:`MAX_DEPTH` levels, aliases included (PyYAML's
  composer recurses per level: 20,000 levels raised RecursionError);
- more than :data:`MAX_NODES` nodes once aliases are expanded: a 1 KB
  "billion laughs" document expands to 10^9 nodes, which pydantic would walk.
  Nodes are counted as they are composed, so a bomb stops at the alias that
  crosses the limit, in microseconds; an alias inside its own anchor (a
  recursive structure) is refused too;
- numbers a profile never needs: ``.inf`` and ``.nan`` (durations became
  OverflowError in ``int(inf * 1e9)``), integers beyond 2**64;
- text that is not UTF-8, and characters YAML does not allow;
- a key written twice in one mapping (``load: {users: 2, users: 500}``, two
  ``scenarios:``): PyYAML keeps the last one silently. A ``<<`` merge key's
  values may still be overridden.

A value that cannot be constructed (``.inf``, a date like ``2024-13-45``, a
300-digit integer) does not stop the load: it is reported with its line and
field among the other problems and kept as written (the text, or the float),
so that ``loadcaller validate`` lists every error of a file at once. The rest
(syntax, the bounds above) stops at the first.

The node tree is composed once, bounded as above, and the data is constructed
from it; the tree stays available to map pydantic's error locations back to
lines (:func:`line_of`). Events come from libyaml when PyYAML has it (its
parser is a state machine with its own stack, not recursive) and the composer
is PyYAML's Python one, which the bounds hook into: 1 MiB of profile loaded in
1.5 s here instead of 4 s with the pure Python parser (which is the fallback
without libyaml, with the same bounds).
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any, Final

import yaml
from yaml.composer import Composer
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.reader import Reader, ReaderError
from yaml.resolver import Resolver

__all__ = ["MAX_BYTES", "MAX_DEPTH", "MAX_NODES", "YamlError", "decode", "line_of", "load"]

MAX_BYTES: Final = 1024 * 1024
MAX_DEPTH: Final = 64
MAX_NODES: Final = 200_000
_MAX_INT: Final = 2**64
_MERGE: Final = "tag:yaml.org,2002:merge"
_MAX_INT_DIGITS: Final = 32  # checked before int() sees the text (4,300 digits raise)

Loc = tuple[str | int, ...]


class YamlError(Exception):
    """The document cannot be loaded: a message, its line (1-based) and field path."""

    def __init__(self, message: str, line: int | None, loc: Loc = ()) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.loc = loc


if TYPE_CHECKING or not yaml.__with_libyaml__:
    from yaml import SafeLoader as _Base
else:
    from yaml._yaml import CParser

    class _Base(Composer, CParser, SafeConstructor, Resolver):  # type: ignore[misc]
        """libyaml's events, PyYAML's composer (bounded below) and safe constructor."""

        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            Composer.__init__(self)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)


class _Loader(_Base):
    """Safe loading with YAML 1.2 booleans and the bounds of the module docstring."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0  # open (non-alias) nodes above the one being composed
        self._nodes = 0  # nodes so far, aliases expanded
        self._shape: dict[int, tuple[int, int]] = {}  # id(node) -> (expanded size, depth)
        self.path: list[str | int] = []  # where composition is, for syntax errors
        self.problems: list[tuple[Node, str]] = []  # values that could not be constructed

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        part = _part(index)
        if part is not None:
            self.path.append(part)
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            node: Node = super().compose_node(parent, index)
            shape = self._shape.get(id(node))
            if shape is None:
                raise ConstructorError(None, None, f"alias *{event.anchor} is used inside its "
                                       "own anchor (a recursive structure)", event.start_mark)
            size, depth = shape
            if self._depth + depth > MAX_DEPTH:
                raise ConstructorError(None, None, f"alias *{event.anchor} nests the document "
                                       f"deeper than {MAX_DEPTH} levels", event.start_mark)
            self._count(size, event.start_mark, f"aliases expand the document past "
                        f"{MAX_NODES:,} nodes (at *{event.anchor})")
        else:
            self._depth += 1
            if self._depth > MAX_DEPTH:
                raise ConstructorError(None, None, f"nested deeper than {MAX_DEPTH} levels",
                                       self.peek_event().start_mark)
            node = super().compose_node(parent, index)
            self._depth -= 1
            children = _children(node)
            self._shape[id(node)] = (
                1 + sum(self._shape[id(c)][0] for c in children),
                1 + max((self._shape[id(c)][1] for c in children), default=0),
            )
            self._count(1, node.start_mark, f"more than {MAX_NODES:,} YAML nodes")
        if part is not None:
            self.path.pop()
        return node

    def _count(self, n: int, mark: yaml.Mark, message: str) -> None:
        self._nodes += n
        if self._nodes > MAX_NODES:
            raise ConstructorError(None, None, message, mark)

    def construct_mapping(self, node: Node, deep: bool = False) -> Any:
        """A mapping; a key written twice is a problem (PyYAML keeps the last silently)."""
        if isinstance(node, MappingNode):
            seen: dict[tuple[str, str], Node] = {}
            for key, _value in node.value:
                if not isinstance(key, ScalarNode) or key.tag == _MERGE:
                    continue  # a merged key (<<) may be overridden: that is what it is for
                first = seen.setdefault((str(key.tag), str(key.value)), key)
                if first is not key:
                    self.problems.append((key, f"duplicate key {_excerpt(key)} (first on "
                                          f"line {first.start_mark.line + 1})"))
        return super().construct_mapping(node, deep)

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        deep_before = bool(getattr(self, "deep_construct", False))
        try:
            return super().construct_object(node, deep)
        except (ValueError, OverflowError, TypeError) as exc:  # e.g. a date 2024-13-45
            self.deep_construct = deep_before
            self.recursive_objects.pop(node, None)
            return self._kept(node, f"cannot read {_excerpt(node)}: {exc}")

    def _kept(self, node: Node, problem: str, value: Any = None) -> Any:
        """Record ``problem`` and keep the value as written (the text of a scalar)."""
        self.problems.append((node, problem))
        if value is None and isinstance(node, ScalarNode):
            value = str(node.value)
        self.constructed_objects[node] = value
        return value

    def construct_yaml_float(self, node: Node) -> Any:
        value = float(super().construct_yaml_float(node))
        if not math.isfinite(value):
            return self._kept(node, f"{_excerpt(node)} is not a finite number "
                              "(inf and NaN are not accepted)", value)
        return value

    def construct_yaml_int(self, node: Node) -> Any:
        if isinstance(node, ScalarNode) and len(str(node.value)) > _MAX_INT_DIGITS:
            return self._kept(node, f"{_excerpt(node)} is too large an integer")
        value = int(super().construct_yaml_int(node))
        if abs(value) > _MAX_INT:
            return self._kept(node, f"{_excerpt(node)} is too large an integer (over 2**64)")
        return value


# YAML 1.2 booleans: only true/false, so a caller can say ``no`` or ``yes``.
_Loader.yaml_implicit_resolvers = {
    ch: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for ch, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)
_Loader.add_constructor("tag:yaml.org,2002:float", _Loader.construct_yaml_float)
_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_yaml_int)


def _part(index: Any) -> str | int | None:
    """The path element of a node composed at ``index`` (None: the root or a key)."""
    if isinstance(index, int):
        return index
    if isinstance(index, ScalarNode):
        return str(index.value)
    return None if index is None else "?"


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _excerpt(node: Node) -> str:
    if isinstance(node, ScalarNode):
        text = str(node.value)
        return repr(text if len(text) <= 40 else text[:37] + "...")
    return "this value"


def _describe(exc: yaml.MarkedYAMLError) -> str:
    problem = exc.problem or "invalid YAML"
    if exc.context:
        at = exc.context_mark
        where = f" at line {at.line + 1}" if at is not None and exc.problem_mark is not None and (
            at.line != exc.problem_mark.line) else ""
        return f"{problem} ({exc.context}{where})"
    return problem


def load(text: str) -> tuple[Node | None, Any, list[YamlError]]:
    """Compose ``text`` once (bounded) and construct its data; raise :class:`YamlError`.

    Returns the node tree (None for an empty document), the data, and the values
    that could not be constructed (kept as written in the data), in document order.
    """
    if len(text) > MAX_BYTES:
        raise YamlError(f"the profile is {len(text):,} characters; at most "
                        f"{MAX_BYTES // 1024} KiB are read", 1)
    loader: _Loader | None = None
    root: Node | None = None
    try:
        loader = _Loader(text)
        root = loader.get_single_node()
        data = None if root is None else loader.construct_document(root)
        problems = [YamlError(message, node.start_mark.line + 1,
                              (_path_to(root, node) if root is not None else None) or ())
                    for node, message in sorted(loader.problems,
                                                key=lambda p: p[0].start_mark.index)]
    except ReaderError as exc:
        # libyaml counts the position in UTF-8 bytes: find the character ourselves.
        bad = Reader.NON_PRINTABLE.search(text)
        pos = bad.start() if bad is not None else min(int(exc.position), len(text))
        code = ord(bad.group()) if bad is not None else int(exc.character)
        cleaned = Reader.NON_PRINTABLE.sub(" ", text)
        raise YamlError(f"character U+{code:04X} is not allowed in YAML",
                        text.count("\n", 0, pos) + 1, _loc_in(cleaned, pos)) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = None if mark is None else mark.line + 1
        if root is not None and mark is not None:  # composed: a constructor's error
            path = _loc_at(root, mark.index)
        else:  # where composition stopped
            path = tuple(loader.path) if loader is not None else ()
        prefix = "" if isinstance(exc, ConstructorError) else "YAML syntax error: "
        raise YamlError(prefix + _describe(exc), line, path) from None
    except yaml.YAMLError as exc:
        raise YamlError(f"YAML error: {exc}", None) from None
    except (RecursionError, MemoryError) as exc:
        raise YamlError(f"too complex to load ({type(exc).__name__})", None) from None
    finally:
        if loader is not None:
            loader.dispose()
    return root, data, problems


def decode(raw: bytes) -> str:
    """UTF-8 text of a profile's bytes; :class:`YamlError` at the first bad byte."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        text = raw.decode("utf-8", errors="replace")
        index = len(raw[: exc.start].decode("utf-8", errors="replace"))
        raise YamlError(f"not UTF-8 text: byte 0x{raw[exc.start]:02x} at offset {exc.start} "
                        "(save the file as UTF-8)", raw.count(b"\n", 0, exc.start) + 1,
                        _loc_in(text, index)) from None


def line_of(root: Node | None, loc: Loc) -> int | None:
    """The 1-based line of the value at ``loc`` (its deepest part present in the YAML)."""
    node = root
    if node is None:
        return None
    line = node.start_mark.line + 1
    for part in loc:
        if isinstance(node, MappingNode):
            for key, value in node.value:
                if isinstance(key, ScalarNode) and key.value == str(part):
                    node, line = value, value.start_mark.line + 1
                    break
            # a part not in the YAML (a union tag) is skipped
        elif (isinstance(node, SequenceNode) and isinstance(part, int)
              and 0 <= part < len(node.value)):
            node = node.value[part]
            line = node.start_mark.line + 1
    return line


def _path_to(root: Node, target: Node) -> Loc | None:
    """The path of ``target`` in the tree (the first found; aliases share nodes)."""
    stack: list[tuple[Node, Loc]] = [(root, ())]
    seen: set[int] = set()
    while stack:
        node, loc = stack.pop()
        if node is target:
            return loc
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, SequenceNode):
            stack.extend((child, (*loc, i)) for i, child in enumerate(node.value))
        elif isinstance(node, MappingNode):
            for key, value in node.value:
                part = _part(key) or "?"
                stack.extend([(value, (*loc, part)), (key, (*loc, part))])
    return None


def _loc_in(text: str, index: int) -> Loc:
    """The path of character ``index`` of ``text`` (best effort: ``()``)."""
    try:
        root, _, _ = load(text)
    except YamlError:
        return ()
    return () if root is None else _loc_at(root, index)


def _loc_at(root: Node, index: int) -> Loc:
    """The path of the deepest value spanning character ``index``."""
    loc: list[str | int] = []
    node: Node | None = root
    while node is not None:
        found: Node | None = None
        if isinstance(node, SequenceNode):
            for i, child in enumerate(node.value):
                if _spans(child, index):
                    loc.append(i)
                    found = child
                    break
        elif isinstance(node, MappingNode):
            for key, value in node.value:
                if _spans(key, index) or _spans(value, index):
                    loc.append(_part(key) or "?")
                    found = value if _spans(value, index) else None
                    break
        node = found
    return tuple(loc)


def _spans(node: Node, index: int) -> bool:
    return bool(node.start_mark.index <= index < max(node.end_mark.index,
                                                       node.start_mark.index + 1))
