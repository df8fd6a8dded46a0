"""JUnit XML: one test case per gate, so a CI system lists each SLO by name.

The common JUnit schema (Ant's, which Jenkins, GitLab and GitHub test
reporters read): ``<testsuites>`` holding one ``<testsuite>`` with ``tests``,
``failures``, ``errors``, ``skipped`` and ``time``; each ``<testcase>`` has a
``name`` and ``classname``; a failed one holds ``<failure message= type=>``
with the measured value against the threshold. One more case, ``run``, fails
whenever the exit code is not 0, with the reason (failed calls or gates, a
saturated generator, incomplete results, a signal, the demo's ground-truth
check), so a suite that is all green means the exit code was 0.

Every string in it goes through :func:`~loadcaller.printable.printable`: a reason an
agent sent may hold control characters or bytes that were not UTF-8 (a Latin-1 SIP
reason phrase), and ElementTree writes those as they are (or as ``&#56553;``), which
makes a file no XML parser reads: the CI step would lose every gate's verdict.
"""

from __future__ import annotations

import os
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from loadcaller.gates.evaluate import GateResult, format_value
from loadcaller.printable import printable


def _element(parent: ET.Element, tag: str, **attrs: str) -> ET.Element:
    return ET.SubElement(parent, tag, {k: printable(v) for k, v in attrs.items()})


def _case(suite: ET.Element, classname: str, name: str, failure: str | None,
          detail: str, kind: str) -> None:
    case = _element(suite, "testcase", name=name, classname=classname, time="0")
    if failure is not None:
        fail = _element(case, "failure", message=failure, type=kind)
        fail.text = printable(detail)
    else:
        out = _element(case, "system-out")
        out.text = printable(detail)


def junit_xml(results: Sequence[GateResult], summary: dict[str, Any], *,
              run_problem: str | None) -> bytes:
    """The JUnit XML document of a run's gates (and the ``run`` case)."""
    run = summary.get("run") or {}
    name = str(run.get("name") or "run")
    classname = f"loadcaller.{name}"
    elapsed = float(run.get("elapsed_s") or 0.0)
    failures = sum(not r.passed for r in results) + (run_problem is not None)
    root = ET.Element("testsuites", name="loadcaller", tests=str(len(results) + 1),
                      failures=str(failures), errors="0", time=f"{elapsed:.3f}")
    suite = _element(root, "testsuite", name=f"loadcaller gates: {name}",
                     tests=str(len(results) + 1), failures=str(failures), errors="0",
                     skipped="0", time=f"{elapsed:.3f}",
                     timestamp=time.strftime("%Y-%m-%dT%H:%M:%S"),
                     hostname=os.uname().nodename)
    props = ET.SubElement(suite, "properties")
    for key in ("target", "transport", "users", "duration_s", "results_dir"):
        if run.get(key) is not None:
            _element(props, "property", name=key, value=str(run[key]))
    for r in results:
        g = r.gate
        measured = format_value(g, r.value)
        wanted = f"{g.op} {format_value(g, g.threshold)}"
        detail = f"{g.metric} measured {measured}; gate: {g.label}"
        failure = None if r.passed else f"{g.metric} = {measured}, wanted {wanted}"
        _case(suite, classname, g.label, failure, detail, "SLOGateFailed")
    _case(suite, classname, "run", run_problem,
          run_problem or "calls and generator within bounds", "RunFailed")
    ET.indent(root)
    data: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return data + b"\n"


def write_junit(path: Path, results: Sequence[GateResult], summary: dict[str, Any], *,
                run_problem: str | None) -> None:
    """Write the JUnit file (atomically: a CI step never reads half of it)."""
    data = junit_xml(results, summary, run_problem=run_problem)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
