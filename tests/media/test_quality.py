"""E-model MOS: published reference points and monotonicity; the media summary."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loadcaller.media.quality import (
    BPL_G711,
    BPL_G711_PLC,
    MediaStats,
    burst_ratio,
    delay_impairment,
    effective_delay_ms,
    loss_impairment,
    mos,
    mos_from_r,
    r_factor,
)


def test_default_r_maps_to_4_41():
    assert mos_from_r(93.2) == pytest.approx(4.41, abs=0.005)


def test_r_to_mos_ends_and_known_points():
    assert mos_from_r(-5) == 1.0
    assert mos_from_r(0) == 1.0
    assert mos_from_r(100) == 4.5
    assert mos_from_r(120) == 4.5
    # G.107 Annex B category boundaries: R 90, 80, 70, 60, 50 -> MOS 4.34, 4.03, 3.60, 3.10, 2.58
    for r, m in [(90, 4.34), (80, 4.03), (70, 3.60), (60, 3.10), (50, 2.58)]:
        assert mos_from_r(r) == pytest.approx(m, abs=0.01)


def test_delay_impairment_fit():
    assert delay_impairment(0) == 0.0
    assert delay_impairment(100) == pytest.approx(2.4)
    assert delay_impairment(177.3) == pytest.approx(0.024 * 177.3)
    assert delay_impairment(300) == pytest.approx(0.024 * 300 + 0.11 * (300 - 177.3))
    assert effective_delay_ms(50, 15) == 90.0


def test_g113_loss_impairment_for_g711():
    assert loss_impairment(0.0) == 0.0
    assert loss_impairment(0.01) == pytest.approx(95 * 1 / (1 + BPL_G711_PLC))
    assert loss_impairment(0.01, bpl=BPL_G711) == pytest.approx(95 * 1 / (1 + 4.3))
    assert loss_impairment(0.05, burst_r=2.0) == pytest.approx(95 * 5 / (5 / 2 + 25.1))
    assert loss_impairment(1.0) == pytest.approx(95 * 100 / (100 + 25.1))


def test_g711_reference_points():
    clean = mos(0.0)
    assert clean == pytest.approx(mos_from_r(93.2 - 0.024 * 10), abs=1e-12)  # 10 ms codec delay
    assert clean == pytest.approx(4.40, abs=0.01)
    assert mos(0.01) == pytest.approx(4.32, abs=0.01)
    assert mos(0.05) == pytest.approx(3.91, abs=0.01)
    assert clean - mos(0.05) > 0.4  # noticeable
    assert mos(0.01, plc=False) < 3.9  # without concealment 1 % already hurts
    assert mos(0.0, delay_ms=400) < 3.6  # satellite-grade delay
    assert r_factor(0.0) == pytest.approx(93.2 - 0.24)


_loss = st.floats(0.0, 1.0)
_ms = st.floats(0.0, 2000.0)


@given(_loss, _loss, _ms, _ms)
def test_mos_is_monotone_in_loss(a, b, jitter, delay):
    lo, hi = sorted((a, b))
    assert mos(lo, jitter_ms=jitter, delay_ms=delay) >= mos(hi, jitter_ms=jitter, delay_ms=delay)


@given(_loss, _ms, _ms, _ms)
def test_mos_is_monotone_in_delay_and_jitter(loss, a, b, j):
    lo, hi = sorted((a, b))
    assert mos(loss, delay_ms=lo, jitter_ms=j) >= mos(loss, delay_ms=hi, jitter_ms=j)
    assert mos(loss, jitter_ms=lo, delay_ms=j) >= mos(loss, jitter_ms=hi, delay_ms=j)


@given(st.floats(0.001, 0.5), st.floats(1.0, 10.0), st.floats(1.0, 10.0))
def test_burstier_loss_rates_lower(loss, a, b):
    lo, hi = sorted((a, b))
    assert mos(loss, burst_r=lo) >= mos(loss, burst_r=hi)
    assert 1.0 <= mos(loss, burst_r=hi) <= 4.5


def test_burst_ratio_estimate():
    assert burst_ratio(0.0, 0, 0) == 1.0
    # 10 % loss in runs of 1: as random (floored at 1)
    assert burst_ratio(0.1, 10, 10) == 1.0
    # 10 % loss in runs of 5: mean run 5 against 1/(1 - 0.1) for random
    assert burst_ratio(0.1, 50, 10) == pytest.approx(4.5)


def test_media_stats_summary_for_calls_jsonl():
    m = MediaStats.build(
        packets_sent=500,
        octets_sent=80_000,
        packets_received=490,
        packets_expected=500,
        lost=8,
        late=2,
        skipped=10,
        loss_bursts=10,
        jitter_ms=3.25,
        out_of_order=4,
        duplicates=1,
        malformed=0,
        rtcp=3,
    )
    assert m.loss_ratio == pytest.approx(8 / 500)
    assert m.burst_ratio == 1.0
    # the MOS counts what the listener missed: lost and late
    assert m.mos == pytest.approx(mos(10 / 500, jitter_ms=3.25))
    d = m.to_json()
    assert json.loads(json.dumps(d)) == d
    assert d["loss_ratio"] == 0.016 and d["mos"] == round(m.mos, 3)
    assert set(d) >= {
        "packets_sent",
        "packets_received",
        "lost",
        "loss_ratio",
        "jitter_ms",
        "out_of_order",
        "duplicates",
        "malformed",
        "rtcp",
        "mos",
    }


def test_media_stats_without_audio_has_no_mos():
    m = MediaStats.build(
        packets_sent=10, octets_sent=1600, packets_received=0, packets_expected=0, lost=0
    )
    assert (m.mos, m.r_factor, m.loss_ratio) == (None, None, 0.0)
    assert m.to_json()["mos"] is None


def test_r_stays_on_g107_s_scale_whatever_the_jitter():
    assert r_factor(0.0, jitter_ms=18_608_339.0) == 0.0  # random RTP timestamps
    assert r_factor(1.0, delay_ms=10_000.0) == 0.0
    assert mos(0.0, jitter_ms=18_608_339.0) == 1.0
