"""Pareto frontiers per device and task: the files (model x format) no other file beats on device accuracy and
latency, or on device accuracy and disk size; and the best deployable file (fastest within 1 point of dense).

Latency is compared through intervals (harness.report.compare): files whose latency intervals overlap are equally
fast here, so neither the frontier nor the best deployable file ranks what the measurements cannot tell apart."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from harness.report.compare import (AABand, Ratio, aa_band, band_sentence, indistinguishable, latency_ratio,
                                    noise_mark, ratio_cell, records)
from harness.report.format import display_frame, fmt_number, unique_name
from harness.report.frame import baseline_mask, technique_label
from harness.report.plots import log_scale_if_wide, new_figure, save
from harness.report.render import Block, Heading, Image, Paragraph, Table, slug
from runners.contract import DEPLOYABLE_PP, ONNX

AXES = {"latency": ("latency_p50_ms", "Device latency p50 (ms)"), "size": ("disk_mb", "Disk size on the device (MB)")}


def pareto_mask(accuracy: np.ndarray, cost: np.ndarray, low: np.ndarray | None = None,
                high: np.ndarray | None = None) -> np.ndarray:
    """True where no other point has accuracy >= and cost <= with at least one strictly better.

    With a cost interval [low, high] per point, costs whose intervals overlap count as equal: a point is beaten only
    by one at least as accurate that is more accurate or whose whole interval lies below its own. Identical points
    do not dominate each other, so ties are all on the frontier; NaN is never on it.
    Written by hand: O(n^2) over a few dozen files, no library on the dependency list offers it.
    """
    accuracy, cost = np.asarray(accuracy, dtype=float), np.asarray(cost, dtype=float)
    low = cost if low is None else np.where(np.isfinite(low), np.asarray(low, dtype=float), cost)
    high = cost if high is None else np.where(np.isfinite(high), np.asarray(high, dtype=float), cost)
    valid = np.isfinite(accuracy) & np.isfinite(cost)
    mask = valid.copy()
    for i in np.flatnonzero(valid):
        not_slower = low <= high[i]
        faster = high < low[i]
        others = valid & (accuracy >= accuracy[i]) & not_slower & ((accuracy > accuracy[i]) | faster)
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
    # both legends beside the axes: inside, "lower right" hid the dense file's point of a two-variant bundle
    first = ax.legend(loc="lower left", bbox_to_anchor=(1.02, 0.0), fontsize=8)
    ax.add_artist(first)
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, title="Frontier",
              handlelength=0)
    save(fig, path)


def dense_reference_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """The dense baseline's plain ONNX files among one device's rows of one task (the runner's reference first)."""
    base = rows[baseline_mask(rows) & rows["format"].eq(ONNX)]
    if "role" in base:
        base = base.assign(_first=~base["role"].eq("reference")).sort_values("_first", kind="stable")
        base = base.drop(columns="_first")
    return base


def relative_latency(rows: pd.DataFrame) -> list[Ratio | None]:
    """Each file's latency over the dense baseline's, with its interval where the result has rounds."""
    dense = records(dense_reference_rows(rows))
    return [latency_ratio([row], dense) if dense else None for row in records(rows)]


def best_deployable(rows: pd.DataFrame, band: AABand | None = None) -> str | None:
    """Sentences: the fastest file within DEPLOYABLE_PP of the dense fp32 baseline's device accuracy, its speed-up
    with its interval, whether that is within the A/A noise, and which files it cannot be told apart from."""
    base = dense_reference_rows(rows)
    if base.empty:
        return None
    base = base.iloc[0]
    floor = base["device_accuracy_pct"] - DEPLOYABLE_PP
    candidates = rows[rows["device_accuracy_pct"].round(9) >= round(floor, 9)].dropna(subset=["latency_p50_ms"])
    if candidates.empty:
        return None
    dense = records(dense_reference_rows(rows))
    speedups = {index: latency_ratio([row], dense) for index, row in zip(candidates.index, records(candidates))}
    speedups = {index: ratio.inverse() for index, ratio in speedups.items() if ratio is not None}
    if not speedups:
        return None
    best_index = max(speedups, key=lambda index: speedups[index].median)
    best, ratio = candidates.loc[best_index], speedups[best_index]
    size = base["disk_mb"] / best["disk_mb"]
    text = (f"Best deployable: {best['name']} ({best['format']}), {best['device_accuracy_pct']:.2f}% vs the dense "
            f"baseline's {base['device_accuracy_pct']:.2f}%, p50 {fmt_number(best['latency_p50_ms'], '.3g')} ms: "
            f"speed-up {ratio_cell(ratio, band)} and size reduction {size:.2f}× against the dense fp32 ONNX file "
            f"(p50 {fmt_number(base['latency_p50_ms'], '.3g')} ms, {fmt_number(best['disk_mb'], '.4g')} MB vs "
            f"{fmt_number(base['disk_mb'], '.4g')} MB).")
    if noise_mark(ratio, band) and (best["name"], best["format"]) != (base["name"], base["format"]):
        text += (" Its speed-up lies inside the A/A band, so it is not established that it runs faster than the "
                 "dense file at all.")
    tied = indistinguishable(((file_label(candidates.loc[i]), r) for i, r in speedups.items() if i != best_index),
                             ratio)
    if tied and ratio.ci95 is not None:
        shown = ", ".join(tied[:6]) + (f" and {len(tied) - 6} more" if len(tied) > 6 else "")
        text += (f" Not ranked against it: {len(tied)} other file(s) within the accuracy budget whose speed-up "
                 f"intervals overlap its own ({shown}).")
    elif ratio.ci95 is None:
        text += " This result has no rounds, so the speed-up has no interval and close files may be in any order."
    return text


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
                  "accuracy. Latencies are compared as ratios to the dense file with their 95% intervals over the "
                  "rounds: files whose intervals overlap count as equally fast, so a file leaves the latency "
                  "frontier only for one at least as accurate that is more accurate or clearly faster."),
    ]
    names: set[str] = set()
    for (device, task), rows in ok.groupby(["device", "task"], sort=False):
        rows = rows.assign(label=rows.apply(file_label, axis=1))
        band = aa_band(frame, device, task)
        relative = relative_latency(rows)
        rows = rows.assign(
            latency_vs_dense=[np.nan if r is None else r.median for r in relative],
            latency_vs_dense_low=[np.nan if r is None or r.ci95 is None else r.ci95[0] for r in relative],
            latency_vs_dense_high=[np.nan if r is None or r.ci95 is None else r.ci95[1] for r in relative],
            latency_vs_dense_text=[ratio_cell(r, band) for r in relative])
        # the latency frontier compares latencies relative to dense (one scale for every file of the group)
        # wherever the result has them, with their intervals
        cost = rows["latency_vs_dense"].where(rows["latency_vs_dense"].notna(), rows["latency_p50_ms"])
        has_ratio = rows["latency_vs_dense"].notna().all()
        marks = {
            "latency": pareto_mask(rows["device_accuracy_pct"], cost if has_ratio else rows["latency_p50_ms"],
                                   rows["latency_vs_dense_low"] if has_ratio else None,
                                   rows["latency_vs_dense_high"] if has_ratio else None),
            "size": pareto_mask(rows["device_accuracy_pct"], rows["disk_mb"]),
        }
        rows = rows.assign(frontier_latency=marks["latency"], frontier_size=marks["size"])
        members = rows[rows["frontier_latency"] | rows["frontier_size"]].sort_values("latency_p50_ms")
        title = f"{device} · {task}" if task else device
        blocks.append(Heading(3, title))
        blocks.append(Paragraph(band_sentence(band)))
        sentence = best_deployable(rows, band)
        if sentence:
            blocks.append(Paragraph(sentence))
        display = display_frame(members, [
            ("File", "label", None),
            ("Name", "name", None),
            ("Accuracy (%) device", "device_accuracy_pct", ".2f"),
            ("Latency p50 (ms)", "latency_p50_ms", ".3g"),
            ("Latency vs dense [95%]", "latency_vs_dense_text", None),
            ("Disk Size (MB)", "disk_mb", ".4g"),
            ("Accuracy-latency frontier", "frontier_latency", _yes),
            ("Accuracy-size frontier", "frontier_size", _yes),
        ])
        data = rows[["device", "task", "name", "format", "file", "device_accuracy_pct", "latency_p50_ms",
                     "latency_vs_dense", "latency_vs_dense_low", "latency_vs_dense_high", "disk_mb",
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
