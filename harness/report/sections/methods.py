"""Pruning methods compared: device accuracy of each method at the highest sparsity the methods share."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from harness.report.format import display_frame
from harness.report.frame import NO_METHOD, ok_rows, several_tasks, task_column
from harness.report.render import Block, Heading, Paragraph, Table
from runners.contract import ONNX, experiment_kind, experiments_where


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
            acc = at.groupby("method", sort=False)[["device_accuracy_pct", "host_accuracy_pct",
                                                    "sparsity_pct"]].mean()
            acc = acc.sort_values("device_accuracy_pct", ascending=False)
            listed = ", ".join(f"{m} {a:.2f}%" for m, a in acc["device_accuracy_pct"].items())
            missing = sorted(set(levels) - set(methods))
            absent = f" ({', '.join(missing)} did not reach this sparsity)" if missing else ""
            prefix = f"{task}: " if several_tasks(rows) else ""
            sentences.append(f"{prefix}At {level}% sparsity {experiment_kind(experiment).words or experiment}: "
                             f"{listed}{absent}.")
            for method, values in acc.iterrows():
                table_rows.append({"device": device, "task": task, "experiment": experiment, "method": method,
                                   "level_pct": level, "sparsity_pct": values["sparsity_pct"],
                                   "device_accuracy_pct": values["device_accuracy_pct"],
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
        ("Accuracy (%) host", "host_accuracy_pct", ".2f"),
    ])
    return [
        Heading(2, "Pruning methods compared"),
        Paragraph("Device accuracy of the plain ONNX file of each method at the highest sparsity (rounded to 1%) "
                  "that the methods share, mean over seeds; the plots above show every iteration."),
        *blocks,
        Table(display=display, data=data, csv_name="methods.csv"),
    ]
