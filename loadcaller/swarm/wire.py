"""What workers and the master say to each other beyond Locust's own messages.

A worker's ``report_to_master`` data carries, under :data:`PAYLOAD_KEY`::

    {"records": [call record, ...],   # finished since the last report, each once
     "node": {...}}                   # the worker's cumulative snapshot

and the master sends :data:`HANGUP_NOW` before ``stop`` when the run is
interrupted, so workers skip the grace period and hang up at once.
"""

from __future__ import annotations

PAYLOAD_KEY = "loadcaller"
HANGUP_NOW = "loadcaller_hangup_now"
