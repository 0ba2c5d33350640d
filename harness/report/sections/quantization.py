"""Pruning + quantization: each model with int8 files beside its fp32 ONNX file, with static int8 that lost more than
a point flagged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from harness.report.format import FLAG, display_frame, fmt_number, unique_name
from harness.report.frame import manifest_models, sparsity_rate_pct, technique_label
from harness.report.load import is_missing
from harness.report.render import Block, Heading, Notes, Paragraph, Table, slug
from runners.contract import FORMATS, ONNX, ONNX_INT8_STATIC

QUANT_FORMATS = {f.name: f.label for f in FORMATS.values() if f.int8}
# Static int8 more than this many points below its fp32 source on the same device is flagged.
QUANT_FLAG_PP = 1.0


def seed_suffix(row: pd.Series, several: bool) -> str:
    seed = row.get("seed")
    return f" (seed {int(seed)})" if several and not is_missing(seed) else ""


def _accuracy_cell(row: pd.Series) -> str:
    if row["status"] != "ok":
        return f"error: {row['error'] or row['status']}"
    flagged = row["quant_flag"] or row["int8_host_flag"]
    return fmt_number(row["device_accuracy_pct"], ".2f") + (f" {FLAG}" if flagged else "")


def quantization_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Per device, every model that has an int8 file: its fp32 onnx row and its int8 rows, with the static-int8
    flag (more than QUANT_FLAG_PP points below the fp32 file of the same model on the same device)."""
    quant = frame["format"].isin(list(QUANT_FORMATS))
    keys = set(zip(frame.loc[quant, "device"], frame.loc[quant, "name"]))
    if not keys:
        return frame.head(0)
    pair = pd.Series(list(zip(frame["device"], frame["name"])), index=frame.index).isin(keys)
    rows = frame[pair & (quant | frame["format"].eq(ONNX))].copy()
    fp32 = rows[rows["format"].eq(ONNX)].set_index(["device", "name"])["device_accuracy_pct"]
    source = [fp32.get((d, n), np.nan) for d, n in zip(rows["device"], rows["name"])]
    rows["fp32_accuracy_pct"] = source
    rows["drop_vs_fp32_pp"] = rows["fp32_accuracy_pct"] - rows["device_accuracy_pct"]
    rows["quant_flag"] = rows["format"].eq(ONNX_INT8_STATIC) & rows["drop_vs_fp32_pp"].round(9).gt(QUANT_FLAG_PP)
    # The same int8 file scoring otherwise on the device than on the host: its int8 kernels compute something else
    # there (another ISA's integer path, another onnxruntime), not a calibration problem.
    rows["int8_host_flag"] = rows["format"].isin(list(QUANT_FORMATS)) & rows["accuracy_mismatch"].eq(True)
    return rows


def quantization_section(frame: pd.DataFrame, out_dir: Path) -> list[Block]:
    rows = quantization_rows(frame)
    if rows.empty:
        return []
    rows = rows.assign(sparsity_rate_pct=sparsity_rate_pct(rows, frame).to_numpy())
    several = bool((manifest_models(frame).groupby("series")["seed"].nunique() > 1).any())
    blocks: list[Block] = [
        Heading(2, "Pruning + quantization"),
        Paragraph("Each model with an int8 file beside its fp32 ONNX file. Accuracy is measured by the runner on the "
                  f"device; {FLAG} marks static int8 more than {QUANT_FLAG_PP:g} point below its fp32 source on the "
                  "same device (a sign of a poor calibration set), and an int8 file whose device accuracy differs "
                  "from the same file's accuracy on the host (notes below the table), which means the device's int8 kernels "
                  "compute something else."),
    ]
    csv_names: set[str] = set()
    for device, device_rows in rows.groupby("device", sort=False):
        device_rows = device_rows.sort_values(["order"], kind="stable")
        # A failed file's latency is not a measurement, whatever the runner wrote.
        shown = device_rows.assign(latency_p50_s=device_rows["latency_p50_s"].where(device_rows["status"].eq("ok")))
        display = display_frame(shown, [
            ("Pruning Technique", lambda row: technique_label(row) + seed_suffix(row, several), None),
            ("Quantization", "format", lambda f: QUANT_FORMATS.get(f, "none (fp32)")),
            ("Sparsity Rate (%)", "sparsity_rate_pct", ".2f"),
            ("Accuracy (%)", _accuracy_cell, None),
            ("Disk Size (MB)", "disk_mb", ".4g"),
            ("Latency (s)", "latency_p50_s", ".3g"),
        ])
        data = device_rows[["device", "task", "name", "experiment", "method", "iteration", "seed", "format",
                            "status", "sparsity_rate_pct", "device_accuracy_pct", "fp32_accuracy_pct",
                            "drop_vs_fp32_pp", "quant_flag", "host_accuracy_pct", "int8_host_flag", "disk_mb",
                            "latency_p50_s"]]
        blocks += [Heading(3, device),
                   Table(display=display, data=data,
                         csv_name=unique_name(f"quantization-{slug(device)}", ".csv", csv_names))]
        flagged = device_rows[device_rows["quant_flag"]]
        notes = [f"{FLAG} {r['name']} (static int8): {r['device_accuracy_pct']:.2f}% vs {r['fp32_accuracy_pct']:.2f}% "
                 f"for its fp32 ONNX file ({r['drop_vs_fp32_pp']:.2f} points lower)." for _, r in flagged.iterrows()]
        notes += [f"{FLAG} {r['name']} ({QUANT_FORMATS[r['format']]}): {r['device_accuracy_pct']:.2f}% on this device "
                  f"vs {r['host_accuracy_pct']:.2f}% for the same file on the host: the device's int8 kernels compute "
                  f"something else (docs/methods.md, int8 on every device)."
                  for _, r in device_rows[device_rows["int8_host_flag"]].iterrows()]
        if notes:
            blocks.append(Notes(tuple(notes)))
    return blocks
