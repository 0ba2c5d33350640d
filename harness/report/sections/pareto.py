"""Pareto frontiers per device and task: the files (model x format) no other file beats on device accuracy and
latency, or on device accuracy and disk size; and the best deployable file (fastest within 1 point of dense)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from harness.report.format import display_frame, fmt_number, unique_name
from harness.report.frame import baseline_mask, is_structured, technique_label
from harness.report.load import is_missing
from harness.report.plots import log_scale_if_wide, new_figure, save
from harness.report.render import Block, Heading, Image, Paragraph, Table, slug
from runners.contract import DEPLOYABLE_PP, ONNX

AXES = {"latency": ("latency_p50_ms", "Device latency p50 (ms)"), "size": ("disk_mb", "Disk size on the device (MB)")}


def pareto_mask(accuracy: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """True where no other point has accuracy >= and cost <= with at least one strictly better.

    Identical points do not dominate each other, so ties are all on the frontier; NaN is never on it.
    Written by hand: O(n^2) over a few dozen files, no library on the dependency list offers it.
    """
    accuracy, cost = np.asarray(accuracy, dtype=float), np.asarray(cost, dtype=float)
    valid = np.isfinite(accuracy) & np.isfinite(cost)
    mask = valid.copy()
    for i in np.flatnonzero(valid):
        others = valid & (accuracy >= accuracy[i]) & (cost <= cost[i]) & ((accuracy > accuracy[i]) | (cost < cost[i]))
        mask[i] = not others.any()
    return mask


def _yes(on_frontier: bool) -> str:
    return "yes" if on_frontier else ""


def file_label(row: pd.Series) -> str:
    return f"{technique_label(row)} [{row['format']}]"


def plot_frontier(points: pd.DataFrame, frontier: pd.Series, x: str, xlabel: str, title: str, path: Path) -> None:
    fig = new_figure(9, 5.5)
    ax = fig.add_subplot()
    ax.scatter(points[x], points["device_accuracy_pct"], color="lightgray", edgecolor="gray", s=30,
               label="all files", zorder=2)
    front = points[frontier].sort_values(x)
    ax.plot(front[x], front["device_accuracy_pct"], color="tab:red", marker="o", linewidth=1.5,
            label="Pareto frontier", zorder=3)
    # Frontier points are often close together, so they carry numbers and the legend names them.
    handles = []
    for number, (_, row) in enumerate(front.iterrows(), start=1):
        ax.annotate(str(number), (row[x], row["device_accuracy_pct"]), textcoords="offset points", xytext=(4, 4),
                    fontsize=8, fontweight="bold", color="tab:red")
        handles.append(Line2D([], [], linestyle="none", label=f"{number}: {row['label']}"))
    log_scale_if_wide(ax, points[x])
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("Device accuracy (%)")
    ax.grid(True, alpha=0.35)
    first = ax.legend(loc="lower right", fontsize=8)
    ax.add_artist(first)
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, title="Frontier",
              handlelength=0)
    save(fig, path)


def best_deployable(rows: pd.DataFrame) -> str | None:
    """One sentence: the fastest file within DEPLOYABLE_PP of the dense fp32 baseline's device accuracy."""
    base = rows[baseline_mask(rows) & rows["format"].eq(ONNX)]
    if base.empty:
        return None
    base = base.iloc[0]
    floor = base["device_accuracy_pct"] - DEPLOYABLE_PP
    candidates = rows[rows["device_accuracy_pct"].round(9) >= round(floor, 9)].dropna(subset=["latency_p50_ms"])
    if candidates.empty:
        return None
    best = candidates.loc[candidates["latency_p50_ms"].idxmin()]
    speedup = base["latency_p50_ms"] / best["latency_p50_ms"]
    size = base["disk_mb"] / best["disk_mb"]
    text = (f"Best deployable: {best['name']} ({best['format']}), {best['device_accuracy_pct']:.2f}% vs the dense "
            f"baseline's {base['device_accuracy_pct']:.2f}%, p50 {fmt_number(best['latency_p50_ms'], '.3g')} ms: "
            f"speed-up {speedup:.2f}× and size reduction {size:.2f}× against the dense fp32 ONNX file "
            f"(p50 {fmt_number(base['latency_p50_ms'], '.3g')} ms, {fmt_number(best['disk_mb'], '.4g')} MB vs "
            f"{fmt_number(base['disk_mb'], '.4g')} MB).")
    ci_best, ci_base = best.get("latency_ms.p50_ci95"), base.get("latency_ms.p50_ci95")
    if (best["name"], best["format"]) != (base["name"], base["format"]) and _overlap(ci_best, ci_base):
        text += " Its p50 95% interval overlaps the baseline's, so the speed difference is within measurement noise."
    copies = rows[rows["format"].eq(ONNX) & rows["sparsity"].fillna(-1).eq(0) & ~is_structured(rows)]
    p50 = copies["latency_p50_ms"].dropna()
    if len(p50) >= 2 and p50.min() > 0:
        text += (f" Unpruned copies of the dense model ({len(p50)} files) measured {fmt_number(p50.min(), '.3g')} to "
                 f"{fmt_number(p50.max(), '.3g')} ms here, a {p50.max() / p50.min() - 1:.1%} spread between runs: "
                 "latency differences smaller than that are noise, not the model.")
    return text


def _overlap(a, b) -> bool:
    if not isinstance(a, (list, tuple)) or not isinstance(b, (list, tuple)) or len(a) != 2 or len(b) != 2:
        return False
    if any(is_missing(v) for v in (*a, *b)):
        return False
    return a[0] <= b[1] and b[0] <= a[1]


def pareto_section(frame: pd.DataFrame, out_dir: Path) -> list[Block]:
    ok = frame[frame["status"].eq("ok")].dropna(subset=["device_accuracy_pct"])
    if ok.empty:
        return []
    blocks: list[Block] = [
        Heading(2, "Pareto frontiers"),
        Paragraph("Each point is one model file (model x format) measured on the device. A file is on a frontier when "
                  "no other file of the same task on the same device is at least as accurate and at least as cheap "
                  "(p50 latency, or disk size) and strictly better in one of the two; equal files are all kept. "
                  f"Best deployable: the fastest file within {DEPLOYABLE_PP:g} point of the dense baseline's device "
                  "accuracy."),
    ]
    names: set[str] = set()
    for (device, task), rows in ok.groupby(["device", "task"], sort=False):
        rows = rows.assign(label=rows.apply(file_label, axis=1))
        marks = {axis: pareto_mask(rows["device_accuracy_pct"], rows[x]) for axis, (x, _) in AXES.items()}
        rows = rows.assign(frontier_latency=marks["latency"], frontier_size=marks["size"])
        members = rows[rows["frontier_latency"] | rows["frontier_size"]].sort_values("latency_p50_ms")
        title = f"{device} · {task}" if task else device
        blocks.append(Heading(3, title))
        sentence = best_deployable(rows)
        if sentence:
            blocks.append(Paragraph(sentence))
        display = display_frame(members, [
            ("File", "label", None),
            ("Name", "name", None),
            ("Accuracy (%) device", "device_accuracy_pct", ".2f"),
            ("Latency p50 (ms)", "latency_p50_ms", ".3g"),
            ("Disk Size (MB)", "disk_mb", ".4g"),
            ("Accuracy-latency frontier", "frontier_latency", _yes),
            ("Accuracy-size frontier", "frontier_size", _yes),
        ])
        data = rows[["device", "task", "name", "format", "file", "device_accuracy_pct", "latency_p50_ms", "disk_mb",
                     "frontier_latency", "frontier_size"]]
        blocks.append(Table(display=display, data=data,
                            csv_name=unique_name(f"pareto-{slug(title)}", ".csv", names)))
        for axis, (x, xlabel) in AXES.items():
            plotted = rows.dropna(subset=[x])
            if plotted.empty:
                continue
            png = unique_name(f"pareto-{slug(title)}-accuracy-vs-{axis}", ".png", names)
            plot_frontier(plotted, plotted[f"frontier_{axis}"], x, xlabel,
                          f"{title}: accuracy vs {axis}, Pareto frontier", out_dir / png)
            blocks.append(Image(png, f"{title}: Pareto frontier of accuracy and {axis}",
                                f"The red line joins the files no other file beats on both accuracy and {axis} "
                                "(numbered in the legend); a grey point below or right of it is a worse choice."))
    return blocks
