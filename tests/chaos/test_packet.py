"""Packet impairment models, sans-I/O: statistics, determinism, timing."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chaos.packet import (
    GilbertElliottLoss,
    GilbertElliottSpec,
    build_impairment,
)

N = 100_000


def run(model, n: int = N, step: float = 0.02) -> list[list[tuple[float, bytes]]]:
    return [model.process(i.to_bytes(4, "big") + b"\x00" * 16, i * step) for i in range(n)]


def bursts(lost: list[bool]) -> list[int]:
    runs, current = [], 0
    for flag in lost:
        if flag:
            current += 1
        elif current:
            runs.append(current)
            current = 0
    if current:
        runs.append(current)
    return runs


@pytest.mark.parametrize(("mean_loss", "mean_burst"), [(0.05, 3.0), (0.01, 1.5), (0.2, 8.0)])
def test_gilbert_elliott_hits_mean_loss_and_burst(mean_loss, mean_burst):
    model = build_impairment({"type": "gilbert_elliott", "mean_loss": mean_loss,
                              "mean_burst": mean_burst}, random.Random(1234))
    lost = [out == [] for out in run(model)]
    loss = sum(lost) / N
    runs = bursts(lost)
    burst = sum(runs) / len(runs)
    assert abs(loss - mean_loss) <= 0.1 * mean_loss, loss
    assert abs(burst - mean_burst) <= 0.1 * mean_burst, burst


def test_gilbert_elliott_with_lossy_good_and_leaky_bad_states():
    """Non-default per-state loss rates, against the two-state chain's closed form.

    The spec maps (mean_loss, mean_burst, loss_good, loss_bad) to the chain: the
    bad state's mean sojourn is mean_burst, so r = 1/mean_burst, and its
    stationary share pi_bad = p/(p+r) is what makes the mean loss come out:
    (1 - pi_bad)*loss_good + pi_bad*loss_bad = mean_loss. The figures are chosen
    so that a model ignoring loss_good/loss_bad (treating them as 0 and 1) loses
    pi_bad = 0.375 of the packets, not 0.2, and one that also ignores them when
    deriving p spends 0.2 of the time in the bad state, not 0.375.
    """
    loss_good, loss_bad, mean_loss, mean_burst = 0.02, 0.5, 0.2, 3.0
    share_bad = (mean_loss - loss_good) / (loss_bad - loss_good)  # 0.375
    r = 1 / mean_burst  # bad -> good per packet
    p = r * share_bad / (1 - share_bad)  # good -> bad per packet, 0.2
    pi_bad = p / (p + r)
    expected_loss = (1 - pi_bad) * loss_good + pi_bad * loss_bad
    assert pi_bad == pytest.approx(0.375) and expected_loss == pytest.approx(mean_loss)

    model = build_impairment({"type": "gilbert_elliott", "mean_loss": mean_loss,
                              "mean_burst": mean_burst, "loss_good": loss_good,
                              "loss_bad": loss_bad}, random.Random(2024))
    assert isinstance(model, GilbertElliottLoss)
    n = 200_000
    states, lost = [], []
    for i in range(n):
        states.append(model.bad)  # the state this packet is judged in
        lost.append(model.process(b"rtp", i * 0.02) == [])

    # standard errors over 200k correlated packets are about 0.002: 0.01 is 5 sigma
    assert sum(lost) / n == pytest.approx(expected_loss, abs=0.01)
    assert sum(states) / n == pytest.approx(pi_bad, abs=0.01)
    in_bad = [x for x, bad in zip(lost, states, strict=True) if bad]
    in_good = [x for x, bad in zip(lost, states, strict=True) if not bad]
    assert sum(in_bad) / len(in_bad) == pytest.approx(loss_bad, abs=0.01)
    assert sum(in_good) / len(in_good) == pytest.approx(loss_good, abs=0.005)
    # mean sojourns: mean_burst packets in the bad state, 1/p in the good one
    assert sum(bursts(states)) / len(bursts(states)) == pytest.approx(mean_burst, abs=0.1)
    good_runs = bursts([not bad for bad in states])
    assert sum(good_runs) / len(good_runs) == pytest.approx(1 / p, abs=0.15)


def test_gilbert_elliott_is_bursty_unlike_bernoulli():
    ge = build_impairment({"type": "gilbert_elliott", "mean_loss": 0.05, "mean_burst": 4},
                          random.Random(7))
    be = build_impairment({"type": "loss", "loss": 0.05}, random.Random(7))
    ge_runs = bursts([o == [] for o in run(ge, 20_000)])
    be_runs = bursts([o == [] for o in run(be, 20_000)])
    assert sum(be_runs) / len(be_runs) < 1.2
    assert sum(ge_runs) / len(ge_runs) > 3.0


def test_same_seed_same_decisions():
    spec = [{"type": "gilbert_elliott", "mean_loss": 0.1, "mean_burst": 2},
            {"type": "delay", "delay": 0.05, "jitter": 0.02},
            {"type": "duplicate", "chance": 0.05},
            {"type": "corrupt", "chance": 0.05}]
    a = run(build_impairment(spec, random.Random(3)), 2000)
    b = run(build_impairment(spec, random.Random(3)), 2000)
    c = run(build_impairment(spec, random.Random(4)), 2000)
    assert a == b and a != c


def test_bernoulli_loss_rate():
    model = build_impairment({"type": "loss", "loss": 0.3}, random.Random(0))
    lost = sum(out == [] for out in run(model, 20_000)) / 20_000
    assert abs(lost - 0.3) < 0.02


def test_delay_and_jitter():
    fixed = build_impairment({"type": "delay", "delay": 0.1}, random.Random(0))
    assert fixed.process(b"x", 5.0) == [(5.1, b"x")]
    jitter = build_impairment({"type": "delay", "delay": 0.05, "jitter": 0.01},
                              random.Random(0))
    delays = [at - i for i, ((at, _),) in enumerate(jitter.process(b"x", float(i))
                                                    for i in range(5000))]
    mean = sum(delays) / len(delays)
    sd = (sum((d - mean) ** 2 for d in delays) / len(delays)) ** 0.5
    assert abs(mean - 0.05) < 0.002 and abs(sd - 0.01) < 0.001
    ordered = build_impairment({"type": "delay", "delay": 0.05, "jitter": 0.05,
                                "keep_order": True}, random.Random(0))
    times = [ordered.process(b"x", i * 0.001)[0][0] for i in range(1000)]
    assert times == sorted(times)


def test_reorder_duplicate_corrupt():
    reorder = build_impairment({"type": "reorder", "chance": 1.0, "gap": 0.03},
                               random.Random(0))
    assert reorder.process(b"a", 1.0) == [(1.03, b"a")]
    dup = build_impairment({"type": "duplicate", "chance": 1.0, "gap": 0.001},
                           random.Random(0))
    assert dup.process(b"a", 1.0) == [(1.0, b"a"), (1.001, b"a")]
    corrupt = build_impairment({"type": "corrupt", "chance": 1.0, "bits": 1, "skip_bytes": 12},
                               random.Random(0))
    packet = bytes(range(40))
    [(_, out)] = corrupt.process(packet, 0.0)
    assert out[:12] == packet[:12]
    diff = sum(bin(a ^ b).count("1") for a, b in zip(out, packet, strict=True))
    assert diff == 1
    assert corrupt.process(b"short", 0.0) == [(0.0, b"short")]


def test_outage_and_rate():
    outage = build_impairment({"type": "outage", "start": 1.0, "duration": 0.5, "every": 2.0},
                              random.Random(0))
    passed = [bool(outage.process(b"x", 10.0 + t / 10)) for t in range(50)]
    # lost during [1.0, 1.5) and [3.0, 3.5) after the first packet at t=10
    assert passed[:10] == [True] * 10 and passed[10:15] == [False] * 5
    assert passed[15:30] == [True] * 15 and passed[30:35] == [False] * 5
    rate = build_impairment({"type": "rate", "bytes_per_second": 1000, "max_queue": 0.25},
                            random.Random(0))
    outs = [rate.process(b"x" * 100, 0.0) for _ in range(5)]
    assert [o[0][0] for o in outs[:3]] == pytest.approx([0.1, 0.2, 0.3])
    assert outs[3] == [] or outs[3][0][0] == pytest.approx(0.4)
    assert outs[4] == []


def test_presets_and_errors():
    for name in ("wifi", "3g", "volte"):
        model = build_impairment({"type": "preset", "preset": name}, random.Random(0))
        outs = run(model, 2000)
        delivered = [o for o in outs if o]
        assert 0.9 < len(delivered) / 2000 < 1.0
    with pytest.raises(ValueError, match=r"known: .*gilbert_elliott"):
        build_impairment({"type": "bogus"}, random.Random(0))
    with pytest.raises(ValueError):
        build_impairment({"type": "gilbert_elliott", "mean_loss": 0.5, "mean_burst": 0.5},
                         random.Random(0))
    spec = GilbertElliottSpec(mean_loss=0.1, mean_burst=2)
    assert isinstance(build_impairment(spec, random.Random(0)), GilbertElliottLoss)


@given(st.binary(max_size=1500), st.floats(0, 1e6), st.integers(0, 2**32))
def test_any_packet_any_time_never_raises(packet, now, seed):
    model = build_impairment({"type": "preset", "preset": "3g"}, random.Random(seed))
    for at, out in model.process(packet, now):
        assert at >= now and len(out) == len(packet)
