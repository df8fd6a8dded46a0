"""Broken chaos configs: `chaos-proxy --check FILE` exits 2 naming file, line and field.

One table, one row per way a config file can be wrong, each run through the real
command: exit status 2, the file name with the line, the field, the reason, and
never a traceback. Rows marked "was:" passed --check or crashed before.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HTTP = ('routes:\n'
        '  - {name: api, kind: http, listen: "127.0.0.1:0", upstream: "http://127.0.0.1:9"}\n')
UDP = ('routes:\n'
       '  - {name: rtp, kind: udp, listen: "127.0.0.1:0", upstream: "127.0.0.1:9"}\n')
DRIFT = "faults:\n  - type: schema_drift\n    op: add_field\n    path: $\n    key: k\n"


def _bomb() -> str:
    lines = ["    value:", "      - &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, 9):
        lines.append(f"      - &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]")
    return HTTP + DRIFT + "\n".join(lines) + "\n"


def _stacked_aliases() -> str:
    # each line 50 deep, each alias inside the next: 1,500 deep once expanded
    lines = ["    value:", "      - &a0 " + "[" * 50 + "]" * 50]
    lines += [f"      - &a{i} " + "[" * 50 + f"*a{i - 1}" + "]" * 50 for i in range(1, 30)]
    return HTTP + DRIFT + "\n".join(lines) + "\n"


def _block_nesting(depth: int) -> str:
    body = "".join(f"{'  ' * (i + 3)}a:\n" for i in range(depth))
    return HTTP + DRIFT + "    value:\n" + body + "  " * (depth + 3) + "a: 1\n"


# (id, file content, line, field, words in the reason)
CASES: list[tuple[str, str | bytes, int, str, str]] = [
    # was: passed --check, then GET /faults serialised gigabytes
    ("alias-bomb", _bomb(), 13, "faults[0].value[4]", "alias bomb"),
    # was: passed --check, a value that contains itself
    ("alias-cycle", HTTP + DRIFT + "    value: &me {again: *me}\n", 8,
     "faults[0].value", "refers to its own anchor"),
    # was: RecursionError traceback, exit 1
    ("flow-nesting-20000", HTTP + DRIFT + "    value: " + "[" * 20000 + "]" * 20000 + "\n",
     8, "faults[0].value[0][0]", "nested more than 100 levels"),
    ("alias-stacked-depth", _stacked_aliases(), 11, "faults[0].value[2][0][0]",
     "levels deep (aliases included)"),
    ("block-nesting-150", _block_nesting(150), 106, "faults[0].value.a.a", "nested more than"),
    # was: passed --check (an endless delay)
    ("delay-inf", HTTP + "faults:\n  - {type: latency, delay: .inf}\n", 4,
     "faults[0].delay", "finite"),
    ("delay-inf-string", HTTP + "faults:\n  - {type: latency, delay: '1e999'}\n", 4,
     "faults[0].delay", "finite"),
    ("delay-nan", HTTP + "faults:\n  - {type: latency, delay: .NaN}\n", 4,
     "faults[0].delay", "finite"),
    ("probability-nan", HTTP + "faults:\n  - type: status\n    status: 503\n"
     "    probability: .nan\n", 6, "faults[0].probability", "finite"),
    ("for-inf", HTTP + "faults:\n  - {type: reset, for: .inf}\n", 4, "faults[0].for", "finite"),
    ("window-start-inf", HTTP + "faults:\n  - {type: reset, window: {start: -.inf}}\n", 4,
     "faults[0].window.start", "finite"),
    ("ramp-from-nan", HTTP + "faults:\n  - {type: reset, for: 10s, ramp: {from: .nan, to: 1}}\n",
     4, "faults[0].ramp.from", "finite"),
    ("bandwidth-inf", HTTP + "faults:\n  - {type: bandwidth, bytes_per_second: .inf}\n", 4,
     "faults[0].bytes_per_second", "finite"),
    ("burst-inf", UDP + "faults:\n  - type: udp_gilbert_elliott\n    mean_loss: 0.1\n"
     "    mean_burst: .inf\n", 6, "faults[0].mean_burst", "finite"),
    ("route-timeout-inf", HTTP.replace('9"}', '9", timeout: .inf}'), 2,
     "routes[0].timeout", "finite"),
    ("seed-nan", HTTP + "seed: .nan\n", 3, "seed", "finite"),
    # was: passed --check, then json.dumps failed on each drifted response
    ("drift-value-date", HTTP + DRIFT + "    value: 2024-05-01\n", 8, "faults[0].value",
     "date value is not JSON"),
    ("drift-value-binary", HTTP + DRIFT + "    value: !!binary /w==\n", 8, "faults[0].value",
     "bytes value is not JSON"),
    ("drift-value-nan", HTTP + DRIFT + "    value: [1, .nan]\n", 8, "faults[0].value",
     "not a JSON number"),
    ("drift-value-int-key", HTTP + DRIFT + "    value: {1: one}\n", 8, "faults[0].value",
     "keys must be strings"),
    # was: passed --check, silently keeping the last of the two
    ("duplicate-key", HTTP + "faults:\n  - type: latency\n    delay: 1s\n    delay: 9s\n", 6,
     "faults[0].delay", "given twice"),
    # was: no file or line in the message
    ("integer-5000-digits", HTTP + "faults:\n  - {type: latency, delay: 1" + "0" * 5000 + "}\n",
     4, "faults[0].delay", "bad integer"),
    ("python-tag", HTTP + "faults: !!python/object/apply:os.system [true]\n", 3, "faults",
     "could not determine a constructor"),
    # was: passed --check, then a traceback when the ws listener started
    ("ws-upstream-no-host", HTTP.replace("kind: http", "kind: ws").replace(
        '"http://127.0.0.1:9"', '"ws://:9"'), 2, "routes[0].upstream", "has no host"),
    # was: passed --check; every client path went into the query
    ("upstream-with-query", HTTP.replace('9"}', '9/v1?key=x"}'), 2, "routes[0].upstream",
     "may not have a query"),
    ("port-out-of-range", HTTP.replace("127.0.0.1:0", "127.0.0.1:70000"), 2,
     "routes[0].listen", "port out of range"),
    ("fault-not-a-mapping", HTTP + "faults:\n  - latency\n", 4, "faults[0]",
     "must be a mapping"),
    # was: passed --check, then a 500 and a traceback on every request (ZeroDivisionError)
    ("pareto-alpha-0", HTTP + "faults:\n  - {type: latency, distribution: pareto, alpha: 0}\n",
     4, "faults[0].alpha", "greater than 0"),
    # was: passed --check, then every response broke off ("Potential header injection")
    ("status-header-crlf", HTTP + 'faults:\n  - type: status\n    status: 503\n'
     '    headers: {X-A: "a\\r\\nSet-Cookie: s=1"}\n', 6, "faults[0].headers",
     "line breaks"),
    ("retry-after-crlf", HTTP + 'faults:\n  - type: status\n    preset: "429"\n'
     '    retry_after: "1\\nX: y"\n', 6, "faults[0].retry_after", "line breaks"),
    # was: passed --check, then every client failed to parse the response
    ("status-header-name-space", HTTP + 'faults:\n  - type: status\n    status: 503\n'
     '    headers: {"Retry After": "1"}\n', 6, "faults[0].headers", "not an HTTP token"),
    # was: a final 101 without an upgrade (clients wait for the switched protocol)
    ("status-1xx", HTTP + "faults:\n  - {type: status, status: 101}\n", 4,
     "faults[0].status", "greater than or equal to 200"),
    # was: passed --check, a fault that never switches on
    ("window-end-before-start", HTTP + "faults:\n  - type: reset\n"
     "    window: {start: 2m, end: 1m}\n", 5, "faults[0].window", "must come after"),
    # was: passed --check, `at`/`for` silently ignored
    ("window-and-at", HTTP + "faults:\n  - type: reset\n    at: 5m\n"
     "    window: {start: 1m}\n", 4, "faults[0]", "not both"),
    # was: passed --check; the control API cannot address "a/b", "" became "reset"
    ("fault-name-slash", HTTP + "faults:\n  - {type: reset, name: crm/slow}\n", 4,
     "faults[0].name", "without '/'"),
    # was: passed --check, then ZeroDivisionError on every response at the ramp's start
    ("ramp-bandwidth-from-0", HTTP + "faults:\n  - type: bandwidth\n    bytes_per_second: 1e4\n"
     "    for: 1m\n    ramp: {field: bytes_per_second, from: 0, to: 1e4}\n", 7,
     "faults[0].ramp.from", "greater than 0"),
    # was: passed --check, silently clamped
    ("ramp-probability-3", HTTP + "faults:\n  - {type: reset, for: 1m, ramp: {from: 0, to: 3}}\n",
     4, "faults[0].ramp.to", "between 0 and 1"),
    ("fault-name-empty", HTTP + "faults:\n  - {type: reset, name: ''}\n", 4,
     "faults[0].name", "non-empty"),
]

# file-level problems: no field to name, the file (and line) say where
FILE_CASES: list[tuple[str, bytes, int | None, str]] = [
    ("larger-than-1-MB", (HTTP + "# padding\n" * 120_000).encode(), None, "at most 1,000,000"),
    # was: "'utf-8' codec can't decode byte 0xe9", no file name
    ("latin-1", (HTTP + "# café\nfaults: []\n").encode("latin-1"), 3, "not UTF-8"),
    ("utf-16", (HTTP + "faults: []\n").encode("utf-16"), 1, "not UTF-8"),
    ("nul-byte", (HTTP + "faults: [\0]\n").encode(), 3, "special characters"),
]


def _check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "chaos.cli", "--config", str(path), "--check"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)


@pytest.mark.parametrize(("content", "line", "field", "reason"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_broken_config(tmp_path: Path, content: str | bytes, line: int, field: str,
                       reason: str) -> None:
    path = tmp_path / "chaos.yaml"
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    done = _check(path)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith(f"chaos-proxy: error: {path}:{line}: {field}"), done.stderr
    assert reason in done.stderr, done.stderr
    assert len(done.stderr) < 2000  # one readable message, not a dump


@pytest.mark.parametrize(("content", "line", "reason"), [c[1:] for c in FILE_CASES],
                         ids=[c[0] for c in FILE_CASES])
def test_broken_file(tmp_path: Path, content: bytes, line: int | None, reason: str) -> None:
    path = tmp_path / "chaos.yaml"
    path.write_bytes(content)
    done = _check(path)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    where = f"{path}:{line}:" if line is not None else f"{path}: "
    assert done.stderr.startswith(f"chaos-proxy: error: {where}"), done.stderr
    assert reason in done.stderr, done.stderr


def test_a_good_config_still_checks_ok(tmp_path: Path) -> None:
    path = tmp_path / "chaos.yaml"
    path.write_text("\ufeff" + HTTP + DRIFT + "    value: {a: &v [1, 2.5, null, true], b: *v}\n")
    done = _check(path)
    assert done.returncode == 0 and "ok (1 routes, 1 faults)" in done.stdout, done.stderr
