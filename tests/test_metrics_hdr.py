"""Prometheus buckets from HdrHistograms: the vectorised path equals the recorded iterator."""

import bisect
import random

from hdrh.histogram import HdrHistogram

from loadcaller import metrics as m
from loadcaller.calls.histogram import Histogram


def by_iterator(blobs: list[bytes], bounds: tuple[float, ...]) -> tuple[list[int], float]:
    counts, total = [0] * (len(bounds) + 1), 0.0
    for blob in blobs:
        for item in HdrHistogram.decode(blob).get_recorded_iterator():
            value = item.value_iterated_to * 1e-6
            counts[bisect.bisect_left(bounds, value)] += item.count_added_in_this_iter_step
            total += value * item.count_added_in_this_iter_step
    return counts, total


def test_from_hdr_matches_hdrhistograms_own_iteration():
    rng = random.Random(7)
    blobs = []
    for _ in range(3):
        h = Histogram()
        for _ in range(20_000):
            h.record_ns(int(rng.lognormvariate(13, 1.6)))
        h.record_ns(5_000_000)  # exactly on a bucket bound (5 ms)
        blobs.append(h.encode())
    out = m.BucketHistogram.from_hdr(blobs, m.LAG_BUCKETS)
    counts, total = by_iterator(blobs, m.LAG_BUCKETS)
    assert out.counts == counts and out.count == 3 * 20_001
    assert abs(out.total - total) <= 1e-9 * total


def test_empty_histograms_give_empty_buckets():
    out = m.BucketHistogram.from_hdr([Histogram().encode()], m.LAG_BUCKETS)
    assert out.count == 0 and out.total == 0.0
