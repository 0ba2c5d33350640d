"""Host storage: the bytes each representation of the pruned weights needs, the best lossless one against the entropy
bound, and why the lab's COO file is larger than (1 - sparsity) of the dense one."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pandas as pd

from harness.report.format import DASH, display_frame, fmt_int, fmt_number, fmt_ratio, mean_std
from harness.report.frame import aggregate_seeds, manifest_models, seeds_column, several_tasks, task_column
from harness.report.load import BYTES_PER_MB, is_missing
from harness.report.render import Block, Heading, Paragraph, Table
from harness.representations import ENTROPY_BOUND, LOSSY


def _mb(value: float) -> str:
    return f"{fmt_number(value / BYTES_PER_MB, '.4g')} MB"


def coo_explanation(models: pd.DataFrame) -> str | None:
    """Why the lab's COO file is not (1 - sparsity) of the dense one, from the highest-sparsity variant's numbers."""
    needed = ["storage.dense", "storage.lab_coo", "storage.entropy_bound"]
    if not all(c in models for c in needed):
        return None
    usable = models.dropna(subset=needed + ["sparsity"])
    if usable.empty:
        return None
    top = usable.loc[usable["sparsity"].idxmax()]
    dense, coo, bound, sparsity = (float(top[c]) for c in needed + ["sparsity"])
    naive = dense * (1 - sparsity)
    per_nonzero = (
        f" Here that is {coo / top['nonzero_params']:.1f} bytes per nonzero parameter."
        if not is_missing(top.get("nonzero_params")) and top["nonzero_params"] > 0 else ""
    )
    others = [c for c in models.columns if c.startswith("storage.") and c not in needed]
    other_text = "; ".join(f"{c.split('.', 1)[1]} {_mb(float(top[c]))}" for c in others if not is_missing(top[c]))
    return (
        f"Why the lab's COO file is not {1 - sparsity:.0%} of the dense one: at the highest sparsity "
        f"({top['name']}, {sparsity:.1%} of prunable weights zero) the dense weights take {_mb(dense)}, so one might "
        f"expect about {_mb(naive)}, but the lab's COO file takes {_mb(coo)} ({coo / dense:.0%} of dense). "
        "torch's to_sparse() stores a 2-D tensor as indices [2, nnz] int64 plus values [nnz] float32, 16 bytes of "
        "index per 4 bytes of value, so a nonzero costs 20 bytes instead of 4 and COO of a weight matrix only beats "
        "dense above 80% sparsity; the lab also saves the unpruned biases with to_sparse(), 8 + 4 bytes per entry "
        f"instead of 4.{per_nonzero} The entropy bound (every nonzero value at 32 bits, plus the information in the "
        f"mask: each tensor's size times the binary entropy of its density) is {_mb(bound)} ({bound / dense:.0%} of "
        "dense); a compressed file can land below it, because trained float32 values themselves compress a little"
        + (f"; other representations: {other_text}." if other_text else ".")
    )


def storage_section(frame: pd.DataFrame, out_dir: Path) -> list[Block]:
    blocks: list[Block] = [Heading(2, "Host storage")]
    keys = [c for c in frame.columns if c.startswith("storage.")]
    models = manifest_models(frame)
    if not keys:
        return blocks + [Paragraph("The manifest records no storage sizes for these models.")]
    in_mb = models.assign(**{f"{c}_mb": models[c] / BYTES_PER_MB for c in keys})
    measures = ["sparsity_pct"] + [f"{c}_mb" for c in keys]
    agg = aggregate_seeds(in_mb, measures=measures).sort_values("order", kind="stable")
    agg = agg.join(storage_ratios(agg, keys))
    ratios = agg["best_representation"].notna().any()
    display = display_frame(agg, [
        task_column(agg),
        ("Experiment", "experiment", None),
        ("Method", "method", None),
        ("Iteration", "iteration", fmt_int),
        seeds_column(agg),
        ("Sparsity (%)", mean_std("sparsity_pct", ".2f"), None),
        *((f"{c.split('.', 1)[1]} (MB)", mean_std(f"{c}_mb", ".4g"), None) for c in keys),
        *([("Best lossless", "best_representation", lambda v: DASH if is_missing(v) else v),
           ("Best lossless / entropy bound", "best_over_bound", fmt_ratio),
           ("lab_coo / entropy bound", "lab_coo_over_bound", fmt_ratio)] if ratios else []),
    ])
    blocks += [
        Paragraph("Bytes each representation of the pruned weights needs, computed on the workstation "
                  "(manifest `storage`, MB = 10^6 bytes, mean ± sample std over seeds)."),
        Table(display=display, data=agg.drop(columns=["order", "accuracy_mismatch"]), csv_name="storage.csv"),
    ]
    for task, task_models in models.groupby("task", sort=False):
        text = coo_explanation(task_models)
        if text:
            blocks.append(Paragraph((f"{task}: " if several_tasks(models) else "") + text))
    return blocks


def storage_ratios(agg: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """Per row (seed means): the smallest lossless representation (the bound counts every value at 32 bits, so
    int8 files are not held against it, and the bound itself is not a file), its size over the entropy bound, and
    lab_coo over the entropy bound."""
    bound_key = f"storage.{ENTROPY_BOUND}"
    lossless = [c for c in keys if c != bound_key and c.removeprefix("storage.") not in LOSSY]
    out = pd.DataFrame(index=agg.index, columns=["best_representation", "best_over_bound", "lab_coo_over_bound"],
                       dtype=object)
    if not lossless or bound_key not in keys:
        return out
    sizes = agg[[f"{c}_mb_mean" for c in lossless]].astype(float)
    bound = agg[f"{bound_key}_mb_mean"].astype(float)
    has_size = sizes.notna().any(axis=1)
    best_col = sizes[has_size].idxmin(axis=1)
    out.loc[has_size, "best_representation"] = best_col.map(lambda c: c[len("storage."):-len("_mb_mean")])
    out["best_over_bound"] = sizes.min(axis=1) / bound
    if "storage.lab_coo" in keys:
        out["lab_coo_over_bound"] = agg["storage.lab_coo_mb_mean"] / bound
    return out
