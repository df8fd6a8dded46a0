"""Shared settings (match, counts, probability, window, ramp, seed) and the timeline."""

from __future__ import annotations

import random

import httpx

from chaos.config import parse_fault
from chaos.timeline import Ramp, Schedule, Timeline
from chaos.wrapper import MatchInfo, WrappedFault
from tests.chaos.conftest import url


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def wrapped(**fields) -> WrappedFault:
    spec = parse_fault({"type": "reset", **fields})
    return WrappedFault(spec, rng=random.Random(fields.get("seed", 0)), origin=0.0)


def decisions(wf: WrappedFault, n: int, info: MatchInfo | None = None, now: float = 0.0):
    return [wf.decide(info or MatchInfo(), now) is not None for _ in range(n)]


def test_counts_after_n_every_nth_max_count():
    assert decisions(wrapped(after_n=2), 5) == [False, False, True, True, True]
    assert decisions(wrapped(every_nth=3), 6) == [False, False, True, False, False, True]
    assert decisions(wrapped(max_count=2), 4) == [True, True, False, False]
    assert decisions(wrapped(after_n=1, every_nth=2, max_count=2), 8) == [
        False, False, True, False, True, False, False, False]


def test_match_on_host_path_method_headers_message():
    wf = wrapped(match={"host": "api.*", "path": "/v1/*", "method": ["post", "PUT"],
                        "headers": {"x-tenant": "acme*"}})
    ok = MatchInfo(host="api.example:443", path="/v1/orders", method="POST",
                   headers={"X-Tenant": "acme-eu"})
    assert wf.decide(ok, 0) is not None
    for bad in (MatchInfo(host="crm", path="/v1/x", method="POST", headers={"X-Tenant": "acme"}),
                MatchInfo(host="api.x", path="/v2/x", method="POST", headers={"X-Tenant": "acme"}),
                MatchInfo(host="api.x", path="/v1/x", method="GET", headers={"X-Tenant": "acme"}),
                MatchInfo(host="api.x", path="/v1/x", method="PUT", headers={})):
        assert wf.decide(bad, 0) is None
    ws = wrapped(type="ws_drop", match={"message": "binary"}, direction="downstream")
    assert ws.decide(MatchInfo(message="binary", direction="downstream"), 0) is not None
    assert ws.decide(MatchInfo(message="text", direction="downstream"), 0) is None
    assert ws.decide(MatchInfo(message="binary", direction="upstream"), 0) is None


def test_same_seed_same_decisions():
    a = decisions(wrapped(probability=0.3, seed=42), 200)
    b = decisions(wrapped(probability=0.3, seed=42), 200)
    c = decisions(wrapped(probability=0.3, seed=43), 200)
    assert a == b and a != c
    assert 30 < sum(a) < 90


def test_window_and_ramp_on_a_fake_clock():
    wf = wrapped(at="10s", **{"for": "20s"}, ramp={"from": 0.0, "to": 1.0})
    assert not wf.active(5) and wf.active(10) and wf.active(29.9) and not wf.active(30)
    assert decisions(wf, 50, now=10.0) == [False] * 50  # probability 0 at the start
    assert decisions(wf, 50, now=29.99) == [True] * 50
    mid = sum(decisions(wf, 400, now=20.0))
    assert 140 < mid < 260
    win = wrapped(window={"start": "1m", "end": "2m"})
    assert not win.active(59) and win.active(60) and not win.active(120)


def test_magnitude_ramp_changes_the_parameter():
    spec = parse_fault({"type": "latency", "delay": 0.0, "at": 0, "for": 10,
                        "ramp": {"field": "delay", "from": 0.0, "to": 2.0}})
    wf = WrappedFault(spec, rng=random.Random(0), origin=0.0)
    fault = wf.decide(MatchInfo(), 5.0)
    assert fault is not None and fault.params.delay == 1.0


def test_timeline_reports_active_faults_and_next_change():
    tl = Timeline()
    tl.add("a", Schedule(start=10, length=5), origin=100)
    tl.add("b", Schedule(start=0, ramp=Ramp("probability", 0, 1, 10)), origin=100)
    assert tl.active(105) == ["b"]
    assert tl.active(112) == ["a", "b"]
    assert tl.active(115) == ["b"]
    assert tl.next_change(100) == 110 and tl.next_change(110) == 115
    assert tl.next_change(115) is None


async def test_timeline_drives_faults_on_kept_alive_connections(upstream, make_proxy):
    clock = FakeClock()
    proxy = await make_proxy(upstream, [{"type": "status", "status": 503, "name": "outage",
                                         "at": "10s", "for": "5s"}], clock=clock)
    async with httpx.AsyncClient() as client:  # one pooled connection throughout
        assert (await client.get(url(proxy, "/doc"))).status_code == 200
        assert proxy.active_faults() == []
        clock.now += 12
        assert proxy.active_faults() == ["outage"]
        assert (await client.get(url(proxy, "/doc"))).status_code == 503
        assert (await client.get(url(proxy, "/doc"))).status_code == 503
        clock.now += 4
        assert (await client.get(url(proxy, "/doc"))).status_code == 200
    assert proxy.injected_counts() == {"outage": 2}
    assert proxy.registry.get_sample_value("chaos_fault_active", {"fault": "outage"}) == 0
    clock.now -= 4
    assert proxy.registry.get_sample_value("chaos_fault_active", {"fault": "outage"}) == 1
    assert proxy.registry.get_sample_value("chaos_faults_injected_total",
                                           {"fault": "outage", "route": "r"}) == 2


async def test_same_seed_same_sequence_through_the_proxy(upstream, make_proxy):
    runs = []
    for seed in (9, 9, 10):
        proxy = await make_proxy(upstream, [{"type": "status", "status": 500,
                                             "probability": 0.5}], seed=seed)
        async with httpx.AsyncClient() as client:
            runs.append([(await client.get(url(proxy, "/doc"))).status_code
                         for _ in range(30)])
    assert runs[0] == runs[1] != runs[2]
    assert 200 in runs[0] and 500 in runs[0]
