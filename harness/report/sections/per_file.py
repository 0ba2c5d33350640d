"""Per file: the p50 of every timing window, the interval between windows, the ratio to the dense reference with
its interval, and the file's own memory; the within-window interval only as the diagnostic it is."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.report.compare import aa_band, band_sentence, is_reference, ratio_cell, records
from harness.report.format import DASH, display_frame, fmt_number, unique_name
from harness.report.frame import column
from harness.report.load import is_missing
from harness.report.render import Block, Heading, Notes, Paragraph, Table, slug
from runners.stats import log_t_interval
from harness.report.sections.pareto import file_label, relative_latency


def _interval(value: Any, spec: str = ".4g") -> str:
    if not isinstance(value, (list, tuple)) or len(value) != 2 or any(is_missing(v) for v in value):
        return DASH
    return f"[{fmt_number(value[0], spec)}, {fmt_number(value[1], spec)}]"


def _windows(value: Any) -> str:
    if not isinstance(value, (list, tuple)) or not value:
        return DASH
    return ", ".join(fmt_number(v, ".3g") for v in value)


def _width_pct(value: Any, centre: Any) -> float:
    if not isinstance(value, (list, tuple)) or len(value) != 2 or is_missing(centre) or not centre:
        return np.nan
    return (value[1] - value[0]) / centre * 100


def per_file_section(frame: pd.DataFrame, out_dir: Path) -> list[Block]:
    ok = frame[frame["status"].eq("ok") & frame["in_manifest"]]
    if ok.empty or column(ok, "latency_ms.p50_rounds").isna().all():
        return []
    blocks: list[Block] = [
        Heading(2, "Per file: timing windows and memory"),
        Paragraph("Every file is timed in several short windows spread over the run (rounds). p50 pools the calls "
                  "of all windows; the interval between windows is the 95% t interval of the geometric mean of the "
                  "windows' p50s, which is what a reader comparing two files should look at. The ratio to dense "
                  "divides each window by the dense reference's window timed next to it, round by round. Memory is "
                  "the file's own share of the process that measured it (resident size added by loading it, and "
                  "by loading and running it)."),
    ]
    names: set[str] = set()
    for (device, task), rows in ok.groupby(["device", "task"], sort=False):
        band = aa_band(frame, device, task)
        relative = relative_latency(rows)
        data = pd.DataFrame({
            "device": device, "task": task, "file": rows["file"], "label": [file_label(r) for _, r in rows.iterrows()],
            "p50_ms": rows["latency_ms.p50"],
            "p50_rounds": column(rows, "latency_ms.p50_rounds"),
            # runners 0.3-0.4 listed the windows without their interval: the same t interval, computed here
            "between_windows_ci95": [given if isinstance(given, list)
                                     else log_t_interval(windows) if isinstance(windows, list) else None
                                     for given, windows in zip(column(rows, "latency_ms.p50_rounds_ci95"),
                                                               column(rows, "latency_ms.p50_rounds"))],
            "within_window_ci95": column(rows, "latency_ms.p50_ci95"),
            "vs_dense": [np.nan if r is None else r.median for r in relative],
            "vs_dense_text": ["the dense reference" if is_reference(row) else ratio_cell(r, band)
                              for row, r in zip(records(rows), relative)],
            "load_increment_mb": rows["load_increment_mb"],
            "peak_increment_mb": rows["peak_increment_mb"],
        })
        data["between_width_pct"] = [_width_pct(v, c) for v, c in zip(data["between_windows_ci95"], data["p50_ms"])]
        data["within_width_pct"] = [_width_pct(v, c) for v, c in zip(data["within_window_ci95"], data["p50_ms"])]
        display = display_frame(data, [
            ("File", "label", None),
            ("p50 (ms)", "p50_ms", ".4g"),
            ("Between windows 95% (ms)", "between_windows_ci95", _interval),
            ("Windows' p50 (ms)", "p50_rounds", _windows),
            ("Latency vs dense [95%]", "vs_dense_text", None),
            ("Load +MB", "load_increment_mb", ".3g"),
            ("Peak +MB", "peak_increment_mb", ".3g"),
        ])
        title = f"{device} · {task}" if task else device
        blocks += [Heading(3, title), Paragraph(band_sentence(band)),
                   Table(display=display, data=data.drop(columns="vs_dense_text"),
                         csv_name=unique_name(f"per-file-{slug(title)}", ".csv", names))]
        between, within = data["between_width_pct"].median(), data["within_width_pct"].median()
        if not np.isnan(between) and not np.isnan(within):
            blocks.append(Notes((f"Median width of the interval between windows: {between:.2g}% of p50; of the "
                                 f"order-statistic interval within the pooled windows (`latency_ms.p50_ci95`, a "
                                 f"diagnostic of how steady the calls were, not an interval for the file): "
                                 f"{within:.2g}%.",)))
    return blocks if len(blocks) > 2 else []
