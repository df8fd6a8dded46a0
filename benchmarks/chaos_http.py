"""Added latency of the chaos HTTP proxy with no fault active.

Starts, each in its own process: a small upstream (aiohttp on uvloop), the
chaos proxy (`python -m chaos.cli`, the same as `chaos-proxy`) and, when the
`nginx` binary is installed, nginx as a reverse proxy to the same upstream.
Then drives an open-loop load (requests start on a fixed schedule) at each
rate against the direct upstream, the chaos proxy and nginx, interleaved in
the same run, and prints p50/p99 latency and the added latency versus direct.

    python benchmarks/chaos_http.py                 # 500 and 2000 req/s, 5 s each
    python benchmarks/chaos_http.py --rates 500 --seconds 10

This prints figures; it does not pass or fail (see benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import aiohttp
from procstat import cpu_seconds

ROOT = Path(__file__).resolve().parents[1]
BODY = b'{"id": 7, "status": "active", "customer": {"name": "Ada"}}' * 4


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_upstream(port: int) -> None:
    """The upstream process: one JSON route."""
    from aiohttp import web

    async def handler(request: web.BaseRequest) -> web.Response:
        return web.Response(body=BODY, content_type="application/json")

    async def main() -> None:
        server = web.Server(handler, access_log=None)
        await asyncio.get_running_loop().create_server(server, "127.0.0.1", port)
        await asyncio.Event().wait()

    try:
        import uvloop

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {port}")


def start_chaos(upstream: int, port: int, tmp: Path) -> subprocess.Popen[bytes]:
    config = tmp / "chaos.yaml"
    config.write_text(textwrap.dedent(f"""\
        routes:
          - name: bench
            kind: http
            listen: 127.0.0.1:{port}
            upstream: http://127.0.0.1:{upstream}
        """))
    proc = subprocess.Popen([sys.executable, "-m", "chaos.cli", "--config", str(config)],
                            cwd=ROOT, stdout=subprocess.DEVNULL)
    wait_port(port)
    return proc


def start_nginx(upstream: int, port: int, tmp: Path) -> subprocess.Popen[bytes] | None:
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx")
                                      else None)
    if nginx is None:
        return None
    conf = tmp / "nginx.conf"
    conf.write_text(textwrap.dedent(f"""\
        worker_processes 1;
        daemon off;
        pid {tmp}/nginx.pid;
        error_log {tmp}/error.log warn;
        events {{ worker_connections 1024; }}
        http {{
          access_log off;
          client_body_temp_path {tmp}/body; proxy_temp_path {tmp}/proxy;
          fastcgi_temp_path {tmp}/fcgi; uwsgi_temp_path {tmp}/uwsgi;
          scgi_temp_path {tmp}/scgi;
          upstream app {{ server 127.0.0.1:{upstream}; keepalive 64; }}
          server {{
            listen 127.0.0.1:{port};
            location / {{
              proxy_pass http://app;
              proxy_http_version 1.1;
              proxy_set_header Connection "";
            }}
          }}
        }}
        """))
    proc = subprocess.Popen([nginx, "-c", str(conf), "-p", str(tmp)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    return proc


async def load(url: str, rate: float, seconds: float) -> list[float]:
    """Open-loop load: request i starts at t0 + i/rate; returns latencies in seconds."""
    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=256)
    async with aiohttp.ClientSession(connector=connector) as session:
        for _ in range(50):  # warm the connection pool
            async with session.get(url) as r:
                await r.read()

        async def one() -> None:
            nonlocal errors
            started = time.perf_counter()
            try:
                async with session.get(url) as r:
                    await r.read()
                latencies.append(time.perf_counter() - started)
            except aiohttp.ClientError:
                errors += 1

        tasks = []
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        n = int(rate * seconds)
        for i in range(n):
            delay = t0 + i / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one()))
        await asyncio.gather(*tasks)
    if errors:
        print(f"  ({errors} errors)")
    return latencies



def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", type=float, nargs="+", default=[500, 2000])
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()

    upstream_port, chaos_port, nginx_port = free_port(), free_port(), free_port()
    upstream = multiprocessing.Process(target=run_upstream, args=(upstream_port,), daemon=True)
    upstream.start()
    wait_port(upstream_port)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        chaos = start_chaos(upstream_port, chaos_port, tmp)
        nginx = start_nginx(upstream_port, nginx_port, tmp)
        targets = {"direct": upstream_port, "chaos-proxy": chaos_port}
        pids = {"chaos-proxy": chaos.pid}
        if nginx is not None:
            targets["nginx"] = nginx_port
            pids["nginx"] = nginx.pid  # the master; its one worker does the work
        else:
            print("nginx not installed: skipping the nginx comparison")
        time.sleep(2.0)  # let the processes finish starting before measuring
        try:
            try:
                import uvloop

                runner = uvloop.run
            except ImportError:
                runner = asyncio.run
            print(f"{'rate':>6} {'target':<12} {'p50 ms':>8} {'p99 ms':>8} "
                  f"{'+p50 ms':>8} {'+p99 ms':>8} {'proxy CPU us/req':>16}")
            for rate in args.rates:
                results = {}
                cpu: dict[str, float] = {}
                for name, port in targets.items():
                    before = cpu_seconds(pids[name]) if name == "chaos-proxy" else 0.0
                    results[name] = runner(load(f"http://127.0.0.1:{port}/doc", rate,
                                                args.seconds))
                    if name == "chaos-proxy":
                        used = cpu_seconds(pids[name]) - before
                        cpu[name] = used / max(1, len(results[name])) * 1e6
                base50 = pct(results["direct"], 0.5)
                base99 = pct(results["direct"], 0.99)
                for name, lat in results.items():
                    p50, p99 = pct(lat, 0.5), pct(lat, 0.99)
                    added = f"{'':17}" if name == "direct" else \
                        f"{(p50 - base50) * 1e3:8.3f} {(p99 - base99) * 1e3:8.3f}"
                    per = f"{cpu[name]:16.0f}" if name in cpu else ""
                    print(f"{rate:6.0f} {name:<12} {p50 * 1e3:8.3f} {p99 * 1e3:8.3f} {added} "
                          f"{per}")
        finally:
            for proc in (chaos, nginx):
                if proc is not None:
                    proc.send_signal(signal.SIGTERM)
                    proc.wait(10)
            upstream.terminate()


if __name__ == "__main__":
    main()
