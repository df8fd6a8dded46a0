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
    CALLER_ABANDONED = "caller_abandoned"  # a reply took longer than the caller's patience


class TurnOutcome(StrEnum):
    """turns.jsonl ``outcome``."""

    ANSWERED = "answered"
    NO_RESPONSE = "no_response"  # no reply began within the turn timeout
    DROPPED = "dropped"  # the call dropped before a reply began
    AGENT_HANGUP = "agent_hangup"  # the agent hung up instead of replying
    CALLER_ABANDONED = "caller_abandoned"  # no reply within the caller's patience: hung up
    REPROMPTED = "reprompted"  # a silence step: the agent spoke into the dead air
    NO_REPROMPT = "no_reprompt"  # a silence step: the agent stayed quiet throughout


class BargeInOutcome(StrEnum):
    """turns.jsonl ``bargein``: what the agent did when the caller talked over it."""

    STOPPED = "stopped"  # its audio ended after the interruption began: reaction measured
    NOT_STOPPED = "not_stopped"  # still speaking at the barge-in's stop timeout
    NOT_SPEAKING = "not_speaking"  # its reply had ended before the caller began
    NO_REPLY = "no_reply"  # no reply began to barge into (the caller spoke anyway)
    UNDECIDED = "undecided"  # the call ended before the agent stopped or the timeout


# Outcomes that are not failures of the agent.
NOT_FAILED: frozenset[str] = frozenset({CallOutcome.COMPLETED, CallOutcome.CANCELLED})
