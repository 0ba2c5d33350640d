"""Do a run's speed-up intervals hold what other runs measure? Issue 13's test of the paired intervals, on real runs.

Give it two or more results of `runner bench` on the same bundle with the same settings (for example three
`make bench` runs, or three `runner bench BUNDLE --threads 1`). For every file timed beside a dense reference, each
run's paired ratio (`ratio_to_reference`: median of the per-round ratios, t interval on their logs; the number the
report prints for a single seed) is checked against the point estimates of every other run. Prints, per file, each
run's speed-up with its interval and how many of the other runs' points it holds; then the totals, and the median
over files of two spreads: the spread of the point estimates between runs (sd of their logs) and the spread the
intervals claim (half-width of the log interval / t). A between-run spread well above the claimed one means runs
differ by more than rounds within a run do.

    .venv/bin/python benchmarks/replication.py RESULT.json RESULT.json [RESULT.json ...] [--files GLOB]
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import math
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from runners.stats import t_critical  # noqa: E402


def speedups(result: dict) -> dict[str, tuple[float, float, float, int]]:
    """file -> (speed-up, low, high, rounds): the reference's time over the file's, from ratio_to_reference."""
    out = {}
    for entry in result["models"]:
        ratio = entry.get("ratio_to_reference")
        if entry.get("status") != "ok" or not ratio or not ratio.get("ci95"):
            continue
        low, high = ratio["ci95"]
        key = entry["file"] + (f" [{entry['role']}]" if entry.get("role") else "")
        out[key] = (1 / ratio["median"], 1 / high, 1 / low, ratio["n"])
    return out


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", type=Path)
    parser.add_argument("--files", default="*", help="only files matching this glob")
    args = parser.parse_args(argv)
    if len(args.results) < 2:
        parser.error("give two or more results")
    runs = [speedups(json.loads(p.read_text())) for p in args.results]
    files = sorted(f for f in set.intersection(*(set(r) for r in runs)) if fnmatch.fnmatch(f, args.files))
    held = checked = 0
    between, claimed = [], []
    for f in files:
        cells = []
        for i, run in enumerate(runs):
            point, low, high, n = run[f]
            others = [r[f][0] for j, r in enumerate(runs) if j != i]
            inside = sum(low <= o <= high for o in others)
            held, checked = held + inside, checked + len(others)
            cells.append(f"{point:.3g} [{low:.3g}, {high:.3g}] holds {inside}/{len(others)}")
            claimed.append(math.log(high / low) / 2 / t_critical(n - 1))
        between.append(statistics.stdev(math.log(r[f][0]) for r in runs))
        print(f"{f}: " + "; ".join(cells))
    if not checked:
        print("no file has a paired interval in every result")
        return float("nan")
    share = held / checked
    print(f"\n{len(files)} files, {len(runs)} runs: an interval held another run's point {held} of {checked} times "
          f"({share:.0%})")
    print(f"median over files: between-run sd of log speed-up {statistics.median(between):.4f}, "
          f"within-run sd claimed by the intervals (half-width / t) {statistics.median(claimed):.4f}")
    return share


if __name__ == "__main__":
    main()
