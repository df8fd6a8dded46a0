"""Bounds for a delay measured through real sockets on a shared, noisy machine.

A delay check needs both bounds: a lower bound alone passes a proxy that waits
twice as long. The upper bound allows SLACK for scheduling on a busy 2-core CI
box; tests use delays longer than SLACK, so a doubled delay always fails.
"""

from __future__ import annotations

EARLY = 0.005  # event-loop timers may fire up to a millisecond or so early
SLACK = 0.3


def assert_delay(elapsed: float, delay: float, slack: float = SLACK) -> None:
    """`elapsed` seconds is `delay` plus scheduling noise, and less than twice it."""
    assert slack < delay, f"a {delay} s delay cannot be told from twice it with {slack} s slack"
    assert delay - EARLY <= elapsed < delay + slack, (
        f"took {elapsed:.3f} s for a {delay:.3f} s delay (allowed up to {delay + slack:.3f} s)")
