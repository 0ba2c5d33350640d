"""Pruning methods compared: device accuracy of each method at the highest sparsity the methods share, as a claim
over seeds: the mean and spread over the seeds the bundle has, and which differences those seeds cannot establish.

With one seed the spread is unknown from the data, so the measured seed-to-seed spread of the lab's workload
(SEED_SPREAD, benchmarks/seed_spread.py) stands in for it."""

from __future__ import annotations

import math
from itertools import combinations
from pathlib import Path

import pandas as pd

from harness.report.format import display_frame, fmt_int
from harness.report.frame import NO_METHOD, ok_rows, several_tasks, task_column
from harness.report.render import Block, Heading, Notes, Paragraph, Table
from runners.contract import ONNX, experiment_kind, experiments_where

# Standard deviation over seeds of the MNIST FFN's accuracy after 5 rounds of repeated L1 pruning (86.5% sparsity,
# no retraining), measured with benchmarks/seed_spread.py --seeds 12 with split seed streams (95.35 +- 0.93%; the
# shared streams gave 94.83 +- 1.22%); docs/methods.md, "Seeds".
SEED_SPREAD_PP = 0.93
SEED_SPREAD_SOURCE = "repeated L1 pruning of the MNIST FFN at 86.5%, 12 seeds, benchmarks/seed_spread.py"
# A difference between two methods is established when it exceeds this many standard errors (about 95%).
ESTABLISHED_Z = 2.0


ONE_SEED_NOTE = (f"Rows with one seed have no spread of their own: accuracy differences below the measured seed "
                 f"spread ({SEED_SPREAD_PP:.2f} points, {SEED_SPREAD_SOURCE}) are not established by them. "
                 "Run `SEEDS=N make export` (docs/methods.md says how many seeds a claim needs).")


def spread_used(std: float, n_seeds: int) -> float:
    """The seed spread a method's mean is judged with: its own sample std over 2+ seeds, else SEED_SPREAD_PP."""
    return float(std) if n_seeds >= 2 and not math.isnan(std) else SEED_SPREAD_PP


def not_established(acc: pd.DataFrame) -> list[tuple[str, str, float]]:
    """(method, method, difference in points) for every pair whose difference is within ESTABLISHED_Z standard
    errors of the difference of two means over seeds (each std from spread_used)."""
    pairs = []
    for (a, ra), (b, rb) in combinations(acc.iterrows(), 2):
        se = math.sqrt(spread_used(ra["std"], ra["n_seeds"]) ** 2 / ra["n_seeds"]
                       + spread_used(rb["std"], rb["n_seeds"]) ** 2 / rb["n_seeds"])
        diff = abs(ra["device_accuracy_pct"] - rb["device_accuracy_pct"])
        if diff <= ESTABLISHED_Z * se:
            pairs.append((a, b, diff))
    return pairs


def _method_cell(method: str, row: pd.Series) -> str:
    seeds = int(row["n_seeds"])
    spread = "" if seeds < 2 else f" ± {row['std']:.2f}"
    return f"{method} {row['device_accuracy_pct']:.2f}{spread}% ({seeds} seed{'s' if seeds > 1 else ''})"


def _common_level(levels: dict[str, set[int]]) -> tuple[int, list[str]] | None:
    """Highest sparsity level (rounded %) shared by all methods, else by as many methods as possible (>= 2)."""
    candidates: dict[int, list[str]] = {}
    for method, values in levels.items():
        for level in values:
            if level > 0:
                candidates.setdefault(level, []).append(method)
    shared = [(len(methods), level, methods) for level, methods in candidates.items() if len(methods) >= 2]
    if not shared:
        return None
    _, level, methods = max(shared)
    return level, methods


def methods_section(frame: pd.DataFrame, out_dir: Path) -> list[Block]:
    rows = ok_rows(frame)
    rows = rows[rows["experiment"].isin(experiments_where("compared")) & ~rows["method"].isin(NO_METHOD)
                & rows["format"].eq(ONNX)]
    if rows.empty:
        return []
    blocks: list[Block] = []
    table_rows = []
    for device, device_rows in rows.groupby("device", sort=False):
        sentences = []
        for (task, experiment), group in device_rows.groupby(["task", "experiment"], sort=False):
            group = group.assign(level=group["sparsity_pct"].round().astype("Int64"))
            levels = {m: set(g["level"].dropna().astype(int)) for m, g in group.groupby("method", sort=False)}
            if len(levels) < 2:
                continue
            common = _common_level(levels)
            if common is None:
                continue
            level, methods = common
            at = group[group["level"].eq(level) & group["method"].isin(methods)]
            by_method = at.groupby("method", sort=False)
            acc = by_method[["device_accuracy_pct", "host_accuracy_pct", "sparsity_pct"]].mean()
            acc["std"] = by_method["device_accuracy_pct"].std()
            acc["n_seeds"] = by_method["seed"].nunique().clip(lower=1) if "seed" in at else 1
            acc = acc.sort_values("device_accuracy_pct", ascending=False)
            listed = ", ".join(_method_cell(m, r) for m, r in acc.iterrows())
            missing = sorted(set(levels) - set(methods))
            absent = f" ({', '.join(missing)} did not reach this sparsity)" if missing else ""
            prefix = f"{task}: " if several_tasks(rows) else ""
            sentence = (f"{prefix}At {level}% sparsity {experiment_kind(experiment).words or experiment}: "
                        f"{listed}{absent}.")
            unsure = not_established(acc)
            if unsure:
                pairs = ", ".join(f"{a} vs {b} ({d:.2f} points)" for a, b, d in unsure)
                single = (acc["n_seeds"] < 2).any()
                basis = (f"; a method with one seed is judged with the measured seed spread of {SEED_SPREAD_PP:.2f} "
                         f"points ({SEED_SPREAD_SOURCE})" if single else "")
                sentence += (f" Not established over these seeds (difference within {ESTABLISHED_Z:g} standard "
                             f"errors{basis}): {pairs}.")
            sentences.append(sentence)
            for method, values in acc.iterrows():
                table_rows.append({"device": device, "task": task, "experiment": experiment, "method": method,
                                   "level_pct": level, "sparsity_pct": values["sparsity_pct"],
                                   "device_accuracy_pct": values["device_accuracy_pct"],
                                   "device_accuracy_std": values["std"], "n_seeds": values["n_seeds"],
                                   "host_accuracy_pct": values["host_accuracy_pct"]})
        if sentences:
            blocks += [Heading(3, device), Paragraph(" ".join(sentences))]
    if not table_rows:
        return []
    data = pd.DataFrame(table_rows)
    display = display_frame(data, [
        ("Device", "device", None),
        task_column(data),
        ("Experiment", "experiment", None),
        ("Method", "method", None),
        ("Sparsity (%)", "sparsity_pct", ".2f"),
        ("Accuracy (%) device", "device_accuracy_pct", ".2f"),
        ("± std over seeds", "device_accuracy_std", ".2f"),
        ("Seeds", "n_seeds", fmt_int),
        ("Accuracy (%) host", "host_accuracy_pct", ".2f"),
    ])
    notes = [ONE_SEED_NOTE] if (data["n_seeds"] < 2).any() else []
    return [
        Heading(2, "Pruning methods compared"),
        Paragraph("Device accuracy of the plain ONNX file of each method at the highest sparsity (rounded to 1%) "
                  "that the methods share: mean ± sample standard deviation over the seeds the bundle has; the "
                  "plots above show every iteration. Two methods' difference counts as established when it exceeds "
                  f"{ESTABLISHED_Z:g} standard errors of the difference of their means."),
        *blocks,
        Table(display=display, data=data, csv_name="methods.csv"),
        *([Notes(tuple(notes))] if notes else []),
    ]
