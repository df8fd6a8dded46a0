"""run_swarm's end: the demo's ground-truth check changes the code before JUnit sees it.

In a subprocess, as every swarm test: Locust and gevent must not patch the pytest process.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

PROBE = textwrap.dedent("""
    import sys
    from pathlib import Path
    from loadcaller.swarm import bootstrap
    bootstrap.patch()
    from loadcaller.swarm import run as swarm_run

    summary = {"calls": {"started": 0}}

    def fake_role(spec, opts, *, on_summary, on_ready):
        on_summary(summary)  # the process that writes summary.json judges it
        return summary, 0

    published = []
    swarm_run._run_role = fake_role
    swarm_run.publish = lambda gates, s, *, code, **kw: published.append(code)
    spec = type("Spec", (), {"gates": []})()
    opts = type("Opts", (), {"max_failed_ratio": 0.1, "results_dir": None,
                             "junit_path": Path(sys.argv[1]), "pushgateway_url": None})()
    _, code = swarm_run.run_swarm(spec, opts, report=False, final_code=lambda s, c: 1)
    print(code, published)
""")


def test_junit_and_pushgateway_get_the_code_after_the_final_check(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path / "j.xml")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[-2] == "1 [1]"  # the exit code and what publish was given
