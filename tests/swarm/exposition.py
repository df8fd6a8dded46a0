"""What /metrics must say, computed from the results files of the same run.

Every latency histogram loadcaller exports is fed the same nanosecond values
that turns.jsonl (``latency_ms``) and calls.jsonl (``greeting_ms``,
``setup_ms``) record, so each series' bucket counts and ``_sum`` follow from
those files. The files round to 1 us (milliseconds with 3 decimals), which
bounds what "exactly" can mean for a real run:

- a value is in a bucket by Prometheus's ``le`` rule, compared in whole
  microseconds; only a value whose rounded figure falls exactly on a bound
  (1 us in 50 ms, so almost never) may lie on either side of it;
- ``_sum`` agrees within 0.5 us per value, plus float rounding.

With values that are whole microseconds (unit tests), both are exact.
:func:`prometheus_quantile` is ``histogram_quantile`` as Prometheus computes it.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

Labels = tuple[tuple[str, str], ...]  # sorted (name, value) pairs, without le


@dataclass
class Series:
    """One histogram series as exported: cumulative buckets, count, sum."""

    buckets: list[tuple[float, float]]  # (upper bound, cumulative count), +Inf last
    count: float
    total: float


def scraped_histograms(text: str, name: str) -> dict[Labels, Series]:
    """The series of histogram ``name`` in a Prometheus text exposition."""
    out: dict[Labels, Series] = {}
    for family in text_string_to_metric_families(text):
        if family.name != name:
            continue
        for sample in family.samples:
            labels = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "le"))
            series = out.setdefault(labels, Series([], math.nan, math.nan))
            if sample.name == name + "_bucket":
                series.buckets.append((float(sample.labels["le"]), sample.value))
            elif sample.name == name + "_count":
                series.count = sample.value
            elif sample.name == name + "_sum":
                series.total = sample.value
    for series in out.values():
        series.buckets.sort()
    return out


def values_by_series(rows: Iterable[Mapping[str, Any]], field: str,
                     labels: Mapping[str, str]) -> dict[Labels, list[float]]:
    """Non-null ``field`` values (ms) of results rows, grouped by metric labels.

    ``labels`` maps a metric label to the row key that holds its value.
    """
    out: dict[Labels, list[float]] = {}
    for row in rows:
        if row[field] is None:
            continue
        key = tuple(sorted((label, str(row[k])) for label, k in labels.items()))
        out.setdefault(key, []).append(row[field])
    return out


def _us(ms: float) -> int:
    return round(ms * 1000)


def assert_series_match(scraped: Mapping[Labels, Series], values_ms: Mapping[Labels, list[float]],
                        bounds: tuple[float, ...], *, whole_us: bool) -> None:
    """Each exported series has exactly the buckets and sum its values give.

    ``whole_us``: the values are exact (whole microseconds), so nothing is
    ambiguous and the sum is held to 1e-9 relative.
    """
    # series declared at zero before any call (so rate() sees the first turn) hold nothing
    empty = {labels for labels in set(scraped) - set(values_ms) if scraped[labels].count == 0}
    assert set(scraped) - empty == set(values_ms), (sorted(scraped), sorted(values_ms))
    bounds_us = [round(b * 1_000_000) for b in bounds]
    for labels, values in values_ms.items():
        series = scraped[labels]
        where = dict(labels)
        assert [b for b, _ in series.buckets] == [*bounds, math.inf], where
        cumulative = [int(c) for _, c in series.buckets]
        assert all(c == n for (_, c), n in zip(series.buckets, cumulative, strict=True))
        us = sorted(_us(v) for v in values)
        assert series.count == len(us) == cumulative[-1], (where, series.count, len(us))
        for bound, n in zip(bounds_us, cumulative[:-1], strict=True):
            at_most = bisect.bisect_right(us, bound)  # le: values <= bound
            on_bound = at_most - bisect.bisect_left(us, bound)
            low = at_most if whole_us else at_most - on_bound
            assert low <= n <= at_most, (
                f"{where} le={bound / 1e6:g}: exported {n}, the file says {at_most}"
                + (f" ({on_bound} within 0.5 us of the bound)" if on_bound and not whole_us
                   else ""))
        expected_s = math.fsum(values) / 1000.0
        slack = 1e-9 * abs(expected_s) + (0.0 if whole_us else 0.5e-6 * len(values))
        assert abs(series.total - expected_s) <= slack, (
            f"{where} _sum {series.total!r} s, the file says {expected_s!r} s "
            f"(off by {(series.total - expected_s) * 1e3:.6f} ms, allowed {slack * 1e3:.6f} ms)")


def prometheus_quantile(q: float, buckets: list[tuple[float, float]]) -> float:
    """``histogram_quantile(q, ...)`` over classic buckets, as Prometheus 2.x does it.

    promql/quantile.go ``bucketQuantile``: the rank is ``q`` times the count;
    the first bucket whose cumulative count reaches it holds the quantile,
    linearly interpolated between the bucket's lower bound (0 for the first
    bucket) and its upper bound; in the +Inf bucket, the highest finite bound.
    """
    buckets = sorted(buckets)
    assert buckets and math.isinf(buckets[-1][0]), buckets
    counts = [c for _, c in buckets]
    assert counts == sorted(counts), "buckets not monotonic; Prometheus would patch them"
    assert len(set(b for b, _ in buckets)) == len(buckets), "duplicate bounds"
    observations = counts[-1]
    if len(buckets) < 2 or observations == 0:
        return math.nan
    rank = q * observations
    b = next((i for i in range(len(buckets) - 1) if counts[i] >= rank), len(buckets) - 1)
    if b == len(buckets) - 1:
        return buckets[-2][0]
    if b == 0 and buckets[0][0] <= 0:
        return buckets[0][0]
    start, end, count = 0.0, buckets[b][0], counts[b]
    if b > 0:
        start = buckets[b - 1][0]
        count -= counts[b - 1]
        rank -= counts[b - 1]
    return start + (end - start) * (rank / count)
