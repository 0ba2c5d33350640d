"""Which interval should a speed-up over a few rounds carry? Coverage of the t interval on log ratios against a
percentile bootstrap, on simulated rounds.

Each simulated run has R rounds; in every round the machine's speed drifts (log-normal, sd `--drift`), and both
files' windows share that drift plus their own noise (sd `--noise`). The paired ratio of each round goes to
``runners.stats.ratio_interval`` (t on log ratios, the interval the runner and the report print) and to a percentile
bootstrap of the geometric mean of the same ratios (2,000 resamples). Prints, per R, how often each interval
contains the true ratio (nominal 95%) and its median width; the last line is the bootstrap's coverage over the t
interval's at 5 rounds (below 1: the bootstrap claims more than the data hold). Simulation only, no timing.

Then the question a reader who repeats a run asks: how often does one run's interval hold another run's point
estimate (the median of its per-round ratios, as printed)? A 95% interval for the true ratio holds a repeat's point
estimate far less often than 95% (Cumming and Maillardet 2006: about 83% for a mean, whatever the number of
rounds), because the repeat's point has its own error. Printed per R: that share for one pair of runs, and the
share of three-run sets in which each run's interval holds both other points (issue 13's criterion 1), for the
t interval and for the interval a repeat's point falls in (t on logs with sd * sqrt(1/R + 1/R)), with normal
round-to-round noise and with 10% of rounds slowed by a 3-sd spell.

    .venv/bin/python benchmarks/interval_coverage.py [--runs 4000] [--drift 0.15] [--noise 0.03]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from runners.stats import ratio_interval, t_critical  # noqa: E402

TRUE_RATIO = 2.5


def coverage(rounds: int, runs: int, drift: float, noise: float, rng: np.random.Generator) -> dict[str, tuple]:
    hits = {"t on logs": 0, "bootstrap": 0}
    widths: dict[str, list[float]] = {"t on logs": [], "bootstrap": []}
    for _ in range(runs):
        speed = rng.normal(0, drift, rounds)
        dense = np.exp(speed + rng.normal(0, noise, rounds))
        pruned = np.exp(speed + rng.normal(0, noise, rounds)) / TRUE_RATIO
        lo, hi = ratio_interval(dense, pruned)["ci95"]
        logs = np.log(dense / pruned)
        means = np.exp(logs[rng.integers(0, rounds, (2000, rounds))].mean(axis=1))
        b_lo, b_hi = np.percentile(means, [2.5, 97.5])
        for name, (a, b) in {"t on logs": (lo, hi), "bootstrap": (b_lo, b_hi)}.items():
            hits[name] += a <= TRUE_RATIO <= b
            widths[name].append(b / a)
    return {name: (hits[name] / runs, float(np.median(widths[name]))) for name in hits}


def replication(rounds: int, runs: int, sd: float, rng: np.random.Generator, spells: float = 0.0
                ) -> dict[str, tuple[float, float]]:
    """{interval: (share of run pairs where one run's interval holds the other's point, share of three-run sets
    where every interval holds both other points)} for per-round log ratios with sd `sd`, a share `spells` of
    rounds slowed by 3 sd."""
    logs = rng.normal(0, sd, (runs, 3, rounds)) + np.log(TRUE_RATIO)
    logs += 3 * sd * (rng.random((runs, 3, rounds)) < spells)
    points = np.median(logs, axis=2)
    means, sds = logs.mean(axis=2), logs.std(axis=2, ddof=1)
    t = t_critical(rounds - 1)
    half = {"t interval": t * sds / np.sqrt(rounds), "repeat interval": t * sds * np.sqrt(2 / rounds)}
    out = {}
    for name, h in half.items():
        holds = np.ones((runs,), bool)
        pair_hits = 0
        for i in range(3):
            for j in range(3):
                if i != j:
                    hit = np.abs(points[:, j] - means[:, i]) <= h[:, i]
                    pair_hits += hit.sum()
                    holds &= hit
        out[name] = (pair_hits / (6 * runs), float(holds.mean()))
    return out


def main(argv: list[str] | None = None) -> float:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=4000)
    ap.add_argument("--drift", type=float, default=0.15, help="sd of the log speed of the machine between rounds")
    ap.add_argument("--noise", type=float, default=0.03, help="sd of each window's own log noise")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    print(f"true ratio {TRUE_RATIO}, {args.runs} simulated runs per row; coverage of the 95% interval "
          f"(median width as high/low)")
    at_five = None
    for rounds in (3, 5, 8, 10, 20):
        result = coverage(rounds, args.runs, args.drift, args.noise, rng)
        cells = "  ".join(f"{name} {cov:.3f} (x{width:.3f})" for name, (cov, width) in result.items())
        print(f"{rounds:2d} rounds: {cells}", flush=True)
        if rounds == 5:
            at_five = result["bootstrap"][0] / result["t on logs"][0]
    print(f"ratio coverage bootstrap/t at 5 rounds: {at_five:.3f}")
    print(f"\na run's interval and the point estimates of repeat runs ({args.runs} simulated three-run sets per row): "
          f"share of pairs held, share of sets where all six are held")
    for spells in (0.0, 0.1):
        for rounds in (5, 10, 20):
            result = replication(rounds, args.runs, args.noise, rng, spells)
            cells = "  ".join(f"{name} {pair:.3f} / all six {every:.3f}" for name, (pair, every) in result.items())
            print(f"{'10% slow spells' if spells else 'normal noise':15s} {rounds:2d} rounds: {cells}", flush=True)
    return at_five


if __name__ == "__main__":
    main()
