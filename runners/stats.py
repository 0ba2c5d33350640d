"""The one definition of the latency numbers in a result: summary statistics and the median's 95% interval.

Pure numpy and math on a list of per-call latencies, so the report and the benchmarks can recompute exactly what
the runner wrote.
"""

from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np

CI_METHOD = "order-statistic (binomial), distribution-free"   # how p50_ci95 is made, written into every result
LATENCY_KEYS = ("n", "mean", "std", "min", "p50", "p90", "p99", "max", "p50_ci95")


def p50_ci95(sorted_ms: np.ndarray) -> list[float] | None:
    """95% confidence interval of the median as two order statistics [x_(m), x_(n-1-m)] (0-based).

    Why order statistics: latency is skewed with a long tail, so a distribution-free interval (the number of
    samples below the true median is Binomial(n, 1/2)) is honest where a normal approximation is not.
    ``m`` is the largest index with P(B <= m) <= 0.025, so the coverage is 1 - 2 P(B <= m) >= 0.95.
    Returns None when n < 6 (no pair of order statistics reaches 95%).
    """
    n = int(len(sorted_ms))
    if n < 6:
        return None
    log_half_n = n * math.log(0.5)
    lg_n1 = math.lgamma(n + 1)
    # Binomial terms more than 8 sd below the mean sum to < 1e-15; start there so large n stays cheap.
    start = max(0, int(n / 2 - 8 * math.sqrt(n) / 2))
    cdf = 0.0
    m = -1
    for i in range(start, n // 2 + 1):
        cdf += math.exp(lg_n1 - math.lgamma(i + 1) - math.lgamma(n - i + 1) + log_half_n)
        if cdf > 0.025:
            break
        m = i
    if m < 0:
        return None
    return [float(sorted_ms[m]), float(sorted_ms[n - 1 - m])]


def latency_stats(times_ms: Iterable[float] | np.ndarray) -> dict[str, Any]:
    """n, mean, std (sample), min, p50, p90, p99, max and p50_ci95 of per-run latencies in milliseconds."""
    a = np.sort(np.asarray(times_ms, dtype=np.float64))
    n = int(a.size)
    if n == 0:
        return empty_latency()
    p50, p90, p99 = (float(v) for v in np.percentile(a, [50, 90, 99]))
    return {
        "n": n,
        "mean": float(a.mean()),
        "std": float(a.std(ddof=1)) if n > 1 else 0.0,
        "min": float(a[0]),
        "p50": p50,
        "p90": p90,
        "p99": p99,
        "max": float(a[-1]),
        "p50_ci95": p50_ci95(a),
    }


def empty_latency() -> dict[str, Any]:
    """The latency_ms object of a file that was not timed: every key present, every value null."""
    return {k: None for k in LATENCY_KEYS}
