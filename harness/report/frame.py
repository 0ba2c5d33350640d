"""The vocabulary sections use to read the merged frame of `load.load_frame`: which rows are manifest models, which
model is a task's dense baseline, what a variant is called, how seeds of one variant are averaged.

A variant is a `series`: all seeds of one model variant share it (load.py fills it in for manifests without the
key), so seeds are grouped by series, never by (task, experiment, method, iteration).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from harness.report.format import DASH, DisplayColumn, fmt_seeds, format_rank
from harness.report.load import is_missing

BASELINE = "baseline"
STRUCTURED = "structured"
NO_METHOD = ("", "none", "dense")
# What a table shows about a variant beside its numbers (the same for every seed of its series).
VARIANT_COLUMNS = ["task", "experiment", "method", "iteration"]


def column(frame: pd.DataFrame, name: str) -> pd.Series:
    """frame[name], or NaN everywhere when no model in the manifest carries that key."""
    return frame[name] if name in frame else pd.Series(np.nan, index=frame.index, dtype=float)


def manifest_models(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per manifest model (its first file), for host-side numbers."""
    return frame[frame["in_manifest"]].drop_duplicates("name")


def ok_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """The files the device measured successfully."""
    return rows[rows["status"] == "ok"]


def several_tasks(rows: pd.DataFrame) -> bool:
    """Whether a table needs a Task column."""
    return rows["task"].nunique() > 1


def task_column(rows: pd.DataFrame) -> DisplayColumn:
    """The Task column of a display table, shown only where the rows span several tasks."""
    return ("Task", "task", None) if several_tasks(rows) else None


def is_structured(rows: pd.DataFrame) -> pd.Series:
    return rows["experiment"].eq(STRUCTURED)


def baseline_mask(rows: pd.DataFrame) -> pd.Series:
    """The task's dense baseline: experiment "baseline", else an unpruned model of another unstructured experiment."""
    base = rows["experiment"].eq(BASELINE)
    if base.any():
        return base
    return rows["sparsity"].fillna(-1).eq(0) & ~is_structured(rows)


def baseline_params(frame: pd.DataFrame) -> dict[str, float]:
    """Parameter count of each task's dense baseline (manifest)."""
    models = manifest_models(frame)
    out = {}
    for task, rows in models.groupby("task", sort=False):
        base = rows[baseline_mask(rows)]["params"].dropna()
        if len(base):
            out[task] = float(base.iloc[0])
    return out


def sparsity_rate_pct(rows: pd.DataFrame, frame: pd.DataFrame) -> pd.Series:
    """The lab's "Sparsity Rate": for structured variants 1 - params / the task's baseline params (the model
    really shrank), for unstructured ones the sparsity of prunable weights; both in percent."""
    base = baseline_params(frame)
    shrink = [(1 - p / base[t]) * 100 if t in base and not is_missing(p) else np.nan
              for t, p in zip(rows["task"], rows["params"])]
    return pd.Series(np.where(is_structured(rows), shrink, rows["sparsity_pct"]), index=rows.index)


def technique_label(row: Mapping[str, Any]) -> str:
    """How the lab names a variant: "none (dense)", "neurons-l1 50% + fine-tune", "imp l1 it3"."""
    experiment, method = row.get("experiment", ""), row.get("method", "")
    if experiment == BASELINE or (method in NO_METHOD and not experiment):
        return "none (dense)"
    if experiment == STRUCTURED:
        # the ratio asked for names the variant (what was removed is its own column); manifests before
        # structure_ratio_asked have only structure_ratio
        ratio = row.get("structure_ratio_asked")
        ratio = row.get("structure_ratio") if is_missing(ratio) else ratio
        text = method + ("" if is_missing(ratio) else f" {float(ratio):.0%}")
        finetuned = row.get("finetuned")
        return text + (" + fine-tune" if finetuned is True or finetuned == 1 else "")
    iteration = row.get("iteration")
    it_text = "" if is_missing(iteration) else f" it{int(iteration)}"
    return f"{experiment} {method}{it_text}".strip()


# ---------------------------------------------------------------- seeds


MEASURES = ["sparsity_pct", "host_accuracy_pct", "device_accuracy_pct", "latency_p50_s", "latency_p50_ms",
            "disk_mb", "nonzero_params", "params"]


def plan_position(rows: pd.DataFrame) -> pd.Series:
    """Where a variant stands in its experiment's plan: `plan_index` where the manifest gives one (structured variants,
    whose `iteration` is the pruning round), else `iteration` (rounds of iterative experiments, and structured
    variants of manifests written before plan_index)."""
    return column(rows, "plan_index").fillna(rows["iteration"])


def aggregate_seeds(rows: pd.DataFrame, by: Sequence[str] = (), measures: Sequence[str] = MEASURES) -> pd.DataFrame:
    """One row per variant (series) and `by` group, in first-appearance order: the variant's VARIANT_COLUMNS, the `by`
    keys, <measure>_mean, <measure>_std (sample std, NaN for one seed), n_seeds, seeds, accuracy_mismatch (any seed
    flagged) and order (first appearance in the manifest)."""
    keys = ["series", *VARIANT_COLUMNS, *by]
    grouped = rows.groupby(keys, dropna=False, sort=False)
    stats = grouped[list(measures)].agg(["mean", "std"])
    stats.columns = [f"{measure}_{stat}" for measure, stat in stats.columns]
    stats["n_seeds"] = grouped.size()
    stats["seeds"] = grouped["seed"].agg(lambda s: fmt_seeds(list(s)))
    stats["accuracy_mismatch"] = grouped["accuracy_mismatch"].any() if "accuracy_mismatch" in rows else False
    stats["order"] = grouped["order"].min()
    return stats.reset_index().drop(columns="series")


def seeds_column(agg: pd.DataFrame) -> DisplayColumn:
    """The Seeds column of a table of aggregate_seeds rows, left out where no model records its seed."""
    return None if (agg["seeds"] == DASH).all() else ("Seeds", "seeds", None)


def primary_file_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """Per device and model, the plain ONNX file (else the first file), so accuracy vs sparsity has one point each."""
    ranked = rows.assign(_rank=[format_rank(f) for f in rows["format"]]).sort_values(["_rank", "order"],
                                                                                      kind="stable")
    return ranked.drop_duplicates(["device", "name"]).drop(columns="_rank")
