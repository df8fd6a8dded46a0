"""Locust's own reports, as Locust users know them: ``--csv PREFIX`` and ``--html FILE``.

They hold Locust's rounded statistics of the CALL and TURN requests; the
results directory's full histograms remain the reference.
"""

from __future__ import annotations

import csv
from pathlib import Path

import gevent
from locust import stats
from locust.env import Environment
from locust.html import get_html_report


class LocustReports:
    """Writes Locust's CSV files during the run and its HTML report at the end."""

    def __init__(self, env: Environment, *, csv_prefix: str | None,
                 html_path: Path | None) -> None:
        self.env = env
        self.csv_prefix = csv_prefix
        self.html_path = html_path
        self._writer: stats.StatsCSVFileWriter | None = None
        self._greenlet: gevent.Greenlet | None = None

    def start(self) -> None:
        if self.csv_prefix:
            Path(self.csv_prefix).parent.mkdir(parents=True, exist_ok=True)
            self._writer = stats.StatsCSVFileWriter(self.env, stats.PERCENTILES_TO_REPORT,
                                                    self.csv_prefix, False)
            self._greenlet = gevent.spawn(self._writer.stats_writer)

    def finish(self) -> None:
        """Final CSV rows and the HTML report."""
        if self._greenlet is not None:
            self._greenlet.kill(block=True)
        if self._writer is not None:
            self._writer.close_files()
        if self.csv_prefix:  # the periodic writer may lag the end: write the final figures
            final = stats.StatsCSV(self.env, stats.PERCENTILES_TO_REPORT)
            for suffix, write in (("stats", final.requests_csv), ("failures", final.failures_csv),
                                  ("exceptions", final.exceptions_csv)):
                with open(f"{self.csv_prefix}_{suffix}.csv", "w", newline="",
                          encoding="utf-8") as f:
                    write(csv.writer(f))
        if self.html_path is not None:
            self.html_path.parent.mkdir(parents=True, exist_ok=True)
            self.html_path.write_text(get_html_report(self.env, show_download_link=False),
                                      encoding="utf-8")
