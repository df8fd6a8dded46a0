"""Real peers the tests talk to: skip where one is missing, but fail under CI.

espeak-ng, sox, Prometheus and Pipecat are peers someone else wrote; a test
that needs one skips on a developer's machine without it. Under CI (``CI`` set
to true, as GitHub Actions, GitLab and .ci/run set it) a missing peer means a
broken CI image, and a skip there would let the run go green having tested
nothing, so the test fails instead, naming what to install.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
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
