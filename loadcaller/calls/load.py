"""A closed-model load plan: N users, each placing one call after another.

Users start at ``spawn_rate`` per second. When the duration is up no new call
starts; calls in progress get ``stop_timeout_s`` to finish, then hang up
(outcome ``cancelled``). The swarm's Locust users run it (``loadcaller/swarm``).
"""

from __future__ import annotations

from dataclasses import dataclass

SETUP_BACKOFF_S = 1.0  # a user whose call failed to set up waits before redialling


@dataclass(frozen=True, slots=True)
class LoadPlan:
    users: int
    spawn_rate: float
    duration_s: float
    stop_timeout_s: float = 30.0
