"""runners.stats between windows: Student's t by hand (no scipy on the device), the t interval on logs, paired and
unpaired ratios. Deterministic; simulated data only, nothing timed."""

from __future__ import annotations

import math

import numpy as np
import pytest

from runners.stats import log_t_interval, ratio_interval, t_critical, unpaired_ratio_interval

# Two-sided 95% critical values of Student's t (any statistics table).
T_TABLE = {1: 12.706205, 2: 4.302653, 3: 3.182446, 4: 2.776445, 5: 2.570582, 6: 2.446912, 9: 2.262157,
           10: 2.228139, 20: 2.085963, 30: 2.042272, 100: 1.983972}


@pytest.mark.parametrize("df,value", sorted(T_TABLE.items()))
def test_t_critical_matches_the_table(df, value):
    assert t_critical(df) == pytest.approx(value, abs=2e-6)


def test_t_critical_other_levels_and_limits():
    assert t_critical(4, 0.90) == pytest.approx(2.131847, abs=2e-6)
    assert t_critical(10**6) == pytest.approx(1.959964, abs=1e-6)
    assert t_critical(4.9) == t_critical(4), "a Welch df is rounded down (a wider interval)"
    with pytest.raises(ValueError):
        t_critical(0)


def test_log_t_interval_is_the_geometric_mean_interval():
    values = [2.0, 2.2, 1.8, 2.1, 1.9]
    logs = np.log(values)
    half = 2.776445 * logs.std(ddof=1) / math.sqrt(5)
    lo, hi = log_t_interval(values)
    assert lo == pytest.approx(math.exp(logs.mean() - half)) and hi == pytest.approx(math.exp(logs.mean() + half))
    assert log_t_interval([2.0]) is None and log_t_interval([1.0, 0.0]) is None
    assert log_t_interval([3.0, 3.0, 3.0]) == pytest.approx([3.0, 3.0])


def test_ratio_interval_is_symmetric_in_which_side_is_the_numerator():
    a, b = [2.0, 2.3, 1.9, 2.2, 2.05], [1.0, 1.1, 0.95, 1.0, 1.02]
    forward, backward = ratio_interval(a, b), ratio_interval(b, a)
    assert forward["n"] == 5 and forward["median"] == pytest.approx(np.median(np.divide(a, b)))
    assert forward["ci95"][0] == pytest.approx(1 / backward["ci95"][1])
    assert forward["ci95"][1] == pytest.approx(1 / backward["ci95"][0])


def test_ratio_interval_skips_rounds_with_a_missing_side():
    result = ratio_interval([2.0, 2.0, 4.0], [1.0, None, 2.0])
    assert result["n"] == 2 and result["rounds"] == [2.0, 2.0] and result["ci95"] == [2.0, 2.0]
    assert ratio_interval([1.0], [None]) is None


def test_unpaired_ratio_uses_welch():
    a = [2.0, 2.2, 1.8, 2.1, 1.9, 2.05]
    b = [1.0, 1.3, 0.8]
    result = unpaired_ratio_interval(a, b)
    la, lb = np.log(a), np.log(b)
    va, vb = la.var(ddof=1) / 6, lb.var(ddof=1) / 3
    df = (va + vb) ** 2 / (va ** 2 / 5 + vb ** 2 / 2)
    half = t_critical(df) * math.sqrt(va + vb)
    assert result["ci95"] == pytest.approx([math.exp(la.mean() - lb.mean() - half),
                                            math.exp(la.mean() - lb.mean() + half)])
    assert result["median"] == pytest.approx(math.exp(np.median(la) - np.median(lb)))
    assert unpaired_ratio_interval([1.0], [2.0])["ci95"] is None


def test_the_paired_interval_covers_the_true_ratio_95_percent_of_the_time():
    """Five rounds of log-normal noise shared by both files plus their own: the t interval on log ratios should
    contain the true ratio in about 95% of runs; a percentile bootstrap of the same five ratios covers far less."""
    rng = np.random.default_rng(13)
    true_ratio, rounds, runs = 2.5, 5, 2000
    covered = bootstrap_covered = 0
    for _ in range(runs):
        drift = rng.normal(0, 0.15, rounds)                        # the machine's speed in each round
        dense = np.exp(drift + rng.normal(0, 0.03, rounds))
        pruned = np.exp(drift + rng.normal(0, 0.03, rounds)) / true_ratio
        lo, hi = ratio_interval(dense, pruned)["ci95"]
        covered += lo <= true_ratio <= hi
        ratios = dense / pruned
        means = np.exp(np.log(ratios[rng.integers(0, rounds, (400, rounds))]).mean(axis=1))
        b_lo, b_hi = np.percentile(means, [2.5, 97.5])
        bootstrap_covered += b_lo <= true_ratio <= b_hi
    assert 0.93 <= covered / runs <= 0.97
    assert bootstrap_covered / runs < 0.90, "why the runner does not bootstrap five rounds"
