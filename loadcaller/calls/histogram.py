"""Full-resolution latency histograms (HdrHistogram), merged and summarised.

Percentiles always come from these, never from rounded figures. Values are
recorded in microseconds, 1 us to 1 hour, three significant digits.
"""

from __future__ import annotations

import functools

import numpy as np
from hdrh.histogram import HdrHistogram

_LOWEST_US = 1
_HIGHEST_US = 3_600_000_000
_DIGITS = 3


@functools.cache
def _bucket_values() -> tuple[np.ndarray, np.ndarray]:
    """Per counts index: highest equivalent value and median equivalent value."""
    h = HdrHistogram(_LOWEST_US, _HIGHEST_US, _DIGITS)
    low = np.array([h.get_value_from_index(i) for i in range(h.counts_len)], dtype=np.float64)
    high = np.array([h.get_highest_equivalent_value(int(v)) for v in low], dtype=np.float64)
    return high, (low + high) / 2.0


def warm_histograms() -> None:
    """Build the bucket tables (tens of ms) before a run rather than during it."""
    _bucket_values()


class Histogram:
    """A latency histogram in microseconds with a summary in milliseconds."""

    __slots__ = ("_h",)

    def __init__(self) -> None:
        self._h = HdrHistogram(_LOWEST_US, _HIGHEST_US, _DIGITS)

    def record_ns(self, value_ns: int, count: int = 1) -> None:
        us = max(_LOWEST_US, min(_HIGHEST_US, value_ns // 1000))
        self._h.record_value(us, count)

    def record_many_ns(self, values_ns: np.ndarray) -> None:
        """Record many values (ns) at once: :meth:`record_ns` of each, vectorised.

        HdrHistogram's own record is pure Python, a few microseconds a value: 4,096
        send-jitter values took 1.5-12 ms, long enough to make the media clock's
        next sub-tick late. Here the counts index of every value is computed as
        HdrHistogram computes it, in numpy, and the counts added in one pass.
        """
        if values_ns.size == 0:
            return
        h = self._h
        us = np.clip(values_ns // 1000, _LOWEST_US, _HIGHEST_US).astype(np.int64)
        # bucket: the smallest power of 2 holding the value (HdrHistogram's 64 - clz)
        pow2ceiling = np.frexp((us | h.sub_bucket_mask).astype(np.float64))[1].astype(np.int64)
        bucket = pow2ceiling - h.unit_magnitude - (h.sub_bucket_half_count_magnitude + 1)
        sub_bucket = us >> (bucket + h.unit_magnitude)
        index = ((bucket + 1) << h.sub_bucket_half_count_magnitude) + sub_bucket \
            - h.sub_bucket_half_count
        added = np.bincount(index)  # up to the largest index only: short for µs values
        counts = self._counts()
        counts[: len(added)] += added.astype(counts.dtype)
        h.total_count += int(us.size)
        h.min_value = min(h.min_value, int(us.min()))
        h.max_value = max(h.max_value, int(us.max()))

    @property
    def count(self) -> int:
        return int(self._h.get_total_count())

    def _counts(self) -> np.ndarray:
        return np.ctypeslib.as_array(self._h.counts)[: self._h.counts_len]

    def percentiles_ms(self, qs: tuple[float, ...]) -> list[float]:
        """Values at percentiles ``qs`` (0-100), as HdrHistogram defines them.

        Vectorised over the counts array: the pure-Python iteration takes
        milliseconds per call, too long for the event loop of a busy run.
        """
        counts = self._counts()
        cum = np.cumsum(counts, dtype=np.int64)
        total = int(cum[-1])
        high, _ = _bucket_values()
        out = []
        for q in qs:
            target = max(1, int(q / 100.0 * total + 0.5))
            idx = int(np.searchsorted(cum, target, side="left"))
            out.append(round(float(high[min(idx, len(high) - 1)]) / 1000.0, 3))
        return out

    def percentile_ms(self, q: float) -> float:
        return self.percentiles_ms((q,))[0]

    def summary_ms(self) -> dict[str, float | int | None]:
        """count, p50, p90, p95, p99, max and mean in milliseconds (None when empty)."""
        total = self.count
        if total == 0:
            return {"count": 0, "p50": None, "p90": None, "p95": None, "p99": None, "max": None,
                    "mean": None}
        p50, p90, p95, p99 = self.percentiles_ms((50, 90, 95, 99))
        counts = self._counts()
        high, mid = _bucket_values()
        last = int(np.flatnonzero(counts)[-1])
        # not np.dot: on 23,000 buckets OpenBLAS hands a dot product to its thread, which
        # then spins for 0.1 s of a core (beside the agent under test) after every summary
        mean = float(np.multiply(counts, mid).sum()) / total
        return {
            "count": total,
            "p50": p50,
            "p90": p90,
            "p95": p95,
            "p99": p99,
            "max": round(float(high[last]) / 1000.0, 3),
            "mean": round(mean / 1000.0, 3),
        }

    def copy(self) -> Histogram:
        """An independent copy."""
        out = Histogram()
        out.merge(self)
        return out

    def merge(self, other: Histogram) -> None:
        self._h.add(other._h)

    def recorded(self) -> tuple[np.ndarray, np.ndarray]:
        """The recorded buckets: (highest equivalent value in us, count), non-empty only.

        The same values HdrHistogram's recorded iterator yields, from the counts array
        at once (the iterator costs about 30 ms per 10^5 values in pure Python).
        """
        counts = self._counts()
        high = _bucket_values()[0]
        if len(counts) != len(high):  # a histogram of other parameters: iterate
            items = list(self._h.get_recorded_iterator())
            return (np.array([i.value_iterated_to for i in items], dtype=np.float64),
                    np.array([i.count_added_in_this_iter_step for i in items], dtype=np.int64))
        nz = np.flatnonzero(counts)
        return high[nz], counts[nz].astype(np.int64)

    def encode(self) -> bytes:
        """A compact form for sending between processes."""
        return bytes(self._h.encode())

    @classmethod
    def decode(cls, data: bytes) -> Histogram:
        h = cls()
        h._h = HdrHistogram.decode(data)
        return h
