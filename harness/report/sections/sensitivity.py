"""Sensitivity analysis: accuracy after pruning one group (layer, block, head set) at a time, from the manifest's
top-level `sensitivity` rows; tables, heat maps of the accuracy drop and short conclusions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from harness.report.format import fmt_number, unique_name
from harness.report.frame import NEAR_CHANCE_PP, chance_accuracy_pct
from harness.report.plots import new_figure, save
from harness.report.render import Block, Heading, Image, Notes, Paragraph, Table, slug


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


def distinct_groups(data: pd.DataFrame) -> pd.DataFrame:
    """The rows without groups that repeat an earlier group of the same model exactly (same weight count, same
    accuracy at every kind and ratio): e.g. a 2-layer Transformer's "earlier layers", which is "layer 0" again, in
    bundles exported before such halves were left out."""
    if "group_params" not in data:
        return data
    seen, repeats = set(), set()
    for (task, model, group), rows in data.groupby(["task", "model", "group"], sort=False):
        signature = (task, model, rows["group_params"].iloc[0],
                     tuple(sorted(zip(rows["kind"], rows["ratio"], rows["accuracy"].round(12)))))
        if signature in seen:
            repeats.add((task, model, group))
        else:
            seen.add(signature)
    return data[[(t, m, g) not in repeats for t, m, g in zip(data["task"], data["model"], data["group"])]]


def pivot(data: pd.DataFrame, value: str) -> pd.DataFrame:
    """groups (first-appearance order) x ratios (ascending)."""
    table = data.pivot_table(index="group", columns="ratio", values=value, aggfunc="mean", sort=False)
    return table.reindex(columns=sorted(table.columns))


def _drop(row: dict) -> float:
    return (row["baseline_accuracy"] - row["accuracy"]) * 100


def _mean(xs) -> float:
    xs = list(xs)
    return sum(xs) / len(xs) if xs else float("nan")


def mean_over_seeds(rows: list[dict]) -> list[dict]:
    """One row per (kind, group, ratio), accuracy and baseline averaged over the seeds that measured it."""
    merged: dict[tuple, list[dict]] = {}
    for r in rows:
        merged.setdefault((r["kind"], r["group"], r["ratio"]), []).append(r)
    return [{**same[0], "accuracy": _mean(r["accuracy"] for r in same),
             "baseline_accuracy": _mean(r["baseline_accuracy"] for r in same), "seeds": len(same)}
            for same in merged.values()]


def sensitivity_conclusions(rows: list[dict], at: float = 0.5) -> list[str]:
    """Two or three sentences drawn from one model's rows, with their numbers (accuracy drops in points; with
    several seeds, every number is the mean over seeds)."""
    if not rows:
        return []
    rows = mean_over_seeds(rows)
    ratio = min({r["ratio"] for r in rows}, key=lambda r: (abs(r - at), -r))
    here = [r for r in rows if r["ratio"] == ratio]
    pct = f"{ratio:.0%}"
    out = []
    unstructured = [r for r in here if r["kind"] == "unstructured"] or here
    kind = unstructured[0]["kind"]
    scoped = [r for r in unstructured if r.get("scope") == "component"] or \
        [r for r in unstructured if r.get("scope") == "layer"] or unstructured
    if len(scoped) >= 2:
        ranked = sorted(scoped, key=_drop)
        most, least = ranked[-1], ranked[0]
        out.append(f"At {pct} {kind} pruning, {most['group']} is the most sensitive group "
                   f"(accuracy {most['baseline_accuracy']:.1%} -> {most['accuracy']:.1%}, {-_drop(most):+.1f} points) "
                   f"and {least['group']} the least ({least['accuracy']:.1%}, {-_drop(least):+.1f} points).")
    layers = sorted((r for r in unstructured if r.get("scope") == "layer" and r.get("layer_index") is not None),
                    key=lambda r: r["layer_index"])
    if len(layers) >= 2:
        half = len(layers) // 2
        early, late = _mean(map(_drop, layers[:half])), _mean(map(_drop, layers[half:]))
        names = lambda rs: ", ".join(r["group"] for r in rs)   # noqa: E731
        verdict = "tolerate more" if late < early else "tolerate less" if late > early else "tolerate the same"
        lose = "lose" if len(layers) - half > 1 else "loses"
        out.append(f"Later layers {verdict} pruning than earlier ones: at {pct} {kind}, {names(layers[half:])} "
                   f"{lose} {late:.1f} points on average against {early:.1f} for {names(layers[:half])}.")
    pairs = [(u, s) for u in here if u["kind"] == "unstructured"
             for s in here if s["kind"] == "structured" and s["group"] == u["group"]]
    if pairs:
        u_drop, s_drop = _mean(_drop(u) for u, _ in pairs), _mean(_drop(s) for _, s in pairs)
        worst = max(pairs, key=lambda p: _drop(p[1]) - _drop(p[0]))
        out.append(f"Removing whole units costs more than zeroing single weights: at {pct}, structured pruning "
                   f"loses {s_drop:.1f} points on average against {u_drop:.1f} for unstructured L1 over the same "
                   f"{len(pairs)} groups (largest gap: {worst[0]['group']}, "
                   f"{_drop(worst[1]):.1f} vs {_drop(worst[0]):.1f} points)."
                   if s_drop >= u_drop else
                   f"At {pct}, structured pruning loses {s_drop:.1f} points on average against {u_drop:.1f} for "
                   f"unstructured L1 over the same {len(pairs)} groups.")
    return out


def plot_heatmap(drops: pd.DataFrame, title: str, path: Path) -> None:
    groups, ratios = list(drops.index), list(drops.columns)
    fig = new_figure(max(5.0, 1.0 + 0.9 * len(ratios)), max(2.5, 1.2 + 0.45 * len(groups)))
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
    save(fig, path)


def sensitivity_section(frame: pd.DataFrame, out_dir: Path) -> list[Block]:
    manifest = frame.attrs.get("manifest") or {}
    data = sensitivity_frame(manifest.get("sensitivity"))
    if data.empty:
        return []
    data = distinct_groups(data)
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
        baseline = rows.drop_duplicates("seed")["baseline_accuracy"].dropna() if "seed" in rows \
            else rows["baseline_accuracy"].dropna().iloc[:1]
        seeds = f" (mean over {len(baseline)} seeds)" if len(baseline) > 1 else ""
        note = f"Baseline accuracy {baseline.mean() * 100:.2f}%{seeds}." if len(baseline) else ""
        blocks += [Heading(3, title),
                   Paragraph(f"Accuracy (%) per group (rows) and fraction pruned (columns). {note}".strip()),
                   Table(display=display, data=rows.drop(columns=["accuracy_pct"]),
                         csv_name=unique_name(f"sensitivity-{slug(title)}", ".csv", names))]
        drops = pivot(rows, "drop_pp")
        if not drops.isna().all().all():
            png = unique_name(f"sensitivity-{slug(title)}", ".png", names)
            plot_heatmap(drops, f"{title}: accuracy drop (points)", out_dir / png)
            blocks.append(Image(png, f"{title}: accuracy drop per group and ratio",
                                "Darker cells lose more accuracy: the group whose row darkens first (leftmost) is the "
                                "one to prune least; a pale row tolerates pruning."))
    conclusions = []
    several = len({(r.get("task"), r.get("model")) for r in manifest["sensitivity"] if isinstance(r, dict)}) > 1
    for (task, model), rows in data.groupby(["task", "model"], sort=False):
        prefix = f"{task} / {model}: " if several else ""
        valid = [r for r in manifest["sensitivity"] if isinstance(r, dict) and str(r.get("task", "")) == task
                 and str(r.get("model", "")) == model and "baseline_accuracy" in r and "kind" in r]
        chance = chance_accuracy_pct(frame, task)
        baseline = rows["baseline_accuracy"].mean() * 100
        if chance is not None and baseline - chance <= NEAR_CHANCE_PP:
            conclusions.append(f"{prefix}no conclusions: the unpruned model's accuracy ({baseline:.1f}%) is within "
                               f"{NEAR_CHANCE_PP:g} points of always answering the most frequent label ({chance:.1f}%), "
                               "so pruning it cannot show what its parts contribute.")
            continue
        conclusions += [prefix + sentence for sentence in sensitivity_conclusions(valid)]
    if conclusions:
        blocks += [Heading(3, "Conclusions"), Paragraph("(derived from the rows above)"), Notes(tuple(conclusions))]
    return blocks
