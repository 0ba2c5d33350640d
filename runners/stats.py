"""The one definition of the latency numbers in a result and of the intervals the report prints.

Pure numpy and math, so the report and the benchmarks recompute exactly what the runner wrote, and the runner
needs nothing beyond its requirements (no scipy on the device).

Two kinds of interval:
- Within one timing window, `p50_ci95` is an order-statistic interval for the median of that window's calls. Calls
  of one window are not independent draws of the device's speed (a slow spell moves them together), so it is kept
  as a diagnostic only: it describes the window, not the file.
- Between windows, `log_t_interval` and `ratio_interval` treat each window (or each round's ratio of two windows
  timed next to each other) as one observation: a t interval on the logarithms, reported back as a factor. Why t
  on logs and not a bootstrap: a run has 5 to 10 rounds, and a percentile bootstrap of so few values covers far less
  than its nominal 95% (benchmarks/interval_coverage.py measures both); logs make a ratio's interval the same
  whichever file is the numerator and fit multiplicative timing noise.
"""

from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np

CI_METHOD = "order-statistic (binomial), distribution-free"   # how p50_ci95 is made, written into every result
ROUNDS_CI_METHOD = "t interval on log p50 of each window (geometric mean)"   # p50_rounds_ci95
RATIO_CI_METHOD = "median of per-round ratios; 95% t interval on log per-round ratios"   # ratio_to_reference
CONFIDENCE = 0.95
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


# ------------------------------------------------------------------------------------------- between windows
def _t_two_sided(t: float, df: int) -> float:
    """P(|T| <= t) for Student's t with `df` degrees of freedom, by the finite sums of Abramowitz & Stegun
    26.7.3-4 (exact for integer df). Written by hand because the runner cannot depend on scipy."""
    theta = math.atan(t / math.sqrt(df))
    cos2 = math.cos(theta) ** 2
    term = total = 1.0
    if df % 2 == 1:
        if df == 1:
            return 2 * theta / math.pi
        for k in range(1, (df - 3) // 2 + 1):
            term *= 2 * k / (2 * k + 1) * cos2
            total += term
        return 2 / math.pi * (theta + math.sin(theta) * math.cos(theta) * total)
    for k in range(1, (df - 2) // 2 + 1):
        term *= (2 * k - 1) / (2 * k) * cos2
        total += term
    return math.sin(theta) * total


def t_critical(df: float, confidence: float = CONFIDENCE) -> float:
    """The two-sided critical value of Student's t (2.776 for df 4 at 95%). A fractional df (Welch) is rounded
    down, which widens the interval slightly; above 1000 the normal quantile is within 0.1%."""
    df = int(math.floor(df))
    if df < 1:
        raise ValueError(f"t_critical needs at least one degree of freedom, not {df}")
    if df > 1000:
        from statistics import NormalDist

        return NormalDist().inv_cdf(0.5 + confidence / 2)
    lo, hi = 0.0, 1.0
    while _t_two_sided(hi, df) < confidence:
        hi *= 2
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _t_two_sided(mid, df) < confidence else (lo, mid)
    return (lo + hi) / 2


def _positive_logs(values: Iterable[Any]) -> np.ndarray | None:
    a = np.asarray([v for v in values if v is not None], dtype=np.float64)
    if a.size == 0 or not np.all(np.isfinite(a)) or np.any(a <= 0):
        return None
    return np.log(a)


def log_t_interval(values: Iterable[Any], confidence: float = CONFIDENCE) -> list[float] | None:
    """The t interval of the geometric mean of positive values (one per window or round), as [low, high]; None
    for fewer than two values or a non-positive one."""
    logs = _positive_logs(values)
    if logs is None or logs.size < 2:
        return None
    half = t_critical(logs.size - 1, confidence) * logs.std(ddof=1) / math.sqrt(logs.size)
    centre = logs.mean()
    return [float(math.exp(centre - half)), float(math.exp(centre + half))]


def ratio_interval(numerators: Iterable[Any], denominators: Iterable[Any], confidence: float = CONFIDENCE
                   ) -> dict[str, Any] | None:
    """A paired ratio over rounds: round i gives numerators[i] / denominators[i] (two windows timed next to each
    other); returns {"median", "ci95", "n", "rounds"}: the median of the per-round ratios, the t interval of their
    geometric mean (None below two rounds) and the ratios themselves. Rounds where either side is missing are
    skipped; None when no round has both."""
    ratios = [a / b for a, b in zip(numerators, denominators)
              if a is not None and b is not None and a > 0 and b > 0]
    if not ratios:
        return None
    return {"median": float(np.median(ratios)), "ci95": log_t_interval(ratios, confidence), "n": len(ratios),
            "rounds": [float(r) for r in ratios]}


def unpaired_ratio_interval(numerators: Iterable[Any], denominators: Iterable[Any],
                            confidence: float = CONFIDENCE) -> dict[str, Any] | None:
    """The ratio of two files' window p50s that were not timed side by side (another run, another device):
    the ratio of the geometric means with a Welch t interval on the logs (Welch-Satterthwaite degrees of
    freedom, rounded down); {"median", "ci95", "n"} as ratio_interval, `median` being the ratio of the medians."""
    a, b = _positive_logs(numerators), _positive_logs(denominators)
    if a is None or b is None:
        return None
    point = float(math.exp(np.median(a) - np.median(b)))
    if a.size < 2 or b.size < 2:
        return {"median": point, "ci95": None, "n": int(min(a.size, b.size))}
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    diff = a.mean() - b.mean()
    if va + vb == 0:
        return {"median": point, "ci95": [float(math.exp(diff))] * 2, "n": int(min(a.size, b.size))}
    df = (va + vb) ** 2 / (va ** 2 / (a.size - 1) + vb ** 2 / (b.size - 1))
    half = t_critical(df, confidence) * math.sqrt(va + vb)
    return {"median": point, "ci95": [float(math.exp(diff - half)), float(math.exp(diff + half))],
            "n": int(min(a.size, b.size))}
