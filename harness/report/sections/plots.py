"""Plots: accuracy against sparsity, against device disk size and against device latency (one PNG per task each),
each with a one-line caption saying what to look at.

Colour is (experiment, method) in every plot. Accuracy vs sparsity draws lines in round order (marker = where it was
measured: workstation or device); accuracy vs size and vs latency draw points, one panel per device (marker = file
format), because neither cost falls in round order and lines through them zig-zag. Seeds are averaged; error bars
show their sample standard deviation."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from harness.report.format import format_rank
from harness.report.frame import plan_position, primary_file_rows, sparsity_rate_pct
from harness.report.plots import log_scale_if_wide, new_figure, save
from harness.report.render import Block, Heading, Image, Paragraph, slug

HOST_SOURCE = "workstation (torch)"
# Ten tableau colours and five more: the full MNIST plan has eleven (experiment, method) pairs, and a colour shared by
# two of them (baseline and neurons-l2 were both blue) made two methods read as one.
COLOURS = [f"tab:{c}" for c in ("blue", "orange", "green", "red", "purple", "brown", "pink", "olive", "cyan",
                                "gray")] + ["black", "darkgoldenrod", "navy", "lime", "magenta"]
DEVICE_MARKERS = ["s", "^", "D", "v", "P", "X", "*", "h"]
FORMAT_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]
LINESTYLES = ["-", "--", ":", "-.", (0, (5, 1, 1, 1, 1, 1)), (0, (1, 3))]


@dataclass(frozen=True)
class PlotStyle:
    """Fixed look-up from series keys to colour, marker and line style, shared by all plots of a report."""

    colours: dict[tuple[str, str], str]
    markers: dict[str, str]
    linestyles: dict[str, object]
    format_markers: dict[str, str]

    @classmethod
    def for_frame(cls, frame: pd.DataFrame) -> "PlotStyle":
        methods = list(dict.fromkeys(zip(frame["experiment"], frame["method"])))
        devices = list(dict.fromkeys(frame["device"]))
        formats = sorted(set(frame["format"]), key=format_rank)
        return cls(
            colours={m: COLOURS[i % len(COLOURS)] for i, m in enumerate(methods)},
            markers={HOST_SOURCE: "o", **{d: DEVICE_MARKERS[i % len(DEVICE_MARKERS)] for i, d in enumerate(devices)}},
            linestyles={f: LINESTYLES[i % len(LINESTYLES)] for i, f in enumerate(formats)},
            format_markers={f: FORMAT_MARKERS[i % len(FORMAT_MARKERS)] for i, f in enumerate(formats)},
        )


def method_label(experiment: str, method: str) -> str:
    return " / ".join(part for part in (experiment, method) if part) or "model"


def seed_means(rows: pd.DataFrame, line_keys: Sequence[str], x: str, y: str) -> pd.DataFrame:
    """Mean and sample std of x and y over seeds, one point per variant (series) of each line (`line_keys`), the
    points of a line in plan order."""
    rows = rows.dropna(subset=[x, y])
    grouped = rows.assign(position=plan_position(rows)).groupby([*line_keys, "series"], dropna=False, sort=False)
    stats = grouped[[x, y]].agg(["mean", "std"])
    stats.columns = ["x", "x_std", "y", "y_std"]
    stats["position"] = grouped["position"].min()
    return (stats.reset_index().sort_values([*line_keys, "position"], kind="stable")
            .fillna({"x_std": 0.0, "y_std": 0.0}))


def _draw(ax, points: pd.DataFrame, colour: str, marker: str, linestyle: object, filled: bool) -> None:
    has_spread = (points["x_std"] > 0).any() or (points["y_std"] > 0).any()
    ax.errorbar(
        points["x"], points["y"],
        xerr=points["x_std"] if has_spread else None, yerr=points["y_std"] if has_spread else None,
        color=colour, marker=marker, linestyle=linestyle, linewidth=1.4, capsize=3, elinewidth=1,
        # Host points are small filled dots drawn on top; device markers are larger and hollow, so a device that
        # agrees with the host shows as a dot inside its marker instead of hiding it.
        markersize=5 if filled else 8, markerfacecolor=colour if filled else "none", markeredgewidth=1.3,
        zorder=3 if filled else 2,
    )


def _legend(ax, style: PlotStyle, methods: list, sources: list, formats: list, format_markers: bool = False) -> None:
    """One legend in three labelled groups instead of one entry per combination."""
    handles, labels, headers = [], [], []

    def group(title: str, entries: list[tuple[Line2D, str]]) -> None:
        if not entries:
            return
        headers.append(len(handles))
        handles.append(Line2D([], [], linestyle="none"))
        labels.append(title)
        for handle, label in entries:
            handles.append(handle)
            labels.append(label)

    group("Experiment / method", [(Line2D([], [], color=style.colours[m], linewidth=3), method_label(*m))
                                  for m in methods])
    group("Measured on", [(Line2D([], [], color="black", marker=style.markers[s], linestyle="none",
                                  markerfacecolor="black" if s == HOST_SOURCE else "none"), s) for s in sources])
    group("File format", [(Line2D([], [], color="black", marker=style.format_markers[f], linestyle="none",
                                  markerfacecolor="none") if format_markers
                           else Line2D([], [], color="black", linestyle=style.linestyles[f]), f) for f in formats])
    legend = ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=True,
                       handlelength=3)
    for index in headers:
        legend.get_texts()[index].set_fontweight("bold")


def _new_axes(title: str, xlabel: str) -> tuple[Figure, Axes]:
    fig = new_figure(9, 5.5)
    ax = fig.add_subplot()
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("Accuracy (%)")
    ax.grid(True, alpha=0.35)
    return fig, ax


def plot_accuracy_vs_sparsity(rows: pd.DataFrame, style: PlotStyle, task: str, path: Path) -> bool:
    # Structured variants have no zero weights: they sit at the lab's "Sparsity Rate", the parameters removed.
    rows = rows.assign(sparsity_pct=sparsity_rate_pct(rows, rows))
    fig, ax = _new_axes(f"{task}: accuracy vs sparsity",
                        "Sparsity of prunable weights (%); structured: parameters removed (%)")
    methods, sources = [], []
    host = seed_means(rows[rows["in_manifest"]].drop_duplicates("name"), ["experiment", "method"],
                      "sparsity_pct", "host_accuracy_pct")
    for (experiment, method), points in host.groupby(["experiment", "method"], sort=False):
        _draw(ax, points, style.colours[(experiment, method)], style.markers[HOST_SOURCE], "-", filled=True)
        methods.append((experiment, method))
        sources.append(HOST_SOURCE)
    device = seed_means(primary_file_rows(rows[rows["status"] == "ok"]), ["experiment", "method", "device"],
                        "sparsity_pct", "device_accuracy_pct")
    for (experiment, method, dev), points in device.groupby(["experiment", "method", "device"], sort=False):
        _draw(ax, points, style.colours[(experiment, method)], style.markers[dev], "--", filled=False)
        methods.append((experiment, method))
        sources.append(dev)
    if not methods:
        return False
    _legend(ax, style, list(dict.fromkeys(methods)), list(dict.fromkeys(sources)), [])
    ax.text(0.0, -0.13, "Filled markers, solid lines: host accuracy (torch). Open markers, dashed: device accuracy "
            "of the plain ONNX file.", transform=ax.transAxes, fontsize=8, va="top")
    save(fig, path)
    return True


def plot_accuracy_vs_device(rows: pd.DataFrame, style: PlotStyle, x: str, title: str, xlabel: str,
                            path: Path, log_if_wide: bool = False, per_device: bool = True) -> bool:
    """Device accuracy against a device measurement: one panel per device (`per_device`; else the first device's
    alone, for a cost every device shares such as file size), one point per (variant, file format), colour =
    method, marker = format; points, not lines, since the cost does not fall in round order."""
    keys = ["experiment", "method", "device", "format"]
    points_all = seed_means(rows[rows["status"] == "ok"], keys, x, "device_accuracy_pct")
    if points_all.empty:
        return False
    devices = list(dict.fromkeys(points_all["device"]))[: None if per_device else 1]
    fig = new_figure(9, 1.0 + 4.2 * len(devices))
    axes = fig.subplots(len(devices), 1, sharex=True, squeeze=False)[:, 0]
    methods, formats = [], []
    for ax, device in zip(axes, devices):
        for (experiment, method, _, fmt), points in points_all[points_all["device"].eq(device)].groupby(
                keys, sort=False):
            colour = style.colours[(experiment, method)]
            has_spread = (points["x_std"] > 0).any() or (points["y_std"] > 0).any()
            ax.errorbar(points["x"], points["y"], xerr=points["x_std"] if has_spread else None,
                        yerr=points["y_std"] if has_spread else None, color=colour, linestyle="none",
                        marker=style.format_markers[fmt], markersize=7, markerfacecolor="none",
                        markeredgewidth=1.4, capsize=3, elinewidth=1, alpha=0.9)
            methods.append((experiment, method))
            formats.append(fmt)
        ax.set_title(f"{title}\n{device}" if ax is axes[0] else device, fontsize=10)
        ax.set_ylabel("Device accuracy (%)")
        ax.grid(True, alpha=0.35)
        if log_if_wide:
            log_scale_if_wide(ax, points_all["x"])
    axes[-1].set_xlabel(xlabel)
    _legend(axes[0], style, list(dict.fromkeys(methods)), [], sorted(set(formats), key=format_rank),
            format_markers=True)
    save(fig, path)
    return True


def plots_section(frame: pd.DataFrame, out_dir: Path) -> list[Block]:
    style = PlotStyle.for_frame(frame)
    blocks: list[Block] = [
        Heading(2, "Plots"),
        Paragraph("Colour: experiment / method, the same in every plot. Accuracy vs sparsity: lines in round order, "
                  "filled markers the workstation's (torch) accuracy, open markers each device's. Accuracy vs size "
                  "and vs latency: one point per file, marker = file format, one panel per device. Points are means "
                  "over seeds with sample-std error bars where several seeds exist."),
    ]
    batch_sizes = sorted({str(b) for b in frame["settings.batch_size"].dropna().astype(int)})
    batch_text = f"batch {', '.join(batch_sizes)}" if batch_sizes else "per batch"
    for task, rows in frame.groupby("task", sort=False):
        name = task or "model"
        plots = [
            ("accuracy-vs-sparsity", lambda p: plot_accuracy_vs_sparsity(rows, style, name, p),
             f"{name}: accuracy against sparsity",
             "Look for the sparsity where each method's line leaves the dense accuracy (its leftmost point): beyond "
             "it pruning costs accuracy; an open marker away from its filled one is a device that disagrees."),
            ("accuracy-vs-disk-size", lambda p: plot_accuracy_vs_device(
                rows, style, "disk_mb", f"{name}: accuracy vs model file size", "Disk size of the model file (MB)",
                p, per_device=False), f"{name}: accuracy against disk size",
             "Up and left is better: a file left of the dense fp32 point at the same height is smaller at no cost "
             f"in accuracy (accuracy as measured on {rows['device'].iloc[0]})."),
            ("accuracy-vs-latency", lambda p: plot_accuracy_vs_device(
                rows, style, "latency_p50_ms", f"{name}: accuracy vs device latency",
                f"Device latency p50, {batch_text} (ms)", p, log_if_wide=True),
             f"{name}: accuracy against device latency",
             "Up and left is better, per device: only files clearly left of the dense fp32 point are faster; "
             "the summary's ratios say which gaps are beyond the device's noise."),
        ]
        for stem, draw, alt, caption in plots:
            file = f"{slug(name)}-{stem}.png"
            if draw(out_dir / file):
                blocks.append(Image(file, alt, caption))
            else:
                blocks.append(Paragraph(f"{alt}: nothing to plot (no successful measurement)."))
    return blocks
