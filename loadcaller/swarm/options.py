"""How a swarm run is laid out: which role this process plays, where it listens."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from loadcaller.calls.clock import SATURATION_LAG_MS
from loadcaller.calls.stretches import WINDOW_S

DEFAULT_METRICS_PORT = 9646
DEFAULT_WEB_PORT = 8089
DEFAULT_MASTER_PORT = 5557

# exit codes (also in ``loadcaller --help``)
EXIT_OK = 0
EXIT_FAILED = 1  # no call connected, more than max_failed_ratio of the calls failed, or a gate
EXIT_SATURATED = 3
EXIT_NO_WORKERS = 4
EXIT_RESULTS_LOST = 5  # summary.json or call records could not be written


@dataclass(frozen=True, slots=True)
class SwarmOptions:
    """Keyword-only settings of one process in a swarm run.

    ``role``: ``local`` runs calls in this process (or, with ``processes`` > 0,
    forks that many local workers and coordinates them); ``master`` waits for
    ``expect_workers`` remote workers; ``worker`` connects to ``master_host``.
    """

    role: Literal["local", "master", "worker"] = "local"
    processes: int = 0
    results_dir: Path | None = None
    web: bool = False
    web_host: str = "127.0.0.1"
    web_port: int = DEFAULT_WEB_PORT
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = DEFAULT_METRICS_PORT  # None: no /metrics; 0: any free port
    metrics_linger_s: float = 0.0  # keep serving /metrics this long after the summary
    master_host: str = "127.0.0.1"
    master_port: int = DEFAULT_MASTER_PORT
    master_bind_host: str = "127.0.0.1"  # this machine only; "0.0.0.0" or "*": all
    expect_workers: int = 1
    expect_workers_timeout_s: float = 60.0
    saturation_lag_ms: float = SATURATION_LAG_MS
    saturation_window_s: float = WINDOW_S  # the media clock is judged per window this long
    max_failed_ratio: float = 0.5  # more failed calls than this fails the run (exit 1)
    progress_every_s: float = 2.0
    csv_prefix: str | None = None  # Locust's --csv
    html_path: Path | None = None  # Locust's --html
    overwrite: bool = False  # a non-empty results_dir is refused unless this is set
    junit_path: Path | None = None  # --junit: one JUnit test case per SLO gate
    pushgateway_url: str | None = None  # --pushgateway: the run's final figures pushed there
    extra_run_info: dict[str, Any] = field(default_factory=dict)
