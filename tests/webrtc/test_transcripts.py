"""The agent's own words (RTVI texts) on their turns, and through the swarm's wire."""

from __future__ import annotations

import pytest

from loadcaller.calls.call import CallRecord
from loadcaller.calls.measure import TurnResult
from loadcaller.calls.results import turn_line
from loadcaller.media.outcomes import TurnOutcome
from loadcaller.swarm.wire import WireError, record_from_wire, record_to_wire


def _record(transcripts: list[tuple[int, str]] | None) -> CallRecord:
    turns = [TurnResult(index=i, outcome=TurnOutcome.ANSWERED, t_speech_end_ns=end,
                        t_reply_onset_ns=end + 5, overlap=False, faults=())
             for i, end in enumerate((100, 200, 300))]
    return CallRecord("c1", "webrtc", "s", "completed", "done", turns=turns,
                      transcripts=transcripts)


def test_each_turn_gets_the_text_that_came_after_the_caller_spoke():
    rec = _record([(50, "hello"), (120, "one"), (150, " two "), (210, "three"), (900, "bye")])
    assert [turn_line(rec, t)["agent_text"] for t in rec.turns] == [
        "one two", "three", "bye"]  # the greeting (before any turn) belongs to none
    assert "agent_text" not in turn_line(_record(None), rec.turns[0])
    assert turn_line(_record([(50, "hi")]), rec.turns[0])["agent_text"] is None


def test_transcripts_cross_the_wire_and_bad_ones_are_refused():
    rec = _record([(120, "one"), (210, "three")])
    data = record_to_wire(rec)
    data["transcripts"] = [list(x) for x in data["transcripts"]]  # msgpack gives lists
    assert record_from_wire(data).transcripts == [(120, "one"), (210, "three")]
    for bad in ([[1, 2]], [[-1, "x"]], [["1", "x"]], "text", [[1, "x" * 5000]],
                [[1, "x"]] * 2001):
        data["transcripts"] = bad
        with pytest.raises(WireError, match="transcript"):
            record_from_wire(data)
