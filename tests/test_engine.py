"""The engine as a library: whatever placing a call raises becomes that call's record,
and the process has the file descriptors its callers need (or says it has not)."""

from __future__ import annotations

import dataclasses
import resource
import time
from collections.abc import Iterator
from typing import Literal

import pytest

from loadcaller.calls.call import CallRecord
from loadcaller.compile import RunSpec, compile_profile
from loadcaller.engine import Engine, open_file_warning, planned_users, raise_open_file_limit
from loadcaller.profile import parse_profile
from loadcaller.transports.base import CallTransport, Target


def spec_for(url: str, load: str = "{users: 2, duration: 1s}") -> RunSpec:
    text = f"""name: t
target: {{url: "{url}", setup_timeout: 2s}}
load: {load}
scenarios:
  - name: s
    steps: [{{pause: 100ms}}, hangup]
"""
    return compile_profile(parse_profile(text, "t.yaml"))


class BrokenTarget(Target):
    transport: Literal["broken"] = "broken"
    url: str = "broken://"

    def new_transport(self, *, call_id: str) -> CallTransport:
        raise RuntimeError("cannot build a transport")


async def place(spec: RunSpec) -> tuple[CallRecord, list[CallRecord], float]:
    engine = Engine(spec, None)
    engine.setup_backoff_s = 0.2
    seen: list[CallRecord] = []
    engine.on_call_end.append(seen.append)
    t0 = time.monotonic()
    try:
        rec = await engine.place_call("c1")  # must not raise
    finally:
        await engine.close()
    return rec, seen, time.monotonic() - t0


async def test_a_transport_that_cannot_be_built_is_a_local_error_record_not_an_exception():
    spec = dataclasses.replace(spec_for("ws://127.0.0.1:9/media"), target=BrokenTarget())
    rec, seen, took = await place(spec)
    assert rec.outcome == "error"
    assert rec.reason == ("local: cannot start the call's transport: "
                          "RuntimeError: cannot build a transport")
    assert seen == [rec] and rec.scenario == "s" and rec.t_end_ns >= rec.t_start_ns
    assert took >= 0.2  # backed off: a broken configuration cannot spin a core


async def test_a_url_the_resolver_refuses_is_a_local_error_record():
    # passes validation; the IDNA encoding of the host fails inside connect()
    rec, seen, took = await place(spec_for("ws://a..b/media"))
    assert rec.outcome == "error" and seen == [rec]
    assert rec.reason.startswith("local: UnicodeError during setup:"), rec.reason
    assert took >= 0.2


async def test_the_agent_refusing_is_failed_setup_and_the_engine_does_not_back_off_for_it():
    rec, _, took = await place(spec_for("ws://127.0.0.1:9/media"))
    assert rec.outcome == "failed_setup" and "[Errno 111]" in rec.reason
    assert took < 0.2  # the swarm's user backs off from failed setups itself


@pytest.fixture
def nofile() -> Iterator[tuple[int, int]]:
    limits = resource.getrlimit(resource.RLIMIT_NOFILE)
    yield limits
    resource.setrlimit(resource.RLIMIT_NOFILE, limits)


def test_the_soft_open_file_limit_is_raised_to_the_hard_one(nofile):
    _, hard = nofile
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
    assert raise_open_file_limit() == (hard, hard)
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == hard


def test_a_limit_short_for_the_callers_is_warned_about_with_what_to_change(nofile):
    _, hard = nofile  # a hard limit cannot be raised again here: callers beyond it instead
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
    warning = open_file_warning(hard)
    assert warning is not None
    assert f"open-file limit is {hard}" in warning and f"about {64 + 3 * hard}" in warning
    assert "ulimit -n" in warning and "--processes" in warning
    assert open_file_warning(10) is None


def test_planned_users_is_the_peak_of_the_plan_or_shape():
    assert planned_users(spec_for("ws://127.0.0.1:9/media", "{users: 7}")) == 7
    step = "{users: 5, shape: {type: step, start_users: 1, step_users: 5, max_users: 40}}"
    assert planned_users(spec_for("ws://127.0.0.1:9/media", step)) == 40
    spike = "{users: 5, shape: {type: spike, spike_users: 90}}"
    assert planned_users(spec_for("ws://127.0.0.1:9/media", spike)) == 90
