"""Structured pruning: each structured variant against the task's dense baseline on the same device (sparsity rate,
accuracy, latency, size, speed-up)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from harness.report.format import display_frame, fmt_ratio, format_rank, unique_name
from harness.report.frame import baseline_mask, is_structured, plan_position, sparsity_rate_pct, technique_label
from harness.report.render import Block, Heading, Paragraph, Table, slug
from runners.contract import ONNX

# What the table shows of each variant, averaged over its seeds.
MEASURES = ["sparsity_rate_pct", "device_accuracy_pct", "latency_p50_ms", "disk_mb"]


def _baseline_device(rows: pd.DataFrame) -> pd.Series | None:
    """Mean device numbers of the dense fp32 ONNX baseline among one device's rows of one task."""
    base = rows[baseline_mask(rows) & rows["format"].eq(ONNX) & rows["status"].eq("ok")]
    if base.empty:
        return None
    return base[["device_accuracy_pct", "latency_p50_ms", "disk_mb", "params"]].mean()


def _format_ranks(values: pd.Series) -> pd.Series:
    return values.map(format_rank) if values.name == "format" else values


def structured_section(frame: pd.DataFrame, out_dir: Path) -> list[Block]:
    if not is_structured(frame).any():
        return []
    frame = frame.assign(sparsity_rate_pct=sparsity_rate_pct(frame, frame),
                         technique=frame.apply(technique_label, axis=1))
    blocks: list[Block] = [
        Heading(2, "Structured pruning"),
        Paragraph("Structured pruning removes whole neurons, heads, layers or channels, so the exported model has "
                  "fewer parameters. Sparsity Rate = 1 - parameters / parameters of the task's dense baseline. "
                  "Accuracy, latency (p50) and disk size are measured on the device; speed-up and size are relative "
                  "to the dense baseline's plain ONNX file on the same device."),
    ]
    csv_names: set[str] = set()
    found = False
    for (device, task), rows in frame.groupby(["device", "task"], sort=False):
        dense = baseline_mask(rows) & rows["format"].eq(ONNX)
        chosen = rows[(is_structured(rows) | dense) & rows["status"].eq("ok")]
        if not is_structured(chosen).any():
            continue
        found = True
        base = _baseline_device(rows)
        # One row per structured variant (its seeds averaged) and file format, the dense baseline first, then the
        # variants in plan order.
        structured = is_structured(chosen)
        chosen = chosen.assign(variant=chosen["series"].where(structured, ""),
                               position=plan_position(chosen).where(structured, -1))
        agg = (chosen.groupby(["technique", "variant", "format"], sort=False, dropna=False)
               [["position", *MEASURES]].mean().reset_index())
        agg = agg.sort_values(["format", "position"], key=_format_ranks, kind="stable")
        agg = agg.drop(columns=["variant", "position"])
        agg["speedup"] = base["latency_p50_ms"] / agg["latency_p50_ms"] if base is not None else np.nan
        agg["size_ratio"] = agg["disk_mb"] / base["disk_mb"] if base is not None else np.nan
        display = display_frame(agg, [
            ("Structure Pruned", "technique", None),
            ("Format", "format", None) if agg["format"].nunique() > 1 else None,
            ("Sparsity Rate (%)", "sparsity_rate_pct", ".2f"),
            ("Accuracy (%)", "device_accuracy_pct", ".2f"),
            ("Latency p50 (ms)", "latency_p50_ms", ".3g"),
            ("Disk Size (MB)", "disk_mb", ".4g"),
            ("Speed-up vs dense", "speedup", fmt_ratio),
            ("Size vs dense", "size_ratio", fmt_ratio),
        ])
        blocks.append(Heading(3, f"{device} · {task}"))
        blocks.append(Table(display=display, data=agg.assign(device=device, task=task),
                            csv_name=unique_name(f"structured-{slug(device)}-{slug(task)}", ".csv", csv_names)))
        if base is None:
            blocks.append(Paragraph("No dense baseline was measured on this device, so speed-up and size are not "
                                    "computed."))
    return blocks if found else []
