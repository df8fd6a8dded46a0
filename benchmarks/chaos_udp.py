"""UDP relay figures: packets per second through one chaos-proxy process, and the
delay it adds (p50/p99) with no fault active, against sending directly.

Three processes: a sender (this one), the relay (`python -m chaos.cli`, the
same as `chaos-proxy`, on uvloop when installed) and a sink that timestamps
arrivals. Packets are 172 bytes (an RTP header plus 160 bytes of G.711, one
20 ms frame) carrying their send time from the shared monotonic clock.

    python benchmarks/chaos_udp.py                     # rates 10k, 50k pps + a flood
    python benchmarks/chaos_udp.py --rates 20000 --seconds 5

This prints figures; it does not pass or fail (see benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from multiprocessing.connection import Connection
from pathlib import Path

from procstat import cpu_seconds

ROOT = Path(__file__).resolve().parents[1]
PACKET = 172
HEADER = struct.Struct("!qI")


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sink(port: int, pipe: Connection) -> None:
    """Receive until 1 s of silence; send back (count, first, last, delays in ns)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    sock.bind(("127.0.0.1", port))
    pipe.send("ready")
    while True:
        if pipe.recv() == "stop":
            return
        sock.settimeout(5.0)
        delays: list[int] = []
        first = last = 0
        try:
            while True:
                data = sock.recv(2048)
                now = time.monotonic_ns()
                if not delays:
                    first = now
                    sock.settimeout(1.0)
                last = now
                delays.append(now - HEADER.unpack_from(data)[0])
        except TimeoutError:
            pass
        pipe.send((len(delays), first, last, delays))


def send(target: tuple[str, int], rate: float | None, count: int) -> float:
    """Send `count` packets at `rate` per second (None: as fast as possible)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)
    pad = bytes(PACKET - HEADER.size)
    start = time.perf_counter()
    for i in range(count):
        if rate is not None and i % 16 == 0:
            # pace in bursts of 16 and sleep in between, so the sender leaves CPU
            # to the relay on a small machine
            ahead = start + i / rate - time.perf_counter()
            if ahead > 0:
                time.sleep(ahead)
        sock.sendto(HEADER.pack(time.monotonic_ns(), i) + pad, target)
    sock.close()
    return time.perf_counter() - start



def syscall_floor(n: int = 2000) -> float:
    """CPU microseconds of one recvfrom + send of a 172-byte datagram in a bare
    Python loop on this machine: the floor under any Python relay."""
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    sink_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink_sock.bind(("127.0.0.1", 0))
    out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    out.connect(sink_sock.getsockname())
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    packet = bytes(PACKET)
    total, done = 0.0, 0
    while done < n:
        batch = min(200, n - done)  # stays well inside the socket buffers
        for _ in range(batch):
            tx.sendto(packet, rx.getsockname())
        started = time.process_time()
        for _ in range(batch):
            out.send(rx.recvfrom(2048)[0])
        total += time.process_time() - started
        sink_sock.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            while True:
                sink_sock.recv(2048)
        done += batch
    for sock in (rx, sink_sock, out, tx):
        sock.close()
    return total / n * 1e6


def relayed(control: int) -> float:
    """Datagrams the relay has taken from clients so far (its chaos_packets_total)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{control}/metrics", timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith("chaos_packets_total{") and 'direction="upstream"' in line:
                return float(line.rsplit(" ", 1)[1])
    return 0.0


def pct(values: list[int], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", type=float, nargs="+", default=[10000, 50000])
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()

    sink_port, relay_port = free_udp_port(), free_udp_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        control_port = s.getsockname()[1]
    parent, child = multiprocessing.Pipe()
    proc = multiprocessing.Process(target=sink, args=(sink_port, child), daemon=True)
    proc.start()
    assert parent.recv() == "ready"
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "chaos.yaml"
        config.write_text(textwrap.dedent(f"""\
            routes:
              - name: rtp
                kind: udp
                listen: 127.0.0.1:{relay_port}
                upstream: 127.0.0.1:{sink_port}
            """))
        relay = subprocess.Popen([sys.executable, "-m", "chaos.cli", "--config", str(config),
                                  "--control", f"127.0.0.1:{control_port}"],
                                 cwd=ROOT, stdout=subprocess.PIPE, text=True)
        assert relay.stdout is not None
        relay.stdout.readline()  # "listening on ..."
        relay.stdout.readline()
        time.sleep(1.0)
        try:
            print(f"bare recvfrom+send floor on this machine: {syscall_floor():.1f} us/packet")
            print(f"{'rate pps':>9} {'target':<8} {'sent':>7} {'recv':>7} {'recv pps':>9} "
                  f"{'p50 ms':>7} {'p99 ms':>7} {'+p99 ms':>8} {'relay CPU us/pkt':>16}")
            for rate in [*args.rates, None]:
                count = int((rate or 100000) * args.seconds)
                base99 = 0.0
                for name, port in (("direct", sink_port), ("relay", relay_port)):
                    parent.send("go")
                    cpu0, taken0 = cpu_seconds(relay.pid), relayed(control_port)
                    elapsed = send(("127.0.0.1", port), rate, count)
                    received, first, last, delays = parent.recv()
                    taken = relayed(control_port) - taken0
                    cpu = (cpu_seconds(relay.pid) - cpu0) / max(1.0, taken) * 1e6
                    pps = received / max(1e-9, (last - first) / 1e9)
                    p50, p99 = pct(delays, 0.5), pct(delays, 0.99)
                    if name == "direct":
                        base99 = p99
                    label = "flood" if rate is None else f"{rate:.0f}"
                    added = f"{'':8}" if name == "direct" else f"{p99 - base99:8.3f}"
                    per = f"{cpu:16.1f} {taken:10.0f}" if name == "relay" else f"{'':27}"
                    print(f"{label:>9} {name:<8} {count:7d} {received:7d} {pps:9.0f} "
                          f"{p50:7.3f} {p99:7.3f} {added} {per}  (sent in {elapsed:.2f}s)")
        finally:
            relay.send_signal(signal.SIGTERM)
            relay.wait(10)
            parent.send("stop")
            proc.join(5)


if __name__ == "__main__":
    main()
