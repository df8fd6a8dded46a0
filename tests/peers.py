"""Real peers the tests talk to: skip where one is missing, but fail under CI.

espeak-ng, sox, Prometheus and Pipecat are peers someone else wrote; a test
that needs one skips on a developer's machine without it. Under CI (``CI`` set
to true, as GitHub Actions, GitLab and .ci/run set it) a missing peer means a
broken CI image, and a skip there would let the run go green having tested
nothing, so the test fails instead, naming what to install.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from typing import NoReturn

import pytest

_TRUE = {"1", "true", "yes", "on"}


def under_ci() -> bool:
    """True when the environment says this is a CI run (``CI=true``)."""
    return os.environ.get("CI", "").strip().lower() in _TRUE


def missing_peer(reason: str) -> NoReturn:
    """Fail under CI, skip elsewhere; `reason` says what is missing and how to install it."""
    if under_ci():
        pytest.fail(f"{reason} (CI=true: a missing peer fails the run)", pytrace=False)
    pytest.skip(reason)


def require_binary(name: str, package: str) -> str:
    """Path of executable `name`; fails (CI) or skips naming the Debian `package`."""
    path = shutil.which(name)
    if path is None:
        missing_peer(f"the {name} binary is not installed: install the Debian package "
                     f"{package} (apt-get install {package})")
    return path


def require_module(name: str, package: str) -> str:
    """Check that Python module `name` can be imported, without importing it (slow
    for some peers); fails (CI) or skips naming the PyPI `package`. Returns `name`."""
    try:
        found = importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        missing_peer(f"the Python module {name} is not installed: install the PyPI "
                     f"package {package} (pip install '{package}')")
    return name


@contextlib.contextmanager
def serving(argv: list[str], ready_url: str, what: str,
            timeout: float = 30.0) -> Iterator[subprocess.Popen[bytes]]:
    """Run a real server (Prometheus, a Pushgateway) until its ``ready_url`` answers 200;
    terminate it afterwards (killed if it will not stop)."""
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(ready_url, timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None:
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                raise AssertionError(f"{what} exited with {proc.returncode}: {err[-2000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} was not ready within {timeout:g}s")
            time.sleep(0.1)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
