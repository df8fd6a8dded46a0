"""The reference agent's own Prometheus metrics, served at ``GET /metrics`` on its port.

Why the agent and not the callers: whether a reply was the agent's fallback
("sorry, say that again") because its backend timed out or failed is known only
inside the agent; the callers hear a reply either way. The Grafana "Voice load"
dashboard shows these next to the chaos windows, so a fault that the agent
masks with fallbacks is not mistaken for a healthy run.

Counted from the ground-truth records the session writes anyway (one per
reply), so the counts and ``agent_turns.jsonl`` cannot disagree.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import IO, Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric

from loadcaller.agent.session import GroundTruth
from loadcaller.metrics import AGENT_FALLBACKS, AGENT_REPLIES


class CountingTruth(GroundTruth):
    """The ground-truth log that also counts replies and fallbacks for /metrics."""

    def __init__(self, stream: IO[str] | None) -> None:
        super().__init__(stream)
        self.replies: Counter[str] = Counter()
        self.fallbacks: Counter[str] = Counter()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    def write(self, record: dict[str, Any]) -> None:
        super().write(record)
        reply = record.get("reply")
        if not isinstance(reply, str) or reply == "agent_greeting":
            return  # DTMF lines and greetings are no replies to a turn
        if reply == "agent_fallback":
            self.replies["fallback"] += 1
            backend = str(record.get("backend", "error"))
            self.fallbacks["timeout" if backend == "timeout" else "error"] += 1
        else:
            self.replies["backend"] += 1

    def collect(self) -> Iterator[Metric]:
        replies = CounterMetricFamily(AGENT_REPLIES, "Replies the agent spoke, by source",
                                      labels=["reply"])
        for kind in ("backend", "fallback"):
            replies.add_metric([kind], float(self.replies[kind]))
        yield replies
        fallbacks = CounterMetricFamily(AGENT_FALLBACKS, "Fallback replies: the backend failed "
                                        "the agent", labels=["reason"])
        for reason in ("timeout", "error"):
            fallbacks.add_metric([reason], float(self.fallbacks[reason]))
        yield fallbacks

    def exposition(self) -> bytes:
        """The text a scrape of ``/metrics`` gets."""
        return generate_latest(self.registry)
