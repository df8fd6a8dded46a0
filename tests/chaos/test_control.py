"""The control API, driven with httpx against a running proxy."""

from __future__ import annotations

import httpx
import pytest

from chaos.config import parse_config
from chaos.errors import LocalError
from chaos.proxy import ChaosProxy
from tests.chaos.conftest import DOC, url


def api(proxy, path: str) -> str:
    return url(proxy, path, route="control")


async def test_list_add_patch_delete_reset(upstream, make_proxy):
    proxy = await make_proxy(upstream, [{"type": "latency", "name": "slow", "delay": 0}],
                             control={"listen": "127.0.0.1:0"})
    async with httpx.AsyncClient() as c:
        listing = (await c.get(api(proxy, "/faults"))).json()
        assert [f["name"] for f in listing["faults"]] == ["slow"]
        assert listing["active"] == ["slow"]

        r = await c.post(api(proxy, "/faults"), json={"type": "status", "name": "boom",
                                                      "status": 503, "route": "r"})
        assert r.status_code == 201 and r.json()["active"] is True
        assert (await c.get(url(proxy, "/doc"))).status_code == 503
        assert (await c.post(api(proxy, "/faults"), json={"type": "status", "name": "boom",
                                                          "status": 500})).status_code == 409

        r = await c.patch(api(proxy, "/faults/boom"), json={"status": 418})
        assert r.status_code == 200 and r.json()["status"] == 418
        assert (await c.get(url(proxy, "/doc"))).status_code == 418

        r = await c.patch(api(proxy, "/faults/boom"), json={"probability": 3})
        assert r.status_code == 400 and r.json()["issues"][0]["field"] == "probability"

        assert (await c.delete(api(proxy, "/faults/boom"))).status_code == 204
        assert (await c.delete(api(proxy, "/faults/boom"))).status_code == 404
        assert (await c.get(url(proxy, "/doc"))).json() == DOC

        assert (await c.post(api(proxy, "/reset"))).json() == {"removed": 1}
        assert (await c.get(api(proxy, "/faults"))).json()["faults"] == []


async def test_bad_requests_get_400_with_the_reason(upstream, make_proxy):
    proxy = await make_proxy(upstream, control={"listen": "127.0.0.1:0"})
    async with httpx.AsyncClient() as c:
        r = await c.post(api(proxy, "/faults"), json={"type": "nope"})
        assert r.status_code == 400 and "known types" in r.json()["error"]
        r = await c.post(api(proxy, "/faults"), content=b"{not json")
        assert r.status_code == 400
        r = await c.post(api(proxy, "/faults"), json={"type": "ws_drop"})
        assert r.status_code == 400 and "ws route" in r.json()["error"]
        assert (await c.get(api(proxy, "/faults/missing"))).status_code == 404


async def test_metrics_endpoint(upstream, make_proxy):
    proxy = await make_proxy(upstream, [{"type": "status", "name": "e", "status": 500}],
                             control={"listen": "127.0.0.1:0"})
    async with httpx.AsyncClient() as c:
        await c.get(url(proxy, "/doc"))
        text = (await c.get(api(proxy, "/metrics"))).text
    assert 'chaos_faults_injected_total{fault="e",route="r"} 1.0' in text
    assert 'chaos_fault_active{fault="e"} 1.0' in text
    assert "chaos_requests_total" in text and "chaos_upstream_latency_seconds" in text


async def test_token_required_when_set(upstream, make_proxy):
    proxy = await make_proxy(upstream, control={"listen": "127.0.0.1:0", "token": "s3cret"})
    async with httpx.AsyncClient() as c:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
            r = await c.get(api(proxy, "/faults"), headers=headers)
            assert r.status_code == 401
            assert r.headers["www-authenticate"].startswith("Bearer")
        r = await c.post(api(proxy, "/reset"))
        assert r.status_code == 401
        r = await c.get(api(proxy, "/faults"), headers={"Authorization": "Bearer s3cret"})
        assert r.status_code == 200


async def test_non_loopback_bind_needs_a_token(upstream):
    config = parse_config({"routes": [{"name": "r", "kind": "http", "listen": "127.0.0.1:0",
                                       "upstream": upstream}],
                           "control": {"listen": "0.0.0.0:0"}})
    proxy = ChaosProxy(config)
    with pytest.raises(LocalError, match="needs a token"):
        await proxy.start()
    await proxy.stop()
