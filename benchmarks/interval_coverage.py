"""Which interval should a speed-up over a few rounds carry? Coverage of the t interval on log ratios against a
percentile bootstrap, on simulated rounds.

Each simulated run has R rounds; in every round the machine's speed drifts (log-normal, sd `--drift`), and both
files' windows share that drift plus their own noise (sd `--noise`). The paired ratio of each round goes to
``runners.stats.ratio_interval`` (t on log ratios, the interval the runner and the report print) and to a percentile
bootstrap of the geometric mean of the same ratios (2,000 resamples). Prints, per R, how often each interval
contains the true ratio (nominal 95%) and its median width; the last line is the bootstrap's coverage over the t
interval's at 5 rounds (below 1: the bootstrap claims more than the data hold). Simulation only, no timing.

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

from runners.stats import ratio_interval  # noqa: E402

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
    return at_five


if __name__ == "__main__":
    main()
