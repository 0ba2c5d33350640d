"""Exercises 1-2 through edgeprune against a bare plain-torch notebook doing the same work, in one process.

Same data arrays, same model, same number of training steps: train the FFN (initial weights saved), measure it,
prune 33% of the remaining weights five times without retraining, then IMP with rewinding for five rounds.
Each iteration measures accuracy, sparsity, disk size (lab COO) and batch-1 latency, as the lab does.
The last line is the ratio edgeprune/bare of the wall-clock times.

    .venv/bin/python benchmarks/pipeline_overhead.py [--profile full|quick]   (EDGEPRUNE_DATA must hold mnist/)
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.utils import prune

from harness.data import load_task, resolve_data_dir
from harness.experiments.imp import imp_with_rewinding
from harness.experiments.repeated import repeated_pruning
from harness.experiments.settings import PROFILES, PruneSettings, TrainSettings

ROUNDS, AMOUNT = 5, 0.33


class LabFFN(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(400, 1024), nn.Linear(1024, 1024)])
        self.out = nn.Linear(1024, 10)

    def forward(self, x):
        for layer in self.layers:
            x = torch.relu(layer(x))
        return self.out(x)


def bare_train(model, x, y, epochs, seed):
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=0.001)
    loss_fn = nn.CrossEntropyLoss()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(xt), generator=gen)
        for i in range(0, len(xt), 64):
            idx = order[i : i + 64]
            opt.zero_grad()
            loss_fn(model(xt[idx]), yt[idx]).backward()
            opt.step()
    model.eval()


def bare_measure(model, ex, ey):
    with torch.no_grad():
        acc = (model(torch.from_numpy(ex)).argmax(1).numpy() == ey).mean()
        params = [m.weight for m in (*model.layers, model.out)]
        sparsity = sum(int((p == 0).sum()) for p in params) / sum(p.numel() for p in params)
        clone = LabFFN()
        clone.load_state_dict({k.replace("_orig", ""): v * model.state_dict().get(k.replace("_orig", "_mask"), 1)
                               for k, v in model.state_dict().items() if not k.endswith("_mask")})
        buf = io.BytesIO()
        torch.save({k: v.to_sparse() for k, v in clone.state_dict().items()}, buf)
        x1 = torch.from_numpy(ex[:1])
        for _ in range(20):
            model(x1)
        times = []
        for _ in range(200):
            t = time.perf_counter()
            model(x1)
            times.append(time.perf_counter() - t)
    return acc, sparsity, buf.getbuffer().nbytes, float(np.median(times))


def bare_lab(task, epochs, seed):
    torch.manual_seed(seed)
    model = LabFFN()
    init = {k: v.clone() for k, v in model.state_dict().items()}
    torch.save(init, io.BytesIO())
    bare_train(model, task.train_x, task.train_y, epochs, seed)
    trained = {k: v.clone() for k, v in model.state_dict().items()}
    bare_measure(model, task.eval_x, task.eval_y)
    params = [(m, "weight") for m in (*model.layers, model.out)]
    for _ in range(ROUNDS):                       # repeated pruning, no retraining
        prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=AMOUNT)
        bare_measure(model, task.eval_x, task.eval_y)
    model = LabFFN()                              # IMP with rewinding
    model.load_state_dict(trained)
    params = [(m, "weight") for m in (*model.layers, model.out)]
    for _ in range(ROUNDS):
        prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=AMOUNT)
        state = model.state_dict()
        model.load_state_dict({**{(k.replace("weight", "weight_orig") if k.endswith("weight") else k): v
                                  for k, v in init.items()},
                               **{k: v for k, v in state.items() if k.endswith("_mask")}})
        bare_train(model, task.train_x, task.train_y, epochs, seed)
        bare_measure(model, task.eval_x, task.eval_y)


def edgeprune_lab(task, profile, seed, root):
    ts = TrainSettings(epochs=profile.epochs, seed=seed, train_limit=profile.train_limit,
                       eval_limit=profile.eval_limit)
    ps = PruneSettings(method="l1", amount=AMOUNT)
    repeated_pruning(root, ts, ps, ROUNDS, task, quiet=True)
    imp_with_rewinding(root, ts, ps, ROUNDS, task, quiet=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="full", choices=sorted(PROFILES))
    args = parser.parse_args()
    profile = PROFILES[args.profile]
    task = load_task("mnist", resolve_data_dir(), profile.train_limit, profile.eval_limit)
    start = time.perf_counter()
    bare_lab(task, profile.epochs, seed=0)
    bare = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        edgeprune_lab(task, profile, seed=0, root=Path(tmp))
        ours = time.perf_counter() - start
    print(f"profile {args.profile}: 1 + {ROUNDS} trainings of {profile.epochs} epoch(s) on {len(task.train_x)} images")
    print(f"bare plain-torch lab: {bare:.1f} s")
    print(f"edgeprune (runs stored, every metric, resumable): {ours:.1f} s")
    print(f"ratio edgeprune/bare: {ours / bare:.3f}")


if __name__ == "__main__":
    main()
