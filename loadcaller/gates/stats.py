"""The statistics ``loadcaller compare`` needs, in numpy (scipy is not a dependency).

Latency distributions are skewed and long-tailed, so nothing here assumes a
normal distribution:

- :func:`mann_whitney_greater`: the Mann-Whitney U test (one-sided: B's values
  tend to be larger than A's), by its normal approximation with the tie
  correction and a continuity correction, exact enough from 20 samples a side;
- :func:`p95_shift_lower_bound`: a percentile bootstrap of the difference of the
  95th percentiles, for a tail that moved while the median did not;
- :func:`answered_drop`: Fisher's exact test, one-sided (B's proportion is
  lower), for answered turns: exact at any sample size, so 8 unanswered turns
  against 120 answered ones are judged, where a z test's normal approximation
  would not hold.

Randomness comes from a ``numpy.random.Generator`` passed in: a seed
reproduces a comparison.
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np

BOOTSTRAP_RESAMPLES: Final = 1000
BOOTSTRAP_MAX_SAMPLES: Final = 5000
"""A larger side is subsampled (without replacement) for the bootstrap only:
5,000 values pin a p95 well, and 1,000 resamples of 100,000 would take seconds."""


def _norm_sf(z: float) -> float:
    """P(Z > z) for a standard normal Z."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def _average_ranks(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """1-based ranks with ties averaged, and the size of each tie group."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    average = ends - (counts - 1) / 2.0  # mean of the ranks start..end of each group
    return average[inverse], counts


def mann_whitney_greater(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(p-value, probability of superiority) for "B tends to exceed A".

    The probability of superiority is U_B / (n_A n_B): 0.5 when neither side
    tends to be larger, 1.0 when every B exceeds every A.
    """
    na, nb = len(a), len(b)
    if na == 0 or nb == 0:
        return 1.0, 0.5
    ranks, ties = _average_ranks(np.concatenate([a, b]))
    n = na + nb
    u_b = float(ranks[na:].sum()) - nb * (nb + 1) / 2.0
    mean = na * nb / 2.0
    tie_term = float((ties.astype(np.float64) ** 3 - ties).sum()) / (n * (n - 1)) if n > 1 else 0
    var = na * nb / 12.0 * ((n + 1) - tie_term)
    if var <= 0:  # every value equal
        return 1.0, 0.5
    z = (u_b - mean - 0.5) / math.sqrt(var)
    return _norm_sf(z), u_b / (na * nb)


def _subsample(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    if len(x) <= BOOTSTRAP_MAX_SAMPLES:
        return x
    return rng.choice(x, size=BOOTSTRAP_MAX_SAMPLES, replace=False)


def _boot_p95(x: np.ndarray, rng: np.random.Generator, resamples: int) -> np.ndarray:
    out = np.empty(resamples)
    chunk = max(1, 2_000_000 // max(1, len(x)))  # bound the index array's memory
    for start in range(0, resamples, chunk):
        k = min(chunk, resamples - start)
        idx = rng.integers(0, len(x), size=(k, len(x)))
        out[start:start + k] = np.percentile(x[idx], 95, axis=1)
    return out


def p95_shift_lower_bound(a: np.ndarray, b: np.ndarray, alpha: float,
                          rng: np.random.Generator,
                          resamples: int = BOOTSTRAP_RESAMPLES) -> float:
    """One-sided (1 - alpha) lower confidence bound of p95(B) - p95(A), bootstrapped."""
    sa, sb = _subsample(a, rng), _subsample(b, rng)
    diffs = _boot_p95(sb, rng, resamples) - _boot_p95(sa, rng, resamples)
    return float(np.quantile(diffs, alpha))


def _log_comb(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def answered_drop(k_a: int, n_a: int, k_b: int, n_b: int) -> float:
    """p-value of "B's proportion k_b/n_b is lower than A's k_a/n_a" (Fisher's exact test,
    one-sided): given the k_a + k_b successes of both, the hypergeometric probability
    that B's n_b trials hold k_b of them or fewer."""
    if n_a == 0 or n_b == 0:
        return 1.0
    n, k = n_a + n_b, k_a + k_b
    lo = max(0, k - n_a)  # the fewest successes B can hold
    log_top = _log_comb(k, k_b) + _log_comb(n - k, n_b - k_b) - _log_comb(n, n_b)
    # P(X = x - 1) / P(X = x), from x = k_b down to lo + 1, in one array: a sum of
    # up to a million terms without a million lgamma calls
    x = np.arange(k_b, lo, -1, dtype=np.float64)
    steps = np.log(x) + np.log(n_a - k + x) - np.log(k - x + 1) - np.log(n_b - x + 1)
    logs = np.concatenate(([log_top], log_top + np.cumsum(steps)))
    peak = float(logs.max())
    return min(1.0, math.exp(peak) * float(np.exp(logs - peak).sum()))
