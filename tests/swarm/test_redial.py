"""A user does not redial at once when the agent ends every call as soon as it is up."""

from __future__ import annotations

import threading
from collections import Counter

from websockets.sync.server import ServerConnection, serve

from .conftest import read_jsonl, start_run, write_profile

TRUSTING = ("--saturation-lag-ms", "1000")


def _hang_up_at_start(ws: ServerConnection) -> None:
    for message in ws:  # "connected", then "start": the call is up
        if '"start"' in str(message):
            ws.close(1000, "bye")
            return


def test_an_agent_that_hangs_up_at_once_gets_one_call_a_second_per_user(tmp_path):
    with serve(_hang_up_at_start, "127.0.0.1", 0) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        port = server.socket.getsockname()[1]
        profile = write_profile(tmp_path / "p.yaml", url=f"ws://127.0.0.1:{port}/media",
                                users=3, duration="4s")
        run = start_run(profile, tmp_path / "r", *TRUSTING)
        code, _, err = run.wait(60)
        server.shutdown()
    assert "Traceback" not in err
    calls = read_jsonl(run.out_dir / "calls.jsonl")
    outcomes = Counter(c["outcome"] for c in calls)
    assert set(outcomes) <= {"agent_hangup", "cancelled"}, outcomes  # cancelled: at the end
    # 3 users for 4 s, at most one call a second each (it was 1,590)
    assert outcomes["agent_hangup"] >= 3 and len(calls) <= 3 * 5, outcomes
    assert code in (0, 1)
