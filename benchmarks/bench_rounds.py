"""Does `runner bench --rounds R` make a long run's numbers steadier? Identical work, two ways, in one process.

Every fp32 file of the MNIST FFN's baseline, repeated-pruning and IMP variants runs the same dense
400-1024-1024-10 network (pruned weights are zeros in a dense GEMM; sparse initializers are densified at load),
so any spread of their p50 latencies within one run is the machine's noise and drift, not the models. This script
benches those files with `runners.bench.run_bench` (the runner itself) once as one window of S seconds per file
and once as R interleaved windows of S/R seconds (the same timing budget), alternating the two ways `--repeats`
times, and prints each run's spread (max/min of the files' p50). The last line is the ratio of the median excess
spreads (spread - 1, the part that is noise), R windows over one window: below 1, the rounds made the files agree
better.

    .venv/bin/python benchmarks/bench_rounds.py --bundle build/bundle [--threads 0] [--rounds 5] [--seconds 1]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from runners.contract import SAME_WEIGHTS_FORMATS  # noqa: E402
from runners.bench import run_bench  # noqa: E402
from runners.bundle import load_manifest  # noqa: E402
from runners.settings import BenchSettings  # noqa: E402

SAME_NETWORK = ("baseline", "repeated", "imp")


def same_network_manifest(manifest: dict, task: str) -> dict:
    """The manifest narrowed to the fp32 files of one task's unstructured variants (one network, many files)."""
    narrowed = copy.deepcopy(manifest)
    narrowed["models"] = []
    for model in manifest["models"]:
        if model.get("task") == task and model.get("experiment") in SAME_NETWORK:
            files = [f for f in model.get("files", []) if f.get("format") in SAME_WEIGHTS_FORMATS]
            if files:
                narrowed["models"].append({**model, "files": files})
    return narrowed


def spread(result: dict) -> tuple[float, float, float, int]:
    p50s = [m["latency_ms"]["p50"] for m in result["models"] if m["status"] == "ok"]
    return max(p50s) / min(p50s), min(p50s), max(p50s), len(p50s)


def main(argv: list[str] | None = None) -> float:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle", type=Path, default=REPO / "build" / "bundle")
    ap.add_argument("--task", default="mnist")
    ap.add_argument("--threads", type=int, default=0, help="intra-op threads (0 = onnxruntime default)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=1.0, help="timed seconds per file in all (split over rounds)")
    ap.add_argument("--repeats", type=int, default=2, help="how many times each way runs, alternating")
    args = ap.parse_args(argv)
    if args.rounds < 2:
        ap.error("--rounds must be at least 2 to compare with one window")
    manifest = same_network_manifest(load_manifest(args.bundle), args.task)
    if len(manifest["models"]) < 2:
        sys.exit(f"{args.bundle} has fewer than two {args.task} baseline/repeated/IMP models to compare")
    ways = {"one window": BenchSettings(threads=args.threads, min_runs=1, min_seconds=args.seconds, rounds=1),
            f"{args.rounds} rounds": BenchSettings(threads=args.threads, min_runs=1,
                                                   min_seconds=args.seconds / args.rounds, rounds=args.rounds)}
    print(f"{args.task}: {sum(len(m['files']) for m in manifest['models'])} files of one network, threads "
          f"{args.threads or 'default'}, {args.seconds:g} s of timed calls per file either way")
    spreads: dict[str, list[float]] = {way: [] for way in ways}
    for repeat in range(args.repeats):
        for way, settings in ways.items():
            result = run_bench(args.bundle, settings, progress=lambda line: None, manifest=manifest)
            ratio, lo, hi, n = spread(result)
            spreads[way].append(ratio)
            print(f"run {repeat + 1} {way:>10}: p50 over {n} files {lo:.4f}-{hi:.4f} ms, spread max/min {ratio:.3f}",
                  flush=True)
    one, rounds = (statistics.median(v) for v in spreads.values())
    ratio = (rounds - 1) / (one - 1) if one > 1 else float("nan")
    print(f"median spread: one window {one:.3f}, {args.rounds} rounds {rounds:.3f}")
    print(f"ratio excess spread rounds/one window: {ratio:.2f}")
    return ratio


if __name__ == "__main__":
    main()
