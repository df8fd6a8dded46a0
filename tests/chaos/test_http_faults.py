"""Each HTTP fault, seen by a real client (aiohttp or httpx) through the proxy."""

from __future__ import annotations

import email.utils
import errno
import time

import aiohttp
import httpx
import pytest

from tests.chaos.conftest import DOC, url
from tests.timing import assert_delay


async def _get(proxy, path="/doc"):
    async with httpx.AsyncClient(timeout=5) as client:
        return await client.get(url(proxy, path))


async def test_latency_delays_the_response(upstream, make_proxy):
    proxy = await make_proxy(upstream, [{"type": "latency", "delay": "400ms"}])
    started = time.monotonic()
    r = await _get(proxy)
    assert_delay(time.monotonic() - started, 0.4)
    assert r.json() == DOC
    assert proxy.injected_counts() == {"latency-0": 1}


async def test_reset_surfaces_as_connection_reset(upstream, make_proxy):
    proxy = await make_proxy(upstream, [{"type": "reset"}])
    async with aiohttp.ClientSession() as s:
        with pytest.raises(aiohttp.ClientOSError) as info:
            await s.get(url(proxy, "/doc"))
    assert info.value.errno == errno.ECONNRESET


async def test_hang_then_rst_surfaces_as_connection_reset(upstream, make_proxy):
    proxy = await make_proxy(upstream, [{"type": "hang", "duration": "400ms", "then": "rst"}])
    started = time.monotonic()
    async with aiohttp.ClientSession() as s:
        with pytest.raises(aiohttp.ClientOSError) as info:
            # a POST: aiohttp retries an idempotent request once after a reset
            # (RFC 9112 9.3.1.1), which would hang twice and double the time measured
            await s.post(url(proxy, "/echo"), data=b"x")
    assert_delay(time.monotonic() - started, 0.4)
    assert proxy.injected_counts() == {"hang-0": 1}
    assert info.value.errno == errno.ECONNRESET


async def test_hang_then_fin_closes_without_a_response(upstream, make_proxy):
    proxy = await make_proxy(upstream, [{"type": "hang", "duration": "100ms", "then": "fin"}])
    async with httpx.AsyncClient() as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get(url(proxy, "/doc"))


async def test_hang_then_none_answers_late(upstream, make_proxy):
    proxy = await make_proxy(upstream, [{"type": "hang", "duration": "400ms"}])
    started = time.monotonic()
    assert (await _get(proxy)).json() == DOC
    assert_delay(time.monotonic() - started, 0.4)


async def test_hang_forever_until_the_client_gives_up(upstream, make_proxy):
    proxy = await make_proxy(upstream, [{"type": "hang"}])
    async with httpx.AsyncClient(timeout=0.3) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.get(url(proxy, "/doc"))


@pytest.mark.parametrize("retry_after", [30, "Wed, 21 Oct 2026 07:28:00 GMT", "soon", "-1",
                                         "1.5", ""])
async def test_429_carries_retry_after_as_configured(upstream, make_proxy, retry_after):
    proxy = await make_proxy(upstream, [{"type": "status", "preset": "429",
                                         "retry_after": retry_after}])
    r = await _get(proxy)
    assert r.status_code == 429
    assert r.headers["retry-after"] == str(retry_after)
    assert r.json()["error"]["code"] == "rate_limit_exceeded"


async def test_retry_after_as_http_date_in_the_future(upstream, make_proxy):
    proxy = await make_proxy(upstream, [{"type": "status", "status": 503,
                                         "retry_after_date": "2m"}])
    r = await _get(proxy)
    assert r.status_code == 503
    when = email.utils.parsedate_to_datetime(r.headers["retry-after"]).timestamp()
    assert 100 < when - time.time() <= 121


async def test_status_presets(upstream, make_proxy):
    proxy = await make_proxy(upstream, [{"type": "status", "preset": "529"}])
    r = await _get(proxy)
    assert r.status_code == 529 and r.json()["error"]["type"] == "overloaded_error"
    proxy = await make_proxy(upstream, [{"type": "status", "preset": "502_html"}])
    r = await _get(proxy)
    assert r.status_code == 502 and "<h1>502 Bad Gateway</h1>" in r.text
    assert r.headers["content-type"].startswith("text/html")


async def test_rate_limit_window(upstream, make_proxy):
    proxy = await make_proxy(upstream, [{"type": "rate_limit", "limit": 2, "per": "10s"}])
    codes = [(await _get(proxy)).status_code for _ in range(4)]
    assert codes == [200, 200, 429, 429]
    r = await _get(proxy)
    assert 1 <= int(r.headers["retry-after"]) <= 10
    # the metrics say what the client saw: three refused, two let through (which
    # are not "skipped": was chaos_faults_skipped_total 2, as if the fault had failed)
    fault = {"fault": "rate_limit-0", "route": "r"}
    assert proxy.registry.get_sample_value("chaos_faults_injected_total", fault) == 3
    assert not proxy.registry.get_sample_value("chaos_faults_skipped_total", fault)
    assert proxy.registry.get_sample_value(
        "chaos_requests_total", {"route": "r", "outcome": "fault"}) == 3
    assert proxy.registry.get_sample_value(
        "chaos_requests_total", {"route": "r", "outcome": "forwarded"}) == 2


async def test_bandwidth_trickles_the_body(upstream, make_proxy):
    proxy = await make_proxy(upstream, [{"type": "bandwidth", "bytes_per_second": 20480,
                                         "chunk_size": 1024}])
    started = time.monotonic()
    r = await _get(proxy, "/big")
    # 10 KiB at 20 KiB/s: ten 1 KiB pieces, each followed by a 50 ms pause; the
    # client has the whole body once the tenth piece is sent, before its pause
    assert_delay(time.monotonic() - started, 0.45)
    assert r.content == bytes(range(256)) * 40


async def test_truncate_surfaces_as_payload_error(upstream, make_proxy):
    proxy = await make_proxy(upstream, [{"type": "truncate", "fraction": 0.25}])
    async with aiohttp.ClientSession() as s, s.get(url(proxy, "/big")) as r:
        assert r.headers["Content-Length"] == "10240"
        with pytest.raises(aiohttp.ClientPayloadError):
            await r.read()


async def test_garbage_body_is_random_and_seeded(upstream, make_proxy):
    bodies = []
    for _ in range(2):
        proxy = await make_proxy(upstream, [{"type": "garbage"}], seed=5)
        bodies.append((await _get(proxy)).content)
    assert bodies[0] == bodies[1]
    with pytest.raises(ValueError):
        import json

        json.loads(bodies[0])


async def test_empty_body_keeps_status(upstream, make_proxy):
    proxy = await make_proxy(upstream, [{"type": "empty_body"}])
    r = await _get(proxy)
    assert r.status_code == 200 and r.content == b"" and r.headers["content-length"] == "0"


@pytest.mark.parametrize("params", [
    {"distribution": "pareto", "alpha": 1e-6, "delay": 0.1},  # u ** -1e6: OverflowError
    {"distribution": "pareto", "alpha": 0.01, "delay": 1.0},
    {"distribution": "normal", "delay": 1e308, "jitter": 1e308},  # inf, and inf - inf
    {"distribution": "uniform", "delay": 1e308, "jitter": 1e308},
])
def test_heavy_tailed_latency_samples_stay_finite(params):
    # was: a 500 and a traceback on every request the fault hit
    import math
    import random

    from chaos.faults.latency import LONGEST, LatencyParams, sample_delay

    rng = random.Random(3)
    p = LatencyParams(**params)
    samples = [sample_delay(p, rng) for _ in range(500)]
    assert all(math.isfinite(s) and 0 <= s <= LONGEST for s in samples)
    capped = LatencyParams(**params, max=2.0)
    assert all(0 <= sample_delay(capped, rng) <= 2.0 for _ in range(500))


async def test_a_request_answered_by_one_fault_is_not_seen_by_the_next(upstream, make_proxy):
    # was: every fault decided up front: B's max_count was spent on requests A answered,
    # so the two 500s never came and B's `matched` counted requests it never saw
    proxy = await make_proxy(upstream, [
        {"type": "status", "name": "A", "status": 503, "max_count": 3},
        {"type": "status", "name": "B", "status": 500, "max_count": 2},
    ])
    async with httpx.AsyncClient() as client:
        statuses = [(await client.get(url(proxy, "/doc"))).status_code for _ in range(7)]
    assert statuses == [503, 503, 503, 500, 500, 200, 200]
    assert proxy.injected_counts() == {"A": 3, "B": 2}
    assert proxy.faults.get("B").matched == 4
