"""How a call and a turn can end: the names calls.jsonl and turns.jsonl use.

``StrEnum`` members are strings: they compare equal to their value, serialise
to JSON as it, and label Prometheus series with it.
"""

from __future__ import annotations

from enum import StrEnum


class CallOutcome(StrEnum):
    """calls.jsonl ``outcome``."""

    COMPLETED = "completed"  # the scenario ran to its end (or the caller hung up)
    FAILED_SETUP = "failed_setup"  # never connected: refused, rejected, timed out
    DROPPED = "dropped"  # the network or the far end cut the call abnormally
    AGENT_HANGUP = "agent_hangup"  # the agent ended the call cleanly mid-scenario
    ERROR = "error"  # the agent broke the protocol
    NO_RESPONSE = "no_response"  # the agent stopped answering; the caller gave up
    NO_MEDIA = "no_media"  # connected, but no audio ever arrived
    CANCELLED = "cancelled"  # our run stopped the call (end of run, Ctrl-C)


class TurnOutcome(StrEnum):
    """turns.jsonl ``outcome``."""

    ANSWERED = "answered"
    NO_RESPONSE = "no_response"  # no reply began within the turn timeout
    DROPPED = "dropped"  # the call dropped before a reply began
    AGENT_HANGUP = "agent_hangup"  # the agent hung up instead of replying


# Outcomes that are not failures of the agent.
NOT_FAILED: frozenset[str] = frozenset({CallOutcome.COMPLETED, CallOutcome.CANCELLED})
