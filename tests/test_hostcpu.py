"""The machine's CPU beside the numbers: an agent on the callers' machine competes."""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import time
from pathlib import Path

import pytest

from loadcaller import hostcpu
from loadcaller.console import print_summary
from loadcaller.hostcpu import HostCpu, parse_proc_stat
from loadcaller.report.sections import _host_cpu
from loadcaller.swarm.aggregate import Aggregate
from loadcaller.swarm.wire import WireError, snapshot_from_wire

# user nice system idle iowait irq softirq steal guest guest_nice
STAT = """cpu  {u} 0 {s} {i} {w} 0 0 {st} 7 7
cpu0 1 0 1 1 0 0 0 0 0 0
cpu1 1 0 1 1 0 0 0 0 0 0
intr 12345 0 0
ctxt 999
"""


def stat(u: int, s: int, i: int, w: int = 0, st: int = 0) -> str:
    return STAT.format(u=u, s=s, i=i, w=w, st=st)


def test_proc_stat_is_read_as_busy_total_steal_and_cpus() -> None:
    parsed = parse_proc_stat(stat(100, 50, 800, w=40, st=10))
    assert parsed is not None
    times, cpus = parsed
    assert cpus == 2
    # guest time is inside user already: not added again; idle and iowait are not busy
    assert (times.busy, times.total, times.steal) == (160, 1000, 10)
    assert parse_proc_stat("intr 1 2 3\n") is None
    assert parse_proc_stat("cpu  1 2 x 4\n") is None
    assert parse_proc_stat("cpu  1 2\n") is None
    short = parse_proc_stat("cpu  10 0 10 80\ncpu0 10 0 10 80\n")  # an old kernel: 4 fields
    assert short is not None and short[0].busy == 20 and short[1] == 1


def test_this_machines_proc_stat_parses() -> None:
    with open("/proc/stat") as f:
        parsed = parse_proc_stat(f.read())
    assert parsed is not None and parsed[1] == os.cpu_count()


class Machine:
    """/proc/stat counters and a clock moved by hand."""

    def __init__(self) -> None:
        self.t = 0.0
        self.busy = self.idle = self.steal = 0

    def run(self, seconds: float, busy: float, steal: float = 0.0) -> None:
        ticks = int(seconds * 200)  # two CPUs at 100 ticks a second
        self.t += seconds
        self.busy += round(ticks * (busy - steal))
        self.steal += round(ticks * steal)
        self.idle += ticks - round(ticks * busy)

    def read(self) -> str:
        return stat(self.busy, 0, self.idle, st=self.steal)


def test_the_mean_and_the_busiest_window() -> None:
    m = Machine()
    host = HostCpu(read=m.read, clock=lambda: m.t)
    assert host.ratios() is None  # the counters have not moved yet
    for busy, steal in ((0.2, 0.0), (1.0, 0.3), (0.4, 0.0)):  # three 5 s windows
        m.run(5.0, busy, steal)
        host.sample()
    m.run(2.0, 0.9)  # a window not closed yet counts in the mean only
    host.sample()
    r = host.ratios()
    assert r == {"busy_mean": pytest.approx((1 + 5 + 2 + 1.8) / 17, abs=1e-3),
                 "busy_peak": 1.0, "steal_peak": 0.3, "cpus": 2}


def test_before_a_window_closes_the_peak_is_the_mean_and_unreadable_is_none() -> None:
    m = Machine()
    host = HostCpu(read=m.read, clock=lambda: m.t)
    m.run(2.0, 0.5)
    host.sample()
    r = host.ratios()
    assert r is not None and r["busy_mean"] == r["busy_peak"] == 0.5
    assert HostCpu(read=lambda: None).ratios() is None  # not Linux: nothing said
    assert HostCpu(read=lambda: "garbage").ratios() is None


def _spin(until: float) -> None:
    while time.monotonic() < until:
        pass


def test_busy_cpus_are_seen_on_the_real_machine(monkeypatch) -> None:
    """Every CPU spun for a whole window: the real counters say the machine was busy."""
    monkeypatch.setattr(hostcpu, "WINDOW_S", 1.0)
    host = HostCpu()
    until = time.monotonic() + 1.6
    ctx = multiprocessing.get_context("fork")
    spinners = [ctx.Process(target=_spin, args=(until,)) for _ in range(os.cpu_count() or 1)]
    for p in spinners:
        p.start()
    time.sleep(0.3)
    host.sample()  # the window starts with every CPU spinning
    time.sleep(1.1)
    host.sample()
    for p in spinners:
        p.join(10)
    r = host.ratios()
    assert r is not None and r["cpus"] == os.cpu_count()
    assert r["busy_peak"] >= 0.9, r


def _summary(tmp_path: Path, *hosts: dict) -> dict:
    agg = Aggregate(tmp_path, saturation_lag_ms=5.0)
    for n, host in enumerate(hosts):
        agg.update_node(f"w{n}", snapshot_from_wire({"started": 0, "host_cpu": host}))
    summary = agg.summary({})
    agg.close()
    return json.loads(json.dumps(summary))


def _printed(summary: dict) -> str:
    out = io.StringIO()
    print_summary(summary, out)
    return out.getvalue()


def test_a_busy_machine_is_said_in_the_summary_console_and_report(tmp_path) -> None:
    calm = {"busy_mean": 0.3, "busy_peak": 0.5, "steal_peak": 0.0, "cpus": 2}
    busy = {"busy_mean": 0.7, "busy_peak": 0.97, "steal_peak": 0.12, "cpus": 8}
    summary = _summary(tmp_path / "a", calm, busy)
    assert summary["generator"]["host_cpu"] == {  # the busiest machine's
        "busy_mean": 0.7, "busy_peak": 0.97, "steal_peak": 0.12, "cpus": 8}
    printed = _printed(summary)
    assert "this machine: CPUs busy mean 70%, peak 97% (8 CPUs, 12% stolen" in printed
    assert "THIS MACHINE'S CPUS WERE 97% BUSY" in printed
    assert "waited for CPU" in _host_cpu(summary["generator"]["host_cpu"])

    summary = _summary(tmp_path / "b", calm)
    printed = _printed(summary)
    assert "this machine: CPUs busy mean 30%, peak 50% (2 CPUs)" in printed
    assert "BUSY" not in printed and "waited" not in _host_cpu(calm)
    assert _host_cpu(None) == "-"
    assert "this machine" not in _printed(_summary(tmp_path / "c"))  # not Linux: no line


@pytest.mark.parametrize("host", [
    {"busy_mean": 0.3, "busy_peak": 1.5, "steal_peak": 0.0, "cpus": 2},
    {"busy_mean": float("nan"), "busy_peak": 0.5, "steal_peak": 0.0, "cpus": 2},
    {"busy_mean": 0.3, "busy_peak": 0.5, "steal_peak": 0.0, "cpus": 0},
    {"busy_mean": True, "busy_peak": 0.5, "steal_peak": 0.0, "cpus": 2},
    {"busy_mean": 0.3, "busy_peak": 0.5, "cpus": 2},
    "busy",
])
def test_a_bad_host_cpu_from_a_worker_is_refused(host) -> None:
    with pytest.raises(WireError):
        snapshot_from_wire({"host_cpu": host})
