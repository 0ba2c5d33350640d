"""What does structured pruning buy in onnxruntime? Dense against structured variants, side by side, in one process.

For every structured variant of a bundle and the dense baseline of its model family (same seed), times the fp32
ONNX files with the runner's own measuring function (``runners.bench.bench_file``: same session options, calls
and statistics as ``runner bench``), for each thread setting, over several rounds whose order rotates so that
dense and pruned files share the machine's noise and drift. Prints, per variant and thread setting, the median
over rounds of the p50 latencies, the ratio dense/pruned (and its range over the rounds, which shows how much the
machine's noise moves it), the file size ratio and the device accuracy; the last
line is the ratio for ``--focus`` (default: the MNIST FFN with 50% of its hidden units removed) at the first
``--threads`` value.

    .venv/bin/python benchmarks/structured_speedup.py --bundle build/bundle [--threads 1,0] [--rounds 3]
"""

from __future__ import annotations

import argparse
import fnmatch
import re
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from runners.bench import bench_file  # noqa: E402
from runners.bundle import EvalSets, load_manifest  # noqa: E402
from runners.session import prime_onnxruntime  # noqa: E402
from runners.settings import BenchSettings  # noqa: E402

SEED_SUFFIX = re.compile(r"-s(\d+)$")


def pairs_to_time(manifest: dict) -> list[tuple[dict, dict, dict, dict]]:
    """(dense model, dense fp32 file, structured model, its fp32 file) for every structured variant with a baseline."""
    by_name = {m["name"]: m for m in manifest["models"]}

    def fp32(model: dict) -> dict | None:
        return next((f for f in model.get("files", []) if f.get("format") == "onnx"), None)

    out = []
    for model in manifest["models"]:
        if model.get("experiment") != "structured" or "-structured-" not in model["name"]:
            continue
        family = model["name"].split("-structured-")[0]
        seed = SEED_SUFFIX.search(model["name"])
        dense = by_name.get(f"{family}-baseline" + (seed.group(0) if seed else ""))
        if dense is not None and fp32(dense) and fp32(model):
            out.append((dense, fp32(dense), model, fp32(model)))
    return out


def main(argv: list[str] | None = None) -> float:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle", type=Path, default=REPO / "build" / "bundle")
    ap.add_argument("--threads", default="1,0", help="comma-separated intra-op thread counts (0 = onnxruntime default)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--min-seconds", type=float, default=1.0, help="timed seconds per file and round")
    ap.add_argument("--api", choices=("iobinding", "run"), default="iobinding")
    ap.add_argument("--focus", default="mnist-*-structured-neurons-l1-r50-*", help="glob of the last line's variant")
    args = ap.parse_args(argv)

    manifest = load_manifest(args.bundle)
    pairs = pairs_to_time(manifest)
    if not pairs:
        sys.exit(f"{args.bundle} holds no structured variant with a dense baseline of the same family")
    threads_list = [int(t) for t in args.threads.split(",")]
    evals = EvalSets(args.bundle, manifest.get("evals") or {})
    files: dict[str, tuple[dict, dict]] = {}  # path -> (model, file); a dense file shared by variants is timed once
    for dense, dense_file, model, model_file in pairs:
        files[dense_file["path"]] = (dense, dense_file)
        files[model_file["path"]] = (model, model_file)
    p50s: dict[tuple[str, int], list[float]] = {}
    accuracy: dict[str, float] = {}
    for threads in threads_list:
        prime_onnxruntime(BenchSettings(threads=threads))
    for r in range(args.rounds):
        for threads in threads_list:
            settings = BenchSettings(threads=threads, warmup=50, min_runs=200, min_seconds=args.min_seconds,
                                     api=args.api)
            order = list(files.values())
            shift = r % len(order)
            for model, entry in order[shift:] + order[:shift]:
                result = bench_file(args.bundle, model, entry, settings, evals)
                if result["status"] != "ok":
                    sys.exit(f"{entry['path']}: {result['error']}")
                p50s.setdefault((entry["path"], threads), []).append(result["latency_ms"]["p50"])
                accuracy[entry["path"]] = result["accuracy"]
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)

    print(f"bundle {args.bundle}, api {args.api}, {args.rounds} rounds, p50 = median over rounds of each round's p50")
    focus_ratio = None
    for threads in threads_list:
        print(f"\nthreads {threads or 'default'}:")
        print(f"  {'variant':48s} {'dense ms':>9s} {'pruned ms':>9s} {'speed-up':>8s} {'(rounds)':>13s} "
              f"{'file':>6s} {'acc %':>6s}")
        for dense, dense_file, model, model_file in pairs:
            d = statistics.median(p50s[(dense_file["path"], threads)])
            p = statistics.median(p50s[(model_file["path"], threads)])
            size = dense_file["bytes"] / model_file["bytes"]
            per_round = [a / b for a, b in zip(p50s[(dense_file["path"], threads)], p50s[(model_file["path"], threads)])]
            spread = f"{min(per_round):.2f}-{max(per_round):.2f}x"
            print(f"  {model['name']:48s} {d:9.4f} {p:9.4f} {d / p:7.2f}x {spread:>13s} {size:5.2f}x "
                  f"{100 * accuracy[model_file['path']]:6.2f}")
            if focus_ratio is None and threads == threads_list[0] and fnmatch.fnmatchcase(model["name"], args.focus):
                focus_ratio = (model["name"], d / p)
    if focus_ratio is None:
        sys.exit(f"no structured variant matches --focus {args.focus!r}")
    print(f"ratio dense/structured p50 ({focus_ratio[0]}, threads {threads_list[0] or 'default'}): {focus_ratio[1]:.2f}")
    return focus_ratio[1]


if __name__ == "__main__":
    main()
