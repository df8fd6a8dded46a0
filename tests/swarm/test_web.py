"""--web: Locust's UI starts and stops the callers; calls and turns are in its statistics."""

from __future__ import annotations

import json
import signal
import urllib.parse
import urllib.request

from .conftest import Agent, free_port, http_get, read_jsonl, start_run, wait_until, write_profile


def post(url: str, form: dict[str, str] | None = None) -> dict:
    data = urllib.parse.urlencode(form or {}).encode()
    with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=30) as resp:
        return json.loads(resp.read().decode())


def test_web_ui_starts_and_stops_the_callers(tmp_path, agent: Agent):
    profile = write_profile(tmp_path / "p.yaml", url=agent.url, users=2, stop_timeout="0s")
    web = f"http://127.0.0.1:{free_port()}"
    run = start_run(profile, tmp_path / "r", "--web", "--web-port", web.rsplit(":", 1)[1],
                    "--saturation-lag-ms", "1000")
    wait_until(lambda: "<html" in http_get(f"{web}/"), 60, "the web UI")
    assert post(f"{web}/swarm", {"user_count": "2", "spawn_rate": "2"})["success"]
    stats: dict[tuple[str, str], dict] = {}

    def calls_and_turns_listed() -> bool:
        body = json.loads(http_get(f"{web}/stats/requests"))
        stats.clear()
        stats.update({(s["method"], s["name"]): s for s in body["stats"]})
        return stats.get(("CALL", "quick"), {}).get("num_requests", 0) >= 1

    wait_until(calls_and_turns_listed, 90, "a CALL in Locust's statistics")
    assert stats[("TURN", "quick turn 0")]["num_requests"] >= 1
    assert post(f"{web}/stop")["success"]
    wait_until(lambda: json.loads(http_get(f"{web}/stats/requests"))["state"] == "stopped",
               30, "the UI's stop")
    wait_until(lambda: (run.out_dir / "summary.json").exists(), 30, "the summary after a stop")
    run.signal(signal.SIGINT)
    code, _, err = run.wait()
    assert code == 130, err
    assert "no call is placed until you press Start there" in err  # not an idle run's "0s/30s"
    summary = run.summary()
    calls = read_jsonl(run.out_dir / "calls.jsonl")
    assert summary["calls"]["finished"] == summary["calls"]["started"] == len(calls)
    locust_calls = stats[("CALL", "quick")]["num_requests"]
    assert len(calls) >= locust_calls  # every call Locust counted is in the results
