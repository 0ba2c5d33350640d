"""Do a file's memory figures depend on where it comes in the run? The same bundle benched in manifest order and in
reverse, with each file measured in a fresh process (the runner's default) and all in one process (as before).

Runs ``runners.bench.run_bench`` (the runner itself) four times: {fresh process, one process} x {forward, reverse},
one short timing round each (memory is measured when a file is first loaded, so rounds do not matter here). Prints,
per way, how many files' figures (rss_before, rss_after_load, rss_peak, load_increment, peak_increment) differ by
more than 5% between the two orders, and the largest difference; the last line is the largest relative difference
of any figure of any file with fresh processes (issue 13, criterion 4: below 0.05).

    .venv/bin/python benchmarks/memory_order.py --bundle build/bundle [--threads 1] [--models GLOB]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from runners.bench import run_bench  # noqa: E402
from runners.bundle import load_manifest  # noqa: E402
from runners.settings import BenchSettings  # noqa: E402

FIGURES = ("rss_before", "rss_after_load", "rss_peak", "load_increment", "peak_increment")
TOLERANCE = 0.05


def memory_by_file(result: dict) -> dict[tuple[str, str], dict]:
    return {(m["name"], m["file"]): m["memory_mb"] for m in result["models"] if m["status"] == "ok"}


def relative_difference(a: float, b: float) -> float:
    """|a - b| relative to the larger of the two (0 when both are 0)."""
    scale = max(abs(a), abs(b))
    return 0.0 if scale == 0 else abs(a - b) / scale


def compare(forward: dict, backward: dict) -> list[tuple[float, str, str]]:
    """(relative difference, file, figure) for every figure of every file measured both ways, largest first."""
    one, two = memory_by_file(forward), memory_by_file(backward)
    out = []
    for key in one.keys() & two.keys():
        for figure in FIGURES:
            a, b = one[key].get(figure), two[key].get(figure)
            if a is not None and b is not None:
                out.append((relative_difference(a, b), key[1], figure))
    return sorted(out, reverse=True)


def main(argv: list[str] | None = None) -> float:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle", type=Path, default=REPO / "build" / "bundle")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--models", default=None, help="glob over model names (default: all)")
    args = ap.parse_args(argv)
    manifest = load_manifest(args.bundle)
    reverse = {**manifest, "models": manifest["models"][::-1]}
    worst_fresh = float("nan")
    for isolation in ("process", "none"):
        settings = BenchSettings(threads=args.threads, rounds=1, min_runs=20, min_seconds=0.02, warmup=5,
                                 aa_control=False, models=args.models, memory_isolation=isolation)
        runs = [run_bench(args.bundle, settings, progress=lambda line: None, manifest=m) for m in (manifest, reverse)]
        differences = compare(*runs)
        files = {f for _, f, _ in differences}
        over = {f for d, f, _ in differences if d > TOLERANCE}
        worst, worst_file, worst_figure = differences[0]
        way = "fresh process per file" if isolation == "process" else "one process for all files"
        print(f"{way}: {len(over)} of {len(files)} files have a memory figure more than {TOLERANCE:.0%} apart "
              f"between the two orders; largest {worst:.1%} ({worst_figure} of {worst_file})", flush=True)
        for d, f, figure in differences[:3]:
            print(f"    {d:7.2%} {figure:15s} {f}")
        if isolation == "process":
            worst_fresh = worst
    print(f"largest relative difference between orders, fresh processes: {worst_fresh:.4f}")
    return worst_fresh


if __name__ == "__main__":
    main()
