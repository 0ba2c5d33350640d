"""The vocabulary sections use to read the merged frame of `load.load_frame`: which rows are manifest models, which
model is a task's dense baseline, what a variant is called, how seeds of one variant are averaged.

A variant is a `series`: all seeds of one model variant share it (load.py fills it in for manifests without the
key), so seeds are grouped by series, never by (task, experiment, method, iteration).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from harness.report.format import DASH, DisplayColumn, fmt_seeds, format_rank
from harness.report.load import device_flags, is_missing
from runners.contract import ONNX

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
            "disk_mb", "peak_memory_mb", "nonzero_params", "params"]


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


# ---------------------------------------------------------------- comparisons with the dense baseline

# A model whose dense accuracy is within this many points of always answering the most frequent label is at chance.
NEAR_CHANCE_PP = 5.0
# Without an A/A band, a file counts as slower than another only beyond this ratio (run-to-run spread on a shared
# machine reaches about 10%: benchmarks/bench_rounds.py).
NO_BAND_MARGIN = 1.10
ROUNDS = "latency_ms.p50_rounds"


@dataclass(frozen=True)
class Ratio:
    """A cost of one file over another's on the same device: `value` is the median of the per-round ratios of
    windows timed next to each other (`rounds` of them; the interval is their range), else (rounds 0) the ratio of
    the pooled numbers, without an interval."""
    value: float
    low: float | None = None
    high: float | None = None
    rounds: int = 0

    @property
    def has_interval(self) -> bool:
        return self.low is not None and self.high is not None


def _round_p50s(value: Any) -> list[float] | None:
    if isinstance(value, (list, tuple)) and len(value) >= 2 and all(isinstance(v, (int, float)) for v in value):
        return [float(v) for v in value]
    return None


def _seed_key(rows: pd.DataFrame) -> pd.Series:
    return rows["seed"].fillna(-1) if "seed" in rows else pd.Series(-1, index=rows.index)


def paired_latency_ratio(rows: pd.DataFrame, base: pd.DataFrame) -> Ratio | None:
    """p50 of `rows` over p50 of `base` (one device; a file's seeds against the baseline's, seed by seed). Paired
    per round where both carry `latency_ms.p50_rounds` of the same length (the runner's interleaved windows), else
    the ratio of the mean p50s."""
    ratios: list[float] = []
    base_by_seed = {seed: row for seed, (_, row) in zip(_seed_key(base), base.iterrows())}
    for seed, (_, row) in zip(_seed_key(rows), rows.iterrows()):
        other = base_by_seed.get(seed)
        if other is None and len(base_by_seed) == 1:
            other = next(iter(base_by_seed.values()))
        a, b = (_round_p50s(r.get(ROUNDS)) if r is not None else None for r in (row, other))
        if a and b and len(a) == len(b) and all(v > 0 for v in b):
            ratios += [x / y for x, y in zip(a, b)]
    if ratios:
        return Ratio(float(np.median(ratios)), float(min(ratios)), float(max(ratios)), len(ratios))
    return point_ratio(rows["latency_p50_ms"], base["latency_p50_ms"])


def point_ratio(values: pd.Series, base: pd.Series) -> Ratio | None:
    a, b = pd.to_numeric(values, errors="coerce").mean(), pd.to_numeric(base, errors="coerce").mean()
    if is_missing(a) or is_missing(b) or b <= 0:
        return None
    return Ratio(float(a / b))


def same_weights_as_dense(rows: pd.DataFrame) -> pd.Series:
    """Plain ONNX files holding the dense baseline's weights: the baseline and the unpruned round 0 of each iterative
    experiment. Timing them against each other is an A/A control: any difference is the machine, not the model."""
    return rows["format"].eq(ONNX) & ~is_structured(rows) & (baseline_mask(rows) | rows["sparsity"].fillna(-1).eq(0))


def aa_band(rows: pd.DataFrame) -> Ratio | None:
    """The noise floor of one device and task: the spread of the per-round latency ratios between files with the
    dense weights (`same_weights_as_dense`) and the baseline's plain file. None with fewer than two such files or
    without timing rounds. A ratio whose interval overlaps the band is within noise."""
    base = rows[baseline_mask(rows) & rows["format"].eq(ONNX)]
    copies = rows[same_weights_as_dense(rows) & ~rows.index.isin(base.index)]
    if base.empty or copies.empty:
        return None
    ratios = [paired_latency_ratio(copies[copies["series"].eq(s)], base) for s in copies["series"].unique()]
    ratios = [r for r in ratios if r is not None and r.has_interval]
    if not ratios:   # single p50s (results without rounds): one draw each is no noise floor
        return None
    lows = [r.low if r.has_interval else r.value for r in ratios]
    highs = [r.high if r.has_interval else r.value for r in ratios]
    return Ratio(1.0, min(1.0, *lows), max(1.0, *highs), sum(r.rounds for r in ratios))


def within_noise(ratio: Ratio, band: Ratio | None) -> bool:
    """Whether a latency ratio is indistinguishable from 1: its interval (or value) overlaps the A/A band, or without
    a band lies within NO_BAND_MARGIN of 1."""
    low, high = (ratio.low, ratio.high) if ratio.has_interval else (ratio.value, ratio.value)
    if band is not None and band.has_interval:
        return low <= band.high and high >= band.low
    return low <= NO_BAND_MARGIN and high >= 1 / NO_BAND_MARGIN


def clearly_slower(ratio: Ratio | None, band: Ratio | None) -> bool:
    """A latency ratio whose whole interval lies above the noise (the band, else NO_BAND_MARGIN)."""
    if ratio is None:
        return False
    low = ratio.low if ratio.has_interval else ratio.value
    return low > (band.high if band is not None and band.has_interval else NO_BAND_MARGIN)


def chance_accuracy_pct(frame: pd.DataFrame, eval_name: Any) -> float | None:
    """Accuracy (%) of always answering the eval set's most frequent label (manifest evals[...].majority_accuracy,
    written since the bundle records it), else None."""
    evals = (frame.attrs.get("manifest") or {}).get("evals") or {}
    value = (evals.get(eval_name) or {}).get("majority_accuracy") if isinstance(eval_name, str) else None
    return None if is_missing(value) else float(value) * 100


def device_conditions(row: Mapping[str, Any]) -> list[str]:
    """What about a result's device makes its latencies unlike the real device's (load.device_flags: emulation,
    throttling, a frequency drop), from one of its rows of the frame."""
    def true(key: str) -> bool:
        value = row.get(key)
        return isinstance(value, (bool, np.bool_)) and bool(value)

    return device_flags({"emulated": true("device.emulated"),
                         "during_run": {"throttled": true("device.during_run.throttled"),
                                        "frequency_dropped": true("device.during_run.frequency_dropped")}})


def against_plain_file(rows: pd.DataFrame) -> pd.DataFrame:
    """Per variant (series) and non-plain format measured on one device (int8, sparse initializers): its p50 and disk
    size against the plain fp32 ONNX file of the same variant there, and whether it is clearly slower (beyond the
    task's A/A band) or larger: the pessimisations a reader must not miss. Columns: task, series, format,
    latency_ratio (Ratio or None), size_ratio, slower, larger."""
    out = []
    ok = ok_rows(rows)
    for task, task_rows in ok.groupby("task", sort=False):
        band = aa_band(task_rows)
        plain = task_rows[task_rows["format"].eq(ONNX)]
        for (series, fmt), files in task_rows[~task_rows["format"].eq(ONNX)].groupby(["series", "format"],
                                                                                    sort=False):
            reference = plain[plain["series"].eq(series)]
            if reference.empty:
                continue
            latency = paired_latency_ratio(files, reference)
            size = point_ratio(files["disk_mb"], reference["disk_mb"])
            out.append({"task": task, "series": series, "format": fmt, "latency_ratio": latency,
                        "size_ratio": None if size is None else size.value,
                        "slower": clearly_slower(latency, band),
                        "larger": size is not None and size.value > 1})
    return pd.DataFrame(out, columns=["task", "series", "format", "latency_ratio", "size_ratio", "slower", "larger"])
