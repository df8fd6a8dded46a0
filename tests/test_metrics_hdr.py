"""Prometheus buckets from HdrHistograms: the vectorised path equals the recorded iterator."""

import bisect
import random

import numpy as np
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


def test_recording_many_values_at_once_is_recording_each() -> None:
    """The media clock records its figures thousands at a time (record_many_ns):
    every bucket, the count, min and max must be what one record per value gives,
    including values under 1 us, at bucket edges and past the histogram's range."""
    rng = np.random.default_rng(7)
    edges = [0, 1, 999, 1_000, 1_001, 2_047_000, 2_048_000, 2_049_000, 123_456_789,
             3_600_000_000_000, 3_600_000_999_999, 10**16, 2**40]
    values = np.concatenate([rng.exponential(400_000, 5000).astype(np.int64),
                             rng.integers(0, 10**12, 500), np.array(edges, dtype=np.int64)])
    one, many = Histogram(), Histogram()
    for v in values.tolist():
        one.record_ns(v)
    many.record_many_ns(values[:3000])
    many.record_many_ns(values[3000:])
    assert np.array_equal(one._counts(), many._counts())
    assert (one.count, one._h.min_value, one._h.max_value) == (
        many.count, many._h.min_value, many._h.max_value)
    assert one.summary_ms() == many.summary_ms()


def test_a_summary_leaves_no_thread_spinning() -> None:
    """A histogram's summary must not wake numpy's BLAS thread: OpenBLAS spins it for
    0.1 s of a core after a dot product over the 23,000 buckets, beside the agent under
    test. Run in a fresh interpreter, so other tests' threads do not count."""
    import subprocess
    import sys

    code = """
import os, time
from loadcaller.calls.histogram import Histogram
from loadcaller.metrics import BucketHistogram
def ticks():
    me = os.getpid()
    out = {}
    for t in os.listdir("/proc/self/task"):
        if int(t) != me:
            f = open(f"/proc/self/task/{t}/stat").read().rsplit(")", 1)[1].split()
            out[t] = int(f[11]) + int(f[12])
    return out
h = Histogram()
for v in range(1_000, 50_000_000, 997):
    h.record_ns(v)
before = ticks()
h.summary_ms()
BucketHistogram.from_hdr(h.encode(), (0.001, 0.01, 0.1, 1.0))
time.sleep(0.3)
after = ticks()
print(max([after[t] - before.get(t, 0) for t in after] or [0]))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    assert int(out.strip()) <= 3  # clock ticks (10 ms each) of every other thread
