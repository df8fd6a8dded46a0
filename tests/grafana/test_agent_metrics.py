"""The reference agent counts its fallback replies from the ground truth it writes."""

from __future__ import annotations

import io
import json

from prometheus_client.parser import text_string_to_metric_families

from loadcaller.agent.metrics import CountingTruth


def samples(truth: CountingTruth) -> dict[tuple[str, str], float]:
    out = {}
    for family in text_string_to_metric_families(truth.exposition().decode()):
        for s in family.samples:
            if s.name.endswith("_total"):
                out[(s.name, next(iter(s.labels.values())))] = s.value
    return out


def test_fallbacks_by_reason_and_nothing_else_counted():
    log = io.StringIO()
    truth = CountingTruth(log)
    records = [
        {"call_sid": "CA1", "turn": "greeting", "t_first_reply_sent": 1.0},
        {"call_sid": "CA1", "dtmf": "5", "t_recv": 2.0},
        {"call_sid": "CA1", "turn": 0, "backend": "ok", "reply": "order_status"},
        {"call_sid": "CA1", "turn": 1, "backend": "timeout", "reply": "agent_fallback"},
        {"call_sid": "CA2", "turn": 0, "backend": "error: KeyError", "reply": "agent_fallback"},
        {"call_sid": "CA2", "turn": 1, "backend": "error: ValueError",
         "reply": "agent_fallback", "interrupted": True},
    ]
    for rec in records:
        truth.write(rec)
    assert [json.loads(line) for line in log.getvalue().splitlines()] == records
    assert samples(truth) == {
        ("loadcaller_agent_replies_total", "backend"): 1.0,
        ("loadcaller_agent_replies_total", "fallback"): 3.0,
        ("loadcaller_agent_fallbacks_total", "timeout"): 1.0,
        ("loadcaller_agent_fallbacks_total", "error"): 2.0,
    }
