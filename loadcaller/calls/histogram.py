"""Full-resolution latency histograms (HdrHistogram), merged and summarised.

Percentiles always come from these, never from rounded figures. Values are
recorded in microseconds, 1 us to 1 hour, three significant digits.
"""

from __future__ import annotations

from hdrh.histogram import HdrHistogram

_LOWEST_US = 1
_HIGHEST_US = 3_600_000_000
_DIGITS = 3


class Histogram:
    """A latency histogram in microseconds with a summary in milliseconds."""

    __slots__ = ("_h",)

    def __init__(self) -> None:
        self._h = HdrHistogram(_LOWEST_US, _HIGHEST_US, _DIGITS)

    def record_ns(self, value_ns: int) -> None:
        us = max(_LOWEST_US, min(_HIGHEST_US, value_ns // 1000))
        self._h.record_value(us)

    @property
    def count(self) -> int:
        return int(self._h.get_total_count())

    def percentile_ms(self, q: float) -> float:
        return round(self._h.get_value_at_percentile(q) / 1000.0, 3)

    def summary_ms(self) -> dict[str, float | int | None]:
        """count, p50, p95, p99, max and mean in milliseconds (None when empty)."""
        if self.count == 0:
            return {"count": 0, "p50": None, "p95": None, "p99": None, "max": None, "mean": None}
        return {
            "count": self.count,
            "p50": self.percentile_ms(50),
            "p95": self.percentile_ms(95),
            "p99": self.percentile_ms(99),
            "max": round(self._h.get_max_value() / 1000.0, 3),
            "mean": round(self._h.get_mean_value() / 1000.0, 3),
        }

    def merge(self, other: Histogram) -> None:
        self._h.add(other._h)

    def encode(self) -> bytes:
        """A compact form for sending between processes."""
        return bytes(self._h.encode())

    @classmethod
    def decode(cls, data: bytes) -> Histogram:
        h = cls()
        h._h = HdrHistogram.decode(data)
        return h
