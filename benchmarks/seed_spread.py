"""How much does one seed say? Repeated L1 pruning without retraining, edgeprune against a stock notebook, per seed.

At 86.5% sparsity without retraining, MNIST accuracy moves by more than a point from one training seed to the
next, so a single run cannot be held to a single reference number within +-1.5 points. This script measures that
spread for edgeprune's own pipeline (``harness.experiments.repeated.repeated_pruning``: its trainer, its masks,
its metrics) and for the loop a lab notebook writes (``torch.manual_seed(seed)``, the FFN, a stock
``DataLoader(shuffle=True)``, Adam, ``prune.global_unstructured`` 5 x 33%), on the same data arrays, and prints
per seed the accuracy at every iteration, then mean +- std of iteration 5 for both. The last line is the ratio of
the two means (1.00 = the same distribution), for the first of `--seed-streams`.

`--seed-streams shared,split` runs edgeprune both ways (harness.seeds: `shared` seeds init, data order and dropout
with the run seed itself, as runs were seeded before the streams were split; `split` gives each its own stream), so
the two distributions can be compared; `--runs-dir` keeps the run folders, so an interrupted study resumes.

    .venv/bin/python benchmarks/seed_spread.py --seeds 8 [--profile full|quick] [--seed-streams split]
        [--runs-dir DIR] [--no-notebook]                                        (EDGEPRUNE_DATA must hold mnist/)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.utils import prune
from torch.utils.data import DataLoader, TensorDataset

REPO = Path(__file__).resolve().parents[1]
for p in (REPO, REPO / "benchmarks"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from harness.data import load_task, resolve_data_dir  # noqa: E402
from harness.experiments.repeated import repeated_pruning  # noqa: E402
from harness.experiments.settings import PROFILES, PruneSettings, TrainSettings  # noqa: E402
from harness.seeds import DEFAULT_SEED_STREAMS, SEED_STREAM_MODES  # noqa: E402
from pipeline_overhead import AMOUNT, ROUNDS, LabFFN  # noqa: E402


def notebook_run(task, epochs: int, seed: int) -> list[float]:
    """Accuracy at iterations 0..ROUNDS of the loop a lab notebook writes."""
    torch.manual_seed(seed)
    model = LabFFN()
    loader = DataLoader(TensorDataset(torch.from_numpy(task.train_x), torch.from_numpy(task.train_y)),
                        batch_size=64, shuffle=True)
    opt = torch.optim.Adam(model.parameters(), lr=0.001)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    for _ in range(epochs):
        for xb, yb in loader:
            opt.zero_grad()
            loss_fn(model(xb), yb).backward()
            opt.step()
    model.eval()
    ex = torch.from_numpy(task.eval_x)

    def accuracy() -> float:
        with torch.no_grad():
            return float((model(ex).argmax(1).numpy() == task.eval_y).mean())

    params = [(m, "weight") for m in (*model.layers, model.out)]
    out = [accuracy()]
    for _ in range(ROUNDS):
        prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=AMOUNT)
        out.append(accuracy())
    return out


def edgeprune_run(task, profile, seed: int, root: Path, seed_streams: str = DEFAULT_SEED_STREAMS) -> list[float]:
    ts = TrainSettings(epochs=profile.epochs, seed=seed, train_limit=profile.train_limit,
                       eval_limit=profile.eval_limit, seed_streams=seed_streams)
    variants = repeated_pruning(root, ts, PruneSettings(method="l1", amount=AMOUNT), ROUNDS, task, quiet=True)
    return [v.metrics["accuracy"] for v in variants]


def summary(values: list[float]) -> str:
    return f"{100 * statistics.mean(values):.2f} +- {100 * statistics.stdev(values):.2f} %"


def main(argv: list[str] | None = None) -> float:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=8, help="seeds 0..N-1 for both")
    ap.add_argument("--profile", default="full", choices=sorted(PROFILES))
    ap.add_argument("--seed-streams", default=DEFAULT_SEED_STREAMS,
                    help=f"comma-separated, of {', '.join(SEED_STREAM_MODES)}: how edgeprune seeds its runs")
    ap.add_argument("--runs-dir", type=Path, default=None, help="keep (and reuse) the run folders here")
    ap.add_argument("--no-notebook", action="store_true", help="edgeprune only")
    args = ap.parse_args(argv)
    if args.seeds < 2:
        ap.error("--seeds must be at least 2 for a standard deviation")
    modes = [m.strip() for m in args.seed_streams.split(",") if m.strip()]
    if not modes or any(m not in SEED_STREAM_MODES for m in modes):
        ap.error(f"--seed-streams takes {', '.join(SEED_STREAM_MODES)}")
    profile = PROFILES[args.profile]
    task = load_task("mnist", resolve_data_dir(), profile.train_limit, profile.eval_limit)
    sparsity = 100 * (1 - (1 - AMOUNT) ** ROUNDS)
    print(f"profile {args.profile}: accuracy (%) at iterations 0..{ROUNDS} of repeated L1 pruning, "
          f"{100 * AMOUNT:.0f}% of the remaining weights per iteration")
    who_all = [f"edgeprune-{m}" for m in modes] + ([] if args.no_notebook else ["notebook"])
    last: dict[str, list[float]] = {who: [] for who in who_all}
    with tempfile.TemporaryDirectory(prefix="seed-spread.") as tmp:
        root = args.runs_dir or Path(tmp)
        for seed in range(args.seeds):
            runs = {f"edgeprune-{m}": edgeprune_run(task, profile, seed, root, m) for m in modes}
            if not args.no_notebook:
                runs["notebook"] = notebook_run(task, profile.epochs, seed)
            for who, accs in runs.items():
                last[who].append(accs[-1])
                print(f"seed {seed:2d} {who:16s} " + " ".join(f"{100 * a:6.2f}" for a in accs), flush=True)
    for who, values in last.items():
        lo, hi = np.min(values), np.max(values)
        print(f"{who:16s} iteration {ROUNDS} ({sparsity:.1f}%): {summary(values)} over {len(values)} seeds, "
              f"range {100 * lo:.2f}-{100 * hi:.2f}")
    if args.no_notebook:
        first = last[who_all[0]]
        print(f"std over seeds of {who_all[0]} at iteration {ROUNDS} (points): {100 * statistics.stdev(first):.2f}")
        return statistics.stdev(first)
    ratio = statistics.mean(last[who_all[0]]) / statistics.mean(last["notebook"])
    print(f"ratio {who_all[0]}/notebook mean accuracy at iteration {ROUNDS}: {ratio:.3f}")
    return ratio


if __name__ == "__main__":
    main()
