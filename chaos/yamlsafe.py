"""Reading a YAML config with bounds: encoding, nesting depth, expanded size, duplicate keys.

`yaml.safe_load` alone lets a small file do harm. Aliases share nodes, so nine
lines of `&a [*b, *b, ...]` (billion laughs) load in a blink and pass
validation, then expand to gigabytes when the value is serialised (GET /faults,
a schema_drift body); an alias inside its own anchor makes a value that never
ends; nesting 20,000 deep overflows the recursive composer with a RecursionError
(and PyYAML's scanner is quadratic in flow depth: 24 s to read `[` * 20000).

So a config is read in three passes, each bounded, and every refusal is a
ConfigError naming the file, the line and the field:

1. the bytes must be UTF-8 (a BOM is allowed), at most MAX_BYTES characters;
2. the parser's events are walked with a depth count, stopping at MAX_DEPTH
   before the composer recurses;
3. the composed node graph is measured with aliases expanded (memoised per
   node, so a bomb costs its size in the file, not its expansion): at most
   MAX_NODES nodes and MAX_BYTES bytes of scalar text, and no alias inside its
   own anchor; then, the expansion being small, its mappings are checked for
   duplicate keys (PyYAML silently keeps the last `delay:` of two).

Only then are Python objects constructed. A legitimate chaos config is a few
hundred nodes and a few kilobytes.

loadcaller/yamlload.py bounds profiles the same way; chaos cannot import it
(chaos stands alone, loadcaller builds on chaos), hence this module.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml

from chaos.errors import ConfigError, ConfigIssue

MAX_DEPTH = 100
MAX_NODES = 100_000
MAX_BYTES = 1_000_000

Loc = tuple[str | int, ...]


def field_name(loc: Loc) -> str:
    """`faults[0].match.path` from ("faults", 0, "match", "path")."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _short(loc: Loc, keep: int = 8) -> str:
    return field_name(loc[:keep]) + ("..." if len(loc) > keep else "")


def _fail(source: str, line: int | None, loc: Loc, message: str) -> ConfigError:
    return ConfigError([ConfigIssue(source, line, _short(loc), message)])


def decode(raw: bytes, source: str) -> str:
    """The text of a config file; a ConfigError naming the first bad byte if not UTF-8."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        bad = raw[e.start:e.start + 1].hex().upper()
        raise _fail(source, line, (), f"not UTF-8 text (byte 0x{bad} at offset {e.start}); "
                                      "save the file as UTF-8") from None


@dataclass
class _Open:
    """A collection the event walk is inside: how many child nodes it has seen so far."""

    mapping: bool
    seen: int = 0
    key: str = "?"

    def part(self) -> str | int:
        if not self.mapping:
            return self.seen
        return self.key if self.seen % 2 else "?"  # inside a value, or a complex key


def check_depth(text: str, source: str) -> None:
    """ConfigError when collections nest deeper than MAX_DEPTH (stops reading there)."""
    stack: list[_Open] = []
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.NodeEvent) and stack:
            top = stack[-1]
            if top.mapping and top.seen % 2 == 0:
                top.key = event.value if isinstance(event, yaml.ScalarEvent) else "?"
        if isinstance(event, yaml.CollectionStartEvent):
            stack.append(_Open(isinstance(event, yaml.MappingStartEvent)))
            if len(stack) > MAX_DEPTH:
                loc = tuple(o.part() for o in stack[:-1])
                raise _fail(source, event.start_mark.line + 1, loc,
                            f"nested more than {MAX_DEPTH} levels deep")
        elif isinstance(event, yaml.CollectionEndEvent):
            stack.pop()
        ended = isinstance(event, yaml.ScalarEvent | yaml.AliasEvent | yaml.CollectionEndEvent)
        if ended and stack:
            stack[-1].seen += 1


def _children(node: yaml.Node) -> list[tuple[str | int, yaml.Node]]:
    if isinstance(node, yaml.SequenceNode):
        return list(enumerate(node.value))
    if isinstance(node, yaml.MappingNode):
        out: list[tuple[str | int, yaml.Node]] = []
        for key, value in node.value:
            part = key.value if isinstance(key, yaml.ScalarNode) else "?"
            out += [("?", key), (part, value)]
        return out
    return []


Size = tuple[int, int, int]  # nodes, characters, depth; aliases expanded, capped
_ENDLESS: Size = (MAX_NODES + 1, MAX_BYTES + 1, MAX_DEPTH + 1)


def _sizes(root: yaml.Node) -> dict[int, Size]:
    """The expanded Size of every node, by id; endless for nodes on an alias cycle."""
    sizes: dict[int, Size] = {}
    entered: set[int] = set()  # on the current path from the root
    todo: list[tuple[yaml.Node, bool]] = [(root, False)]
    while todo:
        node, finished = todo.pop()
        nid = id(node)
        if finished:
            entered.discard(nid)
            nodes, chars = 1, (len(node.value) if isinstance(node.value, str) else 0) + 2
            depth = 0
            for _, child in _children(node):
                # a child still unmeasured here is an ancestor: an alias cycle, endless
                cn, cc, cd = sizes.get(id(child), _ENDLESS)
                nodes, chars = min(nodes + cn, _ENDLESS[0]), min(chars + cc, _ENDLESS[1])
                depth = max(depth, cd)
            is_collection = isinstance(node, yaml.CollectionNode)
            sizes[nid] = (nodes, chars, min(depth + is_collection, _ENDLESS[2]))
            continue
        if nid in sizes:
            continue
        entered.add(nid)
        todo.append((node, True))
        todo += [(child, False) for _, child in _children(node)
                 if id(child) not in entered and id(child) not in sizes]
    return sizes


def check_size(root: yaml.Node, source: str) -> None:
    """ConfigError when the config, aliases expanded, is too big, too deep or endless.

    Nesting is checked once more here because aliases can stack collections
    deeper than the text shows (`b: &b [*a]` around a deep `a`).
    """
    sizes = _sizes(root)

    def big(node: yaml.Node) -> bool:
        nodes, chars, _ = sizes[id(node)]
        return nodes > MAX_NODES or chars > MAX_BYTES

    def deep(node: yaml.Node) -> bool:
        return sizes[id(node)][2] > MAX_DEPTH

    if big(root):
        # the innermost value that is too big by itself
        node, loc = _descend(root, big, lambda n, loc: False, source)
        nodes = sizes[id(node)][0]
        what = (f"more than {MAX_NODES:,} YAML nodes" if nodes > MAX_NODES
                else f"more than {MAX_BYTES:,} characters")
        raise _fail(source, node.start_mark.line + 1, loc,
                    f"expands to {what} (aliases included); a chaos config is far "
                    "smaller: is it an alias bomb?")
    if deep(root):
        # where the deepest path crosses the limit
        node, loc = _descend(root, deep, lambda n, loc: len(loc) >= MAX_DEPTH, source,
                             key=lambda n: sizes[id(n)][2])
        raise _fail(source, node.start_mark.line + 1, loc,
                    f"nested more than {MAX_DEPTH} levels deep (aliases included)")


def _descend(root: yaml.Node, over: Callable[[yaml.Node], bool],
             stop: Callable[[yaml.Node, Loc], bool], source: str,
             key: Callable[[yaml.Node], int] | None = None) -> tuple[yaml.Node, Loc]:
    """Walk down through children that are `over` the limit (the largest by `key`).

    Coming back to a node already passed means an alias inside its own anchor.
    """
    node, passed = root, {id(root)}
    loc: Loc = ()
    while not stop(node, loc):
        steps = [(part, child) for part, child in _children(node) if over(child)]
        if not steps:
            break
        part, child = max(steps, key=lambda s: key(s[1])) if key else steps[0]
        if id(child) in passed:
            raise _fail(source, node.start_mark.line + 1, loc,
                        "an alias refers to its own anchor: the value would never end")
        node, loc = child, (*loc, part)
        passed.add(id(node))
    return node, loc


def check_duplicate_keys(root: yaml.Node, source: str) -> None:
    """ConfigError for a key given twice in one mapping (run after check_size)."""
    todo: list[tuple[yaml.Node, Loc]] = [(root, ())]
    while todo:
        node, loc = todo.pop()
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key, _ in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value != "<<":
                    if key.value in seen:
                        raise _fail(source, key.start_mark.line + 1, (*loc, key.value),
                                    "given twice in the same mapping")
                    seen.add(key.value)
        todo += [(child, (*loc, part)) for part, child in _children(node) if part != "?"]


class _Loader(yaml.SafeLoader):  # type: ignore[misc]  # PyYAML has no stubs here
    """SafeLoader whose integer errors (more than 4300 digits) carry the node's place."""

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        try:
            return int(super().construct_yaml_int(node))
        except ValueError as e:
            raise yaml.constructor.ConstructorError(
                None, None, f"bad integer: {e}", node.start_mark) from None


_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_yaml_int)


def _path_to(root: yaml.Node, mark: Any) -> Loc:
    """The field of the node that starts at `mark` (empty when none does)."""
    todo: list[tuple[yaml.Node, Loc]] = [(root, ())]
    while todo:
        node, loc = todo.pop()
        if (node.start_mark.line, node.start_mark.column) == (mark.line, mark.column):
            return loc
        todo += [(child, (*loc, part)) for part, child in _children(node) if part != "?"]
    return ()


def _yaml_error(e: yaml.YAMLError, text: str, source: str,
                root: yaml.Node | None) -> ConfigError:
    if isinstance(e, yaml.reader.ReaderError):  # a character YAML does not allow
        char = f" #x{e.character:04x}" if isinstance(e.character, int) else ""
        return _fail(source, text.count("\n", 0, e.position) + 1, (),
                     f"invalid YAML: {e.reason}{char}")
    mark = getattr(e, "problem_mark", None)
    line = mark.line + 1 if mark is not None else None
    loc = _path_to(root, mark) if root is not None and mark is not None else ()
    problem = getattr(e, "problem", None) or str(e)
    return _fail(source, line, loc, f"invalid YAML: {problem}")


def load_text(text: str, source: str) -> tuple[Any, yaml.Node | None]:
    """(data, composed node) of YAML text within the bounds above, or a ConfigError."""
    if len(text) > MAX_BYTES:
        # the pure-Python parser reads about 1 MB every few seconds: refuse before it
        raise _fail(source, None, (), f"{len(text):,} characters; a chaos config may hold "
                                      f"at most {MAX_BYTES:,}")
    node: yaml.Node | None = None
    try:
        check_depth(text, source)
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
            if node is None:
                return None, None
            check_size(node, source)
            check_duplicate_keys(node, source)
            return loader.construct_document(node), node
        finally:
            loader.dispose()
    except yaml.YAMLError as e:
        raise _yaml_error(e, text, source, node) from None
