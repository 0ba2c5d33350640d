"""Sensitivity analysis: accuracy after pruning one group (layer, block, head set) at a time, from the manifest's
top-level `sensitivity` rows; tables, heat maps of the accuracy drop and short conclusions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from harness.report.render import Block, Heading, Image, Notes, Paragraph, Table, slug
from harness.report.tables import fmt_number, unique_name

DPI = 120
WITHIN_PP = 1.0  # "barely hurts": accuracy drop of at most this many points


def sensitivity_frame(rows: list) -> pd.DataFrame:
    """Valid rows as a frame with accuracy_pct and drop_pp (baseline minus accuracy, points)."""
    data = pd.DataFrame([r for r in rows or [] if isinstance(r, dict)])
    needed = ["group", "ratio", "accuracy"]
    if data.empty or not all(c in data for c in needed):
        return pd.DataFrame()
    for c in ("task", "model", "kind"):
        data[c] = data[c].fillna("").astype(str) if c in data else ""
    for c in ("ratio", "accuracy", "baseline_accuracy", "params_removed"):
        data[c] = pd.to_numeric(data[c], errors="coerce") if c in data else np.nan
    data = data.dropna(subset=["ratio", "accuracy"])
    data["group"] = data["group"].astype(str)
    data["accuracy_pct"] = data["accuracy"] * 100
    data["drop_pp"] = (data["baseline_accuracy"] - data["accuracy"]) * 100
    return data


def pivot(data: pd.DataFrame, value: str) -> pd.DataFrame:
    """groups (first-appearance order) x ratios (ascending)."""
    table = data.pivot_table(index="group", columns="ratio", values=value, aggfunc="mean", sort=False)
    return table.reindex(columns=sorted(table.columns))


def derived_conclusions(data: pd.DataFrame) -> list[str]:
    """2-3 sentences per kind from the rows: most and least sensitive group near 50%, and how far each holds."""
    sentences = []
    for kind, rows in data.groupby("kind", sort=False):
        drops = pivot(rows, "drop_pp")
        if drops.empty or drops.isna().all().all():
            continue
        label = f"{kind} " if kind else ""
        ratio = min(drops.columns, key=lambda r: (abs(r - 0.5), -r))
        at = drops[ratio].dropna()
        if len(at) >= 2:
            sentences.append(
                f"At {ratio:.0%} {label}pruning, {at.idxmax()} is the most sensitive group "
                f"({at.max():.2f} points below the baseline) and {at.idxmin()} the least ({at.min():.2f} points).")
        holds = {}
        for group, values in drops.iterrows():
            within = [r for r, d in values.items() if pd.notna(d) and d <= WITHIN_PP]
            holds[group] = max(within) if within else None
        robust = [g for g, r in holds.items() if r is not None and r == max(drops.columns)]
        fragile = [g for g, r in holds.items() if r is None]
        if robust:
            sentences.append(f"Within {WITHIN_PP:g} point of the baseline up to the largest {label}ratio tested "
                             f"({max(drops.columns):.0%}): {', '.join(robust)}.")
        if fragile:
            sentences.append(f"More than {WITHIN_PP:g} point lost already at the smallest {label}ratio "
                             f"({min(drops.columns):.0%}): {', '.join(fragile)}.")
    return sentences


def plot_heatmap(drops: pd.DataFrame, title: str, path: Path) -> None:
    groups, ratios = list(drops.index), list(drops.columns)
    fig = Figure(figsize=(max(5.0, 1.0 + 0.9 * len(ratios)), max(2.5, 1.2 + 0.45 * len(groups))), dpi=DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    values = drops.to_numpy(dtype=float)
    limit = max(1.0, float(np.nanmax(np.abs(values)))) if np.isfinite(values).any() else 1.0
    image = ax.imshow(values, cmap="Reds", vmin=min(0.0, float(np.nanmin(values))) if np.isfinite(values).any()
                      else 0.0, vmax=limit, aspect="auto")
    ax.set_xticks(range(len(ratios)), [f"{r:.0%}" for r in ratios])
    ax.set_yticks(range(len(groups)), groups)
    ax.set_xlabel("Fraction of the group pruned")
    ax.set_title(title)
    for i in range(len(groups)):
        for j in range(len(ratios)):
            v = values[i, j]
            if np.isfinite(v):
                ax.text(j, i, f"{v:.1f}", ha="center", va="center", fontsize=8,
                        color="white" if v > 0.6 * limit else "black")
    fig.colorbar(image, ax=ax, label="Accuracy drop (points)")
    fig.savefig(path, dpi=DPI, bbox_inches="tight")


def sensitivity_section(frame: pd.DataFrame, out_dir: Path) -> list[Block]:
    manifest = frame.attrs.get("manifest") or {}
    data = sensitivity_frame(manifest.get("sensitivity"))
    if data.empty:
        return []
    blocks: list[Block] = [
        Heading(2, "Sensitivity"),
        Paragraph("Host accuracy (torch, on the workstation) after pruning one group at a time by each ratio, the "
                  "rest of the model untouched (manifest `sensitivity`). Heat maps show the drop from the unpruned "
                  "baseline in percentage points; darker is more sensitive."),
    ]
    names: set[str] = set()
    for (task, model, kind), rows in data.groupby(["task", "model", "kind"], sort=False):
        title = " · ".join(p for p in (task, model, kind) if p) or "sensitivity"
        accuracy = pivot(rows, "accuracy_pct")
        display = accuracy.map(lambda v: fmt_number(v, ".2f"))
        display.columns = [f"{r:.0%}" for r in accuracy.columns]
        display = display.reset_index().rename(columns={"group": "Group"})
        baseline = rows["baseline_accuracy"].dropna()
        note = f"Baseline accuracy {baseline.iloc[0] * 100:.2f}%." if len(baseline) else ""
        blocks += [Heading(3, title),
                   Paragraph(f"Accuracy (%) per group (rows) and fraction pruned (columns). {note}".strip()),
                   Table(display=display, data=rows.drop(columns=["accuracy_pct"]),
                         csv_name=unique_name(f"sensitivity-{slug(title)}", ".csv", names))]
        drops = pivot(rows, "drop_pp")
        if not drops.isna().all().all():
            png = unique_name(f"sensitivity-{slug(title)}", ".png", names)
            plot_heatmap(drops, f"{title}: accuracy drop (points)", out_dir / png)
            blocks.append(Image(png, f"{title}: accuracy drop per group and ratio"))
    given = [str(s) for s in manifest.get("sensitivity_conclusions") or [] if str(s).strip()]
    conclusions = given or derived_conclusions(data)
    if conclusions:
        source = "from the experiment" if given else "derived from the rows above"
        blocks += [Heading(3, "Conclusions"), Paragraph(f"({source})"), Notes(tuple(conclusions))]
    return blocks
