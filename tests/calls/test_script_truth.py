"""Barge-in reactions checked against the agent's log; the agent's side of a barge-in."""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path
from typing import Any

import pytest

from loadcaller.agent.dist import parse_distribution
from loadcaller.agent.session import AgentConfig, AgentSession
from loadcaller.calls.utterance import make_utterance
from loadcaller.media.frames import SILENCE_FRAME
from loadcaller.report.groundtruth import compare, compare_bargein
from loadcaller.timebase import now_ns, to_monotonic_s

LOUD = bytes([0x00, 0x80]) * 80


def write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_bargein_reactions_pair_by_call_and_instant_and_show_an_offset(tmp_path: Path) -> None:
    truth = [{"call_sid": f"CA{i}", "turn": 1, "bargein": True, "stopped": True,
              "reaction_ms": 160.0 + i, "t_bargein_onset_recv": 5.001} for i in range(20)]
    truth.append({"call_sid": "CA0", "turn": 0, "latency_ms": 700.0, "t_last_speech_recv": 1.0})
    turns = [{"remote_id": f"CA{i}", "turn": 1, "step": "barge_in", "outcome": "answered",
              "latency_ms": 700.0, "bargein": "stopped", "bargein_reaction_ms": 162.0 + i,
              "t_bargein": 5.0} for i in range(20)]
    turns.append({"remote_id": "CA99", "turn": 1, "step": "barge_in", "outcome": "answered",
                  "latency_ms": 700.0, "bargein": "not_stopped", "bargein_reaction_ms": None})
    turns.append({"remote_id": "CA0", "turn": 0, "step": "say", "outcome": "answered",
                  "latency_ms": 701.0, "t_speech_end": 0.999})
    cmp = compare_bargein(write(tmp_path / "t.jsonl", turns), write(tmp_path / "g.jsonl", truth))
    assert cmp["matched"] == 20 and cmp["unmatched"] == 1
    assert cmp["mean_diff_ms"] == 2.0 and cmp["p95_abs_diff_ms"] == 2.0
    # turn latency still pairs its own records (the barge-ins' answered turns have none)
    lat = compare(tmp_path / "t.jsonl", tmp_path / "g.jsonl")
    assert lat["matched"] == 1 and lat["max_abs_diff_ms"] == 1.0


class Line:
    def __init__(self) -> None:
        self.sent: list[tuple[str, int]] = []

    async def send_audio(self, frame: bytes) -> None:
        self.sent.append(("audio", now_ns()))

    async def clear(self) -> None:
        self.sent.append(("clear", now_ns()))

    async def mark(self, name: str) -> None:
        self.sent.append(("mark", now_ns()))


class Log:
    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def write(self, record: dict[str, Any]) -> None:
        self.rows.append(record)


async def test_the_agent_stops_its_reaction_after_the_onset_and_logs_it() -> None:
    line, log = Line(), Log()
    cfg = AgentConfig(think=parse_distribution("0ms"), greeting_delay=parse_distribution("0ms"),
                      bargein_reaction_ms=100.0)
    voice = {"agent_greeting": make_utterance("g", LOUD * 100)}
    session = AgentSession(line=line, config=cfg, voice=voice, http=None,
                           truth=log, rng=random.Random(1))  # type: ignore[arg-type]
    session.on_start("CA1", now_ns())
    await asyncio.sleep(0.3)  # the greeting is under way
    onset = now_ns()
    session.on_audio(LOUD, onset)
    session.on_audio(LOUD, now_ns())  # the second speech frame confirms the onset
    for _ in range(50):
        await asyncio.sleep(0.02)
        session.on_audio(SILENCE_FRAME, now_ns())
        if any(kind == "clear" for kind, _ in line.sent):
            break
    session.close()
    (t_clear,) = [t for kind, t in line.sent if kind == "clear"]
    assert t_clear >= onset + 100_000_000
    assert all(t < t_clear for kind, t in line.sent if kind == "audio")  # nothing after
    (barge,) = [r for r in log.rows if r.get("bargein")]
    assert barge["stopped"] is True and barge["turn"] == 0
    # its log: from the onset it received to the end of its audible audio as played out
    # (the frame playing at the clear is heard whole), never before the reaction time
    assert barge["reaction_ms"] >= 100.0
    assert barge["t_bargein_onset_recv"] == pytest.approx(to_monotonic_s(onset), abs=2e-6)
    assert barge["t_audio_end_played"] <= to_monotonic_s(t_clear + 20_000_000) + 2e-6
