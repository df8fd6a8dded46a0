"""LLM streaming (SSE) faults seen by a real streaming client."""

from __future__ import annotations

import json
import time

import aiohttp
import httpx
import pytest

from chaos.sse import SseSplitter, event_data, with_data
from tests.chaos.conftest import sse_body, url


async def _events(proxy) -> list[str]:
    async with httpx.AsyncClient() as client:
        r = await client.get(url(proxy, "/sse"))
    return [line[6:] for line in r.text.splitlines() if line.startswith("data: ")]


ORIGINAL = [json.loads(b[6:]) if b"DONE" not in b else "[DONE]" for b in sse_body()]


def _decode(datas: list[str]) -> list:
    return [d if d == "[DONE]" else json.loads(d) for d in datas]


async def test_stall_holds_the_stream_then_resumes(upstream, make_proxy):
    proxy = await make_proxy(upstream, [{"type": "sse_stall", "after_events": 1,
                                         "duration": "600ms"}])
    arrivals = []
    async with httpx.AsyncClient() as client, client.stream("GET", url(proxy, "/sse")) as r:
        async for line in r.aiter_lines():
            if line.startswith("data: "):
                arrivals.append((time.monotonic(), line[6:]))
    assert _decode([d for _, d in arrivals]) == ORIGINAL
    gap = arrivals[1][0] - arrivals[0][0]
    assert 0.55 <= gap < 1.5
    assert arrivals[-1][0] - arrivals[1][0] < 0.5


async def test_cut_breaks_the_stream(upstream, make_proxy):
    proxy = await make_proxy(upstream, [{"type": "sse_cut", "after_events": 2}])
    got = b""
    async with aiohttp.ClientSession() as s, s.get(url(proxy, "/sse")) as r:
        with pytest.raises(aiohttp.ClientPayloadError):
            async for chunk in r.content.iter_any():
                got += chunk
    assert got == b"".join(sse_body()[:2])


async def test_drop_loses_events_but_keeps_done(upstream, make_proxy):
    proxy = await make_proxy(upstream, [{"type": "sse_drop", "event_rate": 1.0}])
    assert await _events(proxy) == ["[DONE]"]


async def test_duplicate_repeats_events(upstream, make_proxy):
    proxy = await make_proxy(upstream, [{"type": "sse_duplicate", "event_rate": 1.0}])
    got = _decode(await _events(proxy))
    assert got == [ORIGINAL[0], ORIGINAL[0], ORIGINAL[1], ORIGINAL[1], ORIGINAL[2],
                   ORIGINAL[2], "[DONE]"]


async def test_reorder_swaps_neighbours(upstream, make_proxy):
    proxy = await make_proxy(upstream, [{"type": "sse_reorder", "event_rate": 1.0}])
    got = _decode(await _events(proxy))
    assert got == [ORIGINAL[1], ORIGINAL[0], ORIGINAL[2], "[DONE]"]


async def test_inject_empty_choices(upstream, make_proxy):
    proxy = await make_proxy(upstream, [{"type": "sse_inject", "after_events": 1}])
    got = _decode(await _events(proxy))
    assert got == [ORIGINAL[0], {"choices": []}, *ORIGINAL[1:]]


async def test_omit_done(upstream, make_proxy):
    proxy = await make_proxy(upstream, [{"type": "sse_omit_done"}])
    assert _decode(await _events(proxy)) == ORIGINAL[:-1]


async def test_sse_fault_on_json_response_is_skipped(upstream, make_proxy):
    proxy = await make_proxy(upstream, [{"type": "sse_omit_done", "name": "x"}])
    async with httpx.AsyncClient() as client:
        r = await client.get(url(proxy, "/doc"))
    assert r.status_code == 200
    assert proxy.registry.get_sample_value("chaos_faults_skipped_total",
                                           {"fault": "x", "route": "r"}) == 1


def test_splitter_handles_any_chunking_and_line_endings():
    stream = b"data: a\r\n\r\nevent: x\ndata: b\ndata: c\n\ndata: d\r\r"
    for size in range(1, len(stream) + 1):
        splitter = SseSplitter()
        events = []
        for i in range(0, len(stream), size):
            events += splitter.feed(stream[i:i + size])
        assert [event_data(e) for e in events] == ["a", "b\nc", "d"]
        assert splitter.rest() == b""
    assert with_data(b"event: x\ndata: b\n\n", "z") == b"event: x\ndata: z\n\n"
