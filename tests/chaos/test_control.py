"""The control API, driven with httpx against a running proxy."""

from __future__ import annotations

import json

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
        r = await c.post(api(proxy, "/faults"), content=b"{not json",
                         headers={"Content-Type": "application/json"})
        assert r.status_code == 400
        deep = '{"type": "latency", "x": ' + "[" * 200_000 + "]" * 200_000 + "}"
        r = await c.post(api(proxy, "/faults"), content=deep,
                         headers={"Content-Type": "application/json"})
        assert r.status_code == 400 and "too deep" in r.json()["error"]
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


async def test_one_proxy_three_kinds_and_a_live_udp_fault(upstream):
    import asyncio
    import socket

    from websockets.asyncio.client import connect
    from websockets.asyncio.server import serve

    async def echo(ws):
        async for message in ws:
            await ws.send(message)

    class Echo(asyncio.DatagramProtocol):
        def connection_made(self, transport):
            self.transport = transport

        def datagram_received(self, data, addr):
            self.transport.sendto(data, addr)

    loop = asyncio.get_running_loop()
    udp_echo, _ = await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 0))
    udp_port = udp_echo.get_extra_info("sockname")[1]
    async with serve(echo, "127.0.0.1", 0) as ws_server:
        ws_port = next(iter(ws_server.sockets)).getsockname()[1]
        config = parse_config({
            "seed": 1,
            "control": {"listen": "127.0.0.1:0"},
            "routes": [
                {"name": "api", "kind": "http", "listen": "127.0.0.1:0", "upstream": upstream},
                {"name": "tts", "kind": "ws", "listen": "127.0.0.1:0",
                 "upstream": f"ws://127.0.0.1:{ws_port}"},
                {"name": "rtp", "kind": "udp", "listen": "127.0.0.1:0",
                 "upstream": f"127.0.0.1:{udp_port}"},
            ],
        })
        async with ChaosProxy(config) as proxy:
            assert set(proxy.listeners) == {"api", "tts", "rtp", "control"}
            async with httpx.AsyncClient() as c:
                assert (await c.get(url(proxy, "/doc", route="api"))).json() == DOC
                async with connect(url(proxy, "/", route="tts", scheme="ws"), proxy=None) as ws:
                    await ws.send("hi")
                    assert await asyncio.wait_for(ws.recv(), 1) == "hi"
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sock.setblocking(False)
                try:
                    rtp = proxy.listeners["rtp"]
                    await loop.sock_sendto(sock, b"one", rtp)
                    data, _ = await asyncio.wait_for(loop.sock_recvfrom(sock, 100), 1)
                    assert data == b"one"
                    r = await c.post(api(proxy, "/faults"),
                                     json={"type": "udp_loss", "name": "cut", "loss": 1.0})
                    assert r.status_code == 201
                    assert proxy.active_faults() == ["cut"]
                    await loop.sock_sendto(sock, b"two", rtp)
                    with pytest.raises(TimeoutError):
                        await asyncio.wait_for(loop.sock_recvfrom(sock, 100), 0.3)
                    assert proxy.injected_counts() == {"cut": 1}
                finally:
                    sock.close()
    udp_echo.close()


HANG = {"type": "hang", "name": "stuck", "route": "r"}


async def test_cross_origin_text_plain_post_is_refused(upstream, make_proxy):
    # what a web page can send without a preflight: text/plain, its own Host when it
    # rebinds a name to 127.0.0.1, an Origin header; none of it may switch on a fault
    proxy = await make_proxy(upstream, control={"listen": "127.0.0.1:0"})
    port = proxy.listeners["control"][1]
    body = json.dumps(HANG).encode()
    attempts = [
        {"Content-Type": "text/plain", "Host": f"rebind.attacker.example:{port}"},
        {"Content-Type": "text/plain"},
        {"Content-Type": "text/plain;charset=UTF-8", "Origin": "http://attacker.example"},
        {"Content-Type": "application/x-www-form-urlencoded"},
        {"Content-Type": "multipart/form-data; boundary=x"},
        {},  # no Content-Type at all
        {"Content-Type": "application/json", "Host": f"rebind.attacker.example:{port}"},
        {"Content-Type": "application/json", "Host": "attacker.example"},
        {"Content-Type": "application/json", "Host": f"127.0.0.1.attacker.example:{port}"},
        {"Content-Type": "application/json", "Origin": "http://attacker.example"},
        {"Content-Type": "application/json", "Origin": "null"},
    ]
    async with httpx.AsyncClient() as c:
        for headers in attempts:
            r = await c.post(api(proxy, "/faults"), content=body, headers=headers)
            assert r.status_code == 403, (headers, r.status_code, r.text)
            assert "error" in r.json()
        assert proxy.active_faults() == []
        # reads and body-less writes from a foreign page are refused too
        assert (await c.get(api(proxy, "/faults"),
                            headers={"Host": "attacker.example"})).status_code == 403
        r = await c.post(api(proxy, "/reset"), headers={"Origin": "http://attacker.example"})
        assert r.status_code == 403
        r = await c.request("DELETE", api(proxy, "/faults/x"), content=b"{}",
                            headers={"Content-Type": "text/plain"})
        assert r.status_code == 403
        r = await c.patch(api(proxy, "/faults/x"), content=b"{}",
                          headers={"Content-Type": "text/plain"})
        assert r.status_code == 403
    assert proxy.active_faults() == []


async def test_legitimate_local_clients_still_work(upstream, make_proxy):
    proxy = await make_proxy(upstream, control={"listen": "127.0.0.1:0"})
    port = proxy.listeners["control"][1]
    hosts = ["127.0.0.1", f"127.0.0.1:{port}", "localhost", f"localhost:{port}",
             f"LOCALHOST:{port}", "[::1]", f"[::1]:{port}", "localhost:8080"]
    async with httpx.AsyncClient() as c:
        for i, host in enumerate(hosts):
            r = await c.post(api(proxy, "/faults"), content=json.dumps({**HANG, "name": f"h{i}"}),
                             headers={"Host": host, "Content-Type": "application/json"})
            assert r.status_code == 201, (host, r.text)
            r = await c.get(api(proxy, f"/faults/h{i}"), headers={"Host": host})
            assert r.status_code == 200, host
        r = await c.patch(api(proxy, "/faults/h0"), content=b'{"probability": 0.5}',
                          headers={"Content-Type": "application/json; charset=utf-8"})
        assert r.status_code == 200
        r = await c.post(api(proxy, "/faults"), json={**HANG, "name": "same-origin"},
                         headers={"Origin": f"http://localhost:{port}"})
        assert r.status_code == 201
        assert (await c.delete(api(proxy, "/faults/h0"))).status_code == 204
        # curl -X POST .../reset: no body, so no Content-Type needed
        r = await c.post(api(proxy, "/reset"))
        assert r.status_code == 200 and r.json() == {"removed": len(hosts)}


def test_host_rule():
    from chaos.control import host_allowed

    assert host_allowed("127.0.0.1:9100", "127.0.0.1")
    assert host_allowed("[::1]", "::1") and host_allowed("localhost", "::1")
    assert host_allowed("127.0.0.2:9100", "127.0.0.2")  # the listen address itself
    for host in ("", "evil.example", "evil.example:9100", "127.0.0.1.evil.example",
                 "localhost.evil.example", "127.0.0.1:x", "[::1", "127.0.0.1:9100:1",
                 "user@127.0.0.1", "127.0.0.2"):
        assert not host_allowed(host, "127.0.0.1"), host


async def test_a_patch_whose_body_is_slow_does_not_undo_a_delete(upstream, make_proxy):
    # was: PATCH read the fault before its body arrived and wrote it back after:
    # a DELETE (or another PATCH) that finished in between was undone
    import asyncio

    proxy = await make_proxy(upstream, [{"type": "status", "name": "boom", "status": 503}],
                             control={"listen": "127.0.0.1:0"})
    host, port = proxy.listeners["control"]
    body = json.dumps({"status": 500}).encode()
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"PATCH /faults/boom HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 b"Content-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n" % len(body) + body[:5])
    await writer.drain()
    async with httpx.AsyncClient() as c:
        for _ in range(100):  # until the PATCH handler waits for the rest of its body
            await asyncio.sleep(0.01)
        assert (await c.delete(api(proxy, "/faults/boom"))).status_code == 204
        writer.write(body[5:])
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 10)
        writer.close()
        assert b" 404 " in status_line
        assert (await c.get(api(proxy, "/faults"))).json()["faults"] == []
        assert (await c.get(url(proxy, "/doc"))).json() == DOC


async def test_patch_can_move_a_fault_from_at_for_to_a_window(upstream, make_proxy):
    proxy = await make_proxy(upstream, [{"type": "status", "name": "boom", "status": 503,
                                         "at": "1h", "for": "1m"}],
                             control={"listen": "127.0.0.1:0"})
    async with httpx.AsyncClient() as c:
        r = await c.patch(api(proxy, "/faults/boom"), json={"window": {"start": 0}})
        assert r.status_code == 200, r.text
        assert r.json()["active"] is True and "at" not in r.json()
        r = await c.patch(api(proxy, "/faults/boom"), json={"at": "2h"})
        assert r.status_code == 200 and r.json()["active"] is False
        assert "window" not in r.json()


async def test_a_token_that_is_not_utf8_gets_401(upstream, make_proxy):
    # was: 500 and a UnicodeEncodeError traceback (the header's bytes kept as surrogates)
    import asyncio

    proxy = await make_proxy(upstream, control={"listen": "127.0.0.1:0", "token": "s3cr\u00e9t"})
    host, port = proxy.listeners["control"]
    for auth in (b"Bearer \xff\xfe", b"Bearer s3cr\xe9t"):  # latin-1, not UTF-8
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"GET /faults HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: " + auth +
                     b"\r\nConnection: close\r\n\r\n")
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 401 "), answer[:100]
    async with httpx.AsyncClient() as c:  # the UTF-8 token itself still works
        r = await c.get(api(proxy, "/faults"),
                        headers={"Authorization": "Bearer s3cr\u00e9t".encode()})
        assert r.status_code == 200
