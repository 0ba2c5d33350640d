"""What the experiment graph buys on this machine: the export with 1 and with 2 local Dask workers (each a fresh
runs folder, so every task runs), the work (sum of task times), the wall times, and the critical path, i.e. the
wall time unlimited workers would need. With --full-runs, the full profile's critical path is computed from the
task records (`task-*.json`) that a finished full export left in that runs folder, without running anything.

    python benchmarks/graph_speedup.py [--profile quick] [--seeds 1] [--tasks T] [--experiments E] [--workers 1,2]
                                       [--full-runs RUNS]
    python benchmarks/graph_speedup.py --manifests A/manifest.json B/manifest.json [--full-runs RUNS]

The last line is the speed-up of 2 workers over 1 (wall time ratio) beside the bound the critical path sets.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def run_export(profile: str, seeds: int, workers: int, folder: Path, tasks: str | None,
               experiments: str | None) -> dict:
    bundle = folder / f"bundle-w{workers}"
    args = [str(Path(sys.executable).parent / "harness"), "export", "--profile", profile, "--seeds", str(seeds),
            "--workers", str(workers), "--runs-dir", str(folder / f"runs-w{workers}"), "--out", str(bundle),
            "--quiet", *(["--tasks", tasks] if tasks else []), *(["--experiments", experiments] if experiments else [])]
    subprocess.run(args, check=True)
    return json.loads((bundle / "manifest.json").read_text())["export"]


def full_profile_critical_path(runs: Path, seeds: int) -> tuple[float, float, int, int, list[str]]:
    """(critical path s, work s, tasks with a record, tasks, path) of the default full-profile graph, from the
    records in `runs` (no data is loaded, nothing is run)."""
    from harness.graph import build_graph
    from harness.pipeline import DEFAULT_TASKS, ExportSettings, plans_named

    graph = build_graph(ExportSettings(profile="full", seeds=seeds, plans=plans_named(DEFAULT_TASKS),
                                       runs_dir=runs))
    seconds = graph.recorded_seconds()
    length, path = graph.critical_path(seconds)
    return length, sum(seconds.values()), len(seconds), len(graph.nodes), [graph.nodes[k].label for k in path]


def describe(run: dict) -> str:
    return (f"{run['executor']} with {run['workers']} worker(s), {run['torch_threads_per_task']} torch thread(s) per "
            f"task: {run['tasks_run']} tasks, work {run['work_seconds']:.1f} s, wall {run['wall_seconds']:.1f} s, "
            f"critical path {run['critical_path_seconds']:.1f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--tasks", default=None)
    parser.add_argument("--experiments", default=None)
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts; the first is the reference")
    parser.add_argument("--manifests", nargs="+", type=Path, default=None,
                        help="read these bundles' export records instead of exporting")
    parser.add_argument("--full-runs", type=Path, default=None, help="runs folder of a finished full export")
    parser.add_argument("--full-seeds", type=int, default=1)
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start")

    if args.manifests:
        runs = [json.loads(p.read_text())["export"] for p in args.manifests]
    else:
        with tempfile.TemporaryDirectory(prefix="graph-speedup-") as tmp:
            runs = [run_export(args.profile, args.seeds, int(w), Path(tmp), args.tasks, args.experiments)
                    for w in args.workers.split(",")]
    for run in runs:
        print(describe(run))
    if args.full_runs:
        length, work, recorded, total, path = full_profile_critical_path(args.full_runs, args.full_seeds)
        print(f"full profile graph ({args.full_seeds} seed(s)), from the task records in {args.full_runs}: "
              f"{recorded} of {total} tasks recorded, work {work:.1f} s, critical path {length:.1f} s "
              f"({' -> '.join(path)}); bound on the speed-up: {work / length:.2f}x")
    first, last = runs[0], runs[-1]
    bound = last["work_seconds"] / last["critical_path_seconds"]
    print(f"ratio wall time {first['workers']} worker(s) / {last['workers']} worker(s): "
          f"{first['wall_seconds'] / last['wall_seconds']:.2f} (the critical path allows {bound:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
