"""Sparsity per parameter of each iterative experiment: which tensors global pruning empties first."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from harness.report.format import display_frame, unique_name
from harness.report.frame import column, manifest_models, several_tasks
from harness.report.render import Block, Heading, Paragraph, Table, slug
from runners.contract import experiments_where

PREFIX = "sparsity_per_parameter."
ACROSS_PRUNED = "across pruned parameters"
WHOLE_MODEL = "whole model"


def natural_key(name: str) -> list:
    """layers.10.weight after layers.2.weight."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name)]


def sparsity_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Parameters x iterations in percent, plus the two overall rows; rows are one seed's models of one method."""
    rows = rows.sort_values("iteration", kind="stable")
    params = sorted((c for c in rows.columns if c.startswith(PREFIX) and rows[c].notna().any()),
                    key=lambda c: natural_key(c[len(PREFIX):]))
    table = {f"Iteration {int(it)}": [*(r[c] * 100 for c in params), r["sparsity"] * 100,
                                      r.get("sparsity_overall", float("nan")) * 100]
             for it, (_, r) in zip(rows["iteration"], rows.iterrows())}
    index = [c[len(PREFIX):] for c in params] + [ACROSS_PRUNED, WHOLE_MODEL]
    out = pd.DataFrame(table, index=pd.Index(index, name="Parameter"))
    return out.reset_index()


def per_parameter_sparsity_section(frame: pd.DataFrame, out_dir: Path) -> list[Block]:
    if not any(c.startswith(PREFIX) for c in frame.columns):
        return []
    models = manifest_models(frame)
    models = models.assign(sparsity_overall=column(models, "sparsity_overall"))
    models = models[models["experiment"].isin(experiments_where("iterative")) & models["iteration"].notna()]
    blocks: list[Block] = []
    csv_names: set[str] = set()
    for (task, experiment, method), rows in models.groupby(["task", "experiment", "method"], sort=False):
        has_values = rows[[c for c in rows.columns if c.startswith(PREFIX)]].notna().any(axis=1)
        rows = rows[has_values]
        if rows.empty:
            continue
        seed = rows["seed"].min()
        if pd.notna(seed):
            rows = rows[rows["seed"].eq(seed)]
        data = sparsity_table(rows)
        display = display_frame(data, [("Parameter", "Parameter", None),
                                       *((iteration, iteration, ".2f") for iteration in data.columns[1:])])
        title = " · ".join(p for p in ((task if several_tasks(models) else ""), experiment, method) if p)
        seed_text = f", seed {int(seed)}" if pd.notna(seed) else ""
        blocks += [Heading(3, f"{title}{seed_text}"),
                   Table(display=display, data=data,
                         csv_name=unique_name(f"sparsity-per-parameter-{slug(title)}", ".csv", csv_names))]
    if not blocks:
        return []
    return [
        Heading(2, "Sparsity per parameter"),
        Paragraph("Percent of zero entries in each parameter tensor after each iteration (first seed), from the "
                  f"manifest. \"{ACROSS_PRUNED}\" is the sparsity of the prunable weights (the lab's definition); "
                  f"\"{WHOLE_MODEL}\" counts every parameter, biases included."),
        *blocks,
    ]
