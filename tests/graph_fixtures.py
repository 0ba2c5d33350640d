"""A tiny user model for the experiment-graph tests: trains in well under a second, so the graph's behaviour (not
training) decides how long a test takes. EDGEPRUNE_TEST_STEP_SECONDS slows each training step (a sleep in the
forward pass while training), which keeps a task running long enough for a test to interrupt it; the sleep changes
no number, so slow and fast runs share their run folders."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

TINY = textwrap.dedent('''
    import os
    import time

    import numpy as np
    import torch
    from torch import nn


    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.hidden = nn.Linear(8, 16)
            self.out = nn.Linear(16, 2)

        def forward(self, x):
            if self.training:
                time.sleep(float(os.environ.get("EDGEPRUNE_TEST_STEP_SECONDS", "0")))
            return self.out(torch.relu(self.hidden(x)))


    def build():
        rng = np.random.default_rng(0)
        x = rng.standard_normal((300, 8)).astype(np.float32)
        y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
        torch.manual_seed(0)
        return {"name": "tiny-graph", "model": Tiny(), "train": (x[:200], y[:200]), "eval": (x[200:], y[200:])}
''')

BIN = Path(sys.executable).parent


def tiny_module(folder: Path) -> Path:
    path = Path(folder) / "tiny_graph.py"
    path.write_text(TINY)
    return path


def export_args(module: Path, root: Path, name: str, *extra: str) -> list[str]:
    """`harness export` of the tiny model: baseline and one round of repeated pruning (5 tasks: the baseline,
    the chain, the exports of the baseline, round 0 and round 1)."""
    return [str(BIN / "harness"), "export", "--model", f"{module}:build", "--profile", "quick", "--rounds", "1",
            "--experiments", "baseline,repeated", "--runs-dir", str(root / f"{name}-runs"),
            "--out", str(root / f"{name}-bundle"), *extra]


def export(module: Path, root: Path, name: str, *extra: str, env=None) -> dict:
    subprocess.run(export_args(module, root, name, *extra), check=True, capture_output=True, text=True, env=env)
    return json.loads((root / f"{name}-bundle" / "manifest.json").read_text())


def finished_files(runs: Path) -> dict[str, tuple[int, int]]:
    """(inode, mtime_ns) of the finish marker and weight files of every finished variant folder (one holding
    variant.json): a recomputed run would change them. A folder killed between its weights and its marker is
    unfinished, and rewriting it is the resume."""
    return {str(p.relative_to(runs)): (p.stat().st_ino, p.stat().st_mtime_ns)
            for marker in sorted(runs.rglob("variant.json"))
            for p in (marker.parent / n for n in ("variant.json", "state.pt", "masks.pt", "model.onnx"))
            if p.exists()}
