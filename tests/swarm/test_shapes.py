"""Load shapes are pure functions of run time; the open model counts missed starts."""

from __future__ import annotations

import pytest

from loadcaller.compile import compile_shape
from loadcaller.errors import ProfileError
from loadcaller.profile import parse_profile
from loadcaller.swarm import shapes


def test_constant_runs_for_its_duration_then_ends():
    s = shapes.Constant(users=10, spawn_rate=5.0, duration_s=30.0)
    assert s.tick(0.0) == (10, 5.0)
    assert s.tick(29.9) == (10, 5.0)
    assert s.tick(30.0) is None


def test_ramp_is_linear_then_holds():
    s = shapes.Ramp(start_users=0, end_users=100, ramp_s=50.0, duration_s=120.0)
    assert s.tick(0.0)[0] == 0
    assert s.tick(25.0)[0] == 50
    assert s.tick(50.0)[0] == 100
    assert s.tick(100.0)[0] == 100
    assert s.tick(25.0)[1] >= 2.0  # spawns faster than the line climbs
    assert s.tick(120.0) is None


def test_step_adds_users_every_step_up_to_the_maximum():
    s = shapes.Step(start_users=5, step_users=10, step_s=20.0, max_users=30, spawn_rate=50.0,
                    duration_s=200.0)
    assert [s.tick(t)[0] for t in (0.0, 19.9, 20.0, 40.0, 60.0, 150.0)] == [5, 5, 15, 25, 30, 30]


def test_spike_jumps_and_returns():
    s = shapes.Spike(users=10, spike_users=80, at_s=30.0, for_s=10.0, spawn_rate=5.0,
                     duration_s=60.0)
    assert [s.tick(t)[0] for t in (0.0, 29.9, 30.0, 39.9, 40.0)] == [10, 10, 80, 80, 10]
    assert s.tick(30.0)[1] >= 80  # the spike arrives at once


def test_soak_ramps_gently_and_holds_long():
    s = shapes.Soak(users=100, ramp_s=200.0, duration_s=3600.0)
    assert s.tick(0.0) == (100, 0.5)
    assert s.tick(3599.0) == (100, 0.5)
    assert s.tick(3600.0) is None


def test_open_keeps_the_pool_and_paces_each_user():
    s = shapes.Open(rate=10.0, max_concurrency=50, duration_s=60.0)
    assert s.tick(1.0) == (50, 50.0)
    assert s.per_user_interval_s == 5.0  # 50 users x 1 call / 5 s = 10 calls/s


def test_open_pacing_on_time_misses_nothing():
    p = shapes.OpenPacing(interval_s=1.0, late_after_s=0.5, first_s=10.0)
    assert p.next_start(9.0) == (10.0, 0)
    assert p.next_start(10.2) == (11.0, 0)  # calls shorter than the interval
    assert p.next_start(11.4) == (12.0, 0)  # late, but within late_after: still on time


def test_open_pacing_counts_the_starts_a_busy_user_missed():
    p = shapes.OpenPacing(interval_s=1.0, late_after_s=0.5, first_s=10.0)
    assert p.next_start(10.0) == (10.0, 0)
    # the call took 3.2 s: the starts due at 11 and 12 could not happen on time
    start, missed = p.next_start(13.2)
    assert (start, missed) == (13.0, 2)
    assert p.next_start(13.3) == (14.0, 0)


def _load(shape_yaml: str):
    text = f"load: {{users: 7, spawn_rate: 3, duration: 90s, shape: {shape_yaml}}}\n" \
           "scenarios: [{name: a, steps: [hangup]}]"
    return parse_profile(text, "p.yaml").load


def test_profile_shapes_compile_with_load_defaults():
    assert compile_shape(_load("{type: constant}")) == shapes.Constant(7, 3.0, 90.0)
    assert compile_shape(_load("{type: ramp, ramp: 30s}")) == shapes.Ramp(0, 7, 30.0, 90.0)
    assert compile_shape(_load("{type: open, rate: 2}")) == shapes.Open(2.0, 7, 90.0, 0.5)
    assert compile_shape(_load("{type: spike, spike_users: 50, at: 10s, hold: 5s}")) == (
        shapes.Spike(7, 50, 10.0, 5.0, 3.0, 90.0))


def test_unknown_shape_names_the_known_ones():
    with pytest.raises(ProfileError) as err:
        _load("{type: sawtooth}")
    assert "p.yaml:1: load.shape" in str(err.value)
    assert "'ramp'" in str(err.value) and "'open'" in str(err.value)
