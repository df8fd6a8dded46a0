"""A closed-model load plan: N users, each placing one call after another.

Users start at ``spawn_rate`` per second. A user whose call failed to set up waits
``SETUP_BACKOFF_S`` before dialling again, and none starts calls more often than
once per ``MIN_CALL_INTERVAL_S``. When the duration is up no new call
starts; calls in progress get ``stop_timeout_s`` to finish, then hang up
(outcome ``cancelled``). The swarm's Locust users run it (``loadcaller/swarm``).
"""

from __future__ import annotations

from dataclasses import dataclass

SETUP_BACKOFF_S = 1.0  # a user whose call failed to set up waits before redialling
# A user starts a call at most this often: an agent that hangs up (or breaks) as soon as
# a call is up once got 22,798 calls in 40 s from 3 users
MIN_CALL_INTERVAL_S = 1.0


@dataclass(frozen=True, slots=True)
class LoadPlan:
    users: int
    spawn_rate: float
    duration_s: float
    stop_timeout_s: float = 30.0
