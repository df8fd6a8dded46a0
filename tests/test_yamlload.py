"""Bounded YAML loading: parse once, refuse bombs and monsters quickly, locate everything."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from loadcaller import yamlload
from loadcaller.errors import ProfileError
from loadcaller.profile import load_profile, parse_profile

ROOT = Path(__file__).resolve().parents[1]
S = "scenarios: [{name: a, steps: [wait_for_agent, hangup]}]\n"


def _bomb(levels: int) -> str:
    lines = ["l0: &l0 [" + ", ".join(["lol"] * 10) + "]"]
    lines += [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def test_ordinary_documents_load_as_safe_load_does() -> None:
    for path in [*ROOT.glob("profiles/*.yaml"), ROOT / "loadcaller/data/demo.yaml",
                 *ROOT.glob("chaos/examples/*.yaml")]:
        text = path.read_text()
        _root, data, problems = yamlload.load(text)
        expected = yaml.load(text, Loader=yaml.SafeLoader)
        assert problems == []
        assert _normalise(data) == _normalise(expected), path


def _normalise(data: Any) -> Any:
    """YAML 1.1 booleans (``no``, ``yes``) are strings for us: compare them as such."""
    if isinstance(data, dict):
        return {k: _normalise(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_normalise(v) for v in data]
    return {False: "no", True: "yes"}.get(data, data) if isinstance(data, bool) else data


def test_a_profile_is_parsed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """It used to be composed (for lines) and loaded (for data): twice the time."""
    calls = []
    original = yamlload._Loader.get_single_node

    def counting(self: Any) -> Any:
        calls.append(1)
        return original(self)

    monkeypatch.setattr(yamlload._Loader, "get_single_node", counting)
    monkeypatch.setattr(yaml, "compose", None)  # the old path: must not be used
    monkeypatch.setattr(yaml, "load", None)
    parse_profile(S + "name: once\n")
    assert len(calls) == 1


def test_alias_bomb_is_refused_quickly_at_its_line() -> None:
    text = S + _bomb(9)  # 10^9 nodes once expanded, 400 bytes written
    start = time.perf_counter()
    with pytest.raises(ProfileError) as info:
        parse_profile(text, "bomb.yaml")
    assert time.perf_counter() - start < 0.5
    # l4 (line 6) expands to 111,111 nodes and the document so far to about 124,000:
    # the first *l4 in l5 (line 7) crosses 200,000
    assert str(info.value) == (
        "bomb.yaml:7: l5[0]: aliases expand the document past 200,000 nodes (at *l4)")


def test_aliases_in_a_real_profile_validate() -> None:
    text = ("scenarios:\n  - name: a\n    steps: &common [wait_for_agent, hangup]\n"
            "  - name: b\n    steps: *common\n")
    p = parse_profile(text)
    assert p.scenarios[1].steps == p.scenarios[0].steps


@pytest.mark.parametrize(("text", "line", "loc", "message"), [
    ("a: " + "[" * 100 + "]" * 100 + "\n", 1, ("a",) + (0,) * 63, "deeper than 64"),
    ("a: &a [1, *a]\n", 1, ("a", 1), "recursive structure"),
    ("a: &a " + "[" * 40 + "]" * 40 + "\nb: " + "[" * 30 + "*a" + "]" * 30 + "\n", 2,
     ("b",) + (0,) * 30, "alias *a nests the document deeper than 64 levels"),
    ("a:\n  b: [1, 2\n  c: 3\n", 3, ("a", "b"), "YAML syntax error"),
    ("a:\n  - x\x07y\n", 2, ("a", 0), "U+0007 is not allowed"),
    ("a: 1\n---\nb: 2\n", 2, (), "expected a single document"),
])
def test_refusals_are_located(text: str, line: int, loc: tuple[str | int, ...],
                              message: str) -> None:
    with pytest.raises(yamlload.YamlError) as info:
        yamlload.load(text)
    assert (info.value.line, info.value.loc) == (line, loc)
    assert message in info.value.message


def test_unreadable_values_are_kept_and_all_reported() -> None:
    text = "a: .inf\nb: [.nan, 2024-02-30]\nc: " + "1" * 40 + "\nd: 18446744073709551617\ne: ok\n"
    _root, data, problems = yamlload.load(text)
    assert data["a"] == float("inf") and data["b"][1] == "2024-02-30" and data["e"] == "ok"
    assert [(p.line, p.loc) for p in problems] == [
        (1, ("a",)), (2, ("b", 0)), (2, ("b", 1)), (3, ("c",)), (4, ("d",))]
    assert "not a finite number" in problems[0].message
    assert "day is out of range" in problems[2].message
    assert "over 2**64" in problems[4].message


def test_a_key_written_twice_is_reported_where_it_is_repeated() -> None:
    text = "load: {users: 2, users: 500}\na: 1\nb: {c: 1}\na: 2\n"
    _root, _data, problems = yamlload.load(text)
    assert [(p.line, p.loc, p.message) for p in problems] == [
        (1, ("load", "users"), "duplicate key 'users' (first on line 1)"),
        (4, ("a",), "duplicate key 'a' (first on line 2)")]


def test_a_merge_key_may_still_be_overridden() -> None:
    text = "base: &b {users: 2, duration: 5}\nload: {<<: *b, users: 3}\n"
    _root, data, problems = yamlload.load(text)
    assert problems == [] and data["load"] == {"users": 3, "duration": 5}


def test_oversized_profile_is_refused_before_parsing(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_text(S + "".join(f"# comment line {i:07d} " + "x" * 80 + "\n"
                               for i in range(12_000)))  # 1.1 MB
    start = time.perf_counter()
    with pytest.raises(ProfileError, match=r"big\.yaml:1: \(top level\): the profile is over "
                       r"1024 KiB"):
        load_profile(big)
    assert time.perf_counter() - start < 0.5
    with pytest.raises(ProfileError, match=r"<profile>:1: \(top level\): the profile is "):
        parse_profile(big.read_text())


def test_a_profile_just_under_the_cap_loads_in_reasonable_time() -> None:
    steps = "".join(f"  - name: s{i}\n    steps: [wait_for_agent, {{pause: {i % 9}00ms}}, "
                    f"hangup]\n" for i in range(15_000))
    text = "scenarios:\n" + steps
    assert 0.9 * yamlload.MAX_BYTES < len(text) <= yamlload.MAX_BYTES
    start = time.perf_counter()
    p = parse_profile(text)
    assert len(p.scenarios) == 15_000
    assert time.perf_counter() - start < 30  # about 2 s here (it was 5.7 s for 1.1 MB)


def test_non_utf8_names_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes((S + "name: caf\xe9\n").encode("latin-1"))
    with pytest.raises(ProfileError) as info:
        load_profile(path)
    assert str(info.value) == (f"{path}:2: name: not UTF-8 text: byte 0xe9 at offset "
                               f"{len(S) + 9} (save the file as UTF-8)")


def test_a_device_is_read_no_further_than_the_cap() -> None:
    with pytest.raises(ProfileError, match="over 1024 KiB"):
        load_profile(Path("/dev/zero"))


def test_without_libyaml_the_pure_python_parser_keeps_the_bounds() -> None:
    code = (
        "import yaml; yaml.__with_libyaml__ = False\n"
        "from loadcaller import yamlload\n"
        "assert yamlload._Loader.__mro__[1] is yaml.SafeLoader\n"
        "for text, message in [('a: ' + '[' * 20000 + ']' * 20000, 'deeper than 64'),\n"
        "                      (BOMB, 'past 200,000'),\n"
        "                      ('a: &a [1, *a]', 'recursive')]:\n"
        "    try:\n"
        "        yamlload.load(text)\n"
        "    except yamlload.YamlError as exc:\n"
        "        assert message in exc.message, exc.message\n"
        "    else:\n"
        "        raise AssertionError(text[:40])\n"
        "_, data, problems = yamlload.load('a: [.inf, no]')\n"
        "assert data == {'a': [float('inf'), 'no']} and problems[0].loc == ('a', 0)\n"
    ).replace("BOMB", repr(_bomb(9)))
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
