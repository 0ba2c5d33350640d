"""Results per device and experiment: the lab's table (iteration, sparsity, host and device accuracy, latency, disk
size, parameters) with seeds averaged, failed files shown, and device accuracies far from the host's flagged; beside
each, a CSV in the lab template's own columns and units (latency in seconds) for pasting into the write-up."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from harness.report.compare import device_noise_note
from harness.report.format import (DASH, FLAG, display_frame, fmt_int, fmt_mean_std, fmt_text, known, mean_std,
                                    unique_name)
from harness.report.frame import aggregate_seeds, seeds_column, task_column
from harness.report.load import ACCURACY_FLAG_PP, is_missing
from harness.report.render import Block, Heading, Notes, Paragraph, Table, slug
from harness.report.sections.methods import ONE_SEED_NOTE
from runners.contract import experiments_where

def _lab_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """Aggregated numbers for measured files plus one row per failed or missing file, in manifest order."""
    ok = rows[rows["status"] == "ok"]
    failed = rows[rows["status"] != "ok"]
    parts = []
    if len(ok):
        agg = aggregate_seeds(ok, by=["format"])
        agg["status"], agg["error"] = "ok", None
        parts.append(agg)
    if len(failed):
        single = aggregate_seeds(failed, by=["format", "seed", "name", "status", "error"])
        parts.append(single.drop(columns=["seed", "name"]))
    return pd.concat(parts, ignore_index=True).sort_values("order", kind="stable").reset_index(drop=True)


def _device_accuracy_cell(row: pd.Series) -> str:
    error = None if is_missing(row["error"]) else row["error"]
    if row["status"] == "missing":
        return error or "not measured"
    if row["status"] != "ok":
        return f"error: {error or row['status']}"
    cell = fmt_mean_std(row["device_accuracy_pct_mean"], row["device_accuracy_pct_std"], ".2f")
    return f"{cell} {FLAG}" if row["accuracy_mismatch"] else cell


def _parameters_cell(row: pd.Series) -> str:
    nonzero, params = row["nonzero_params_mean"], row["params_mean"]
    if is_missing(nonzero) or is_missing(params):
        return DASH
    spread = "≈" if not is_missing(row["nonzero_params_std"]) and row["nonzero_params_std"] > 0 else ""
    return f"{spread}{nonzero:,.0f}/{params:,.0f}"


def lab_display(agg: pd.DataFrame) -> pd.DataFrame:
    # A failed file's latency is not a measurement, whatever the runner wrote.
    agg = agg.assign(latency_p50_ms_mean=agg["latency_p50_ms_mean"].where(agg["status"] == "ok"))
    return display_frame(agg, [
        task_column(agg),
        ("Method", "method", None),
        ("Iteration", "iteration", fmt_int),
        ("Format", "format", None),
        seeds_column(agg),
        ("Sparsity (%)", mean_std("sparsity_pct", ".2f"), None),
        ("Accuracy (%) host", mean_std("host_accuracy_pct", ".2f"), None),
        ("Accuracy (%) device", _device_accuracy_cell, None),
        ("Latency p50 (ms)", mean_std("latency_p50_ms", ".3g"), None),
        ("Disk Size (MB)", mean_std("disk_mb", ".4g"), None),
        ("Parameters (nonzero/params)", _parameters_cell, None),
    ])


# The lab's table template, its headers and units as the exercise sheet prints them (latency in seconds there).
TEMPLATE_COLUMNS = {"Iteration": "iteration", "Sparsity (%)": "sparsity_pct_mean", "Accuracy (%)":
                    "device_accuracy_pct_mean", "Latency (s)": "latency_p50_s_mean", "Disk Size (MB)": "disk_mb_mean"}


def template_csv(agg: pd.DataFrame) -> pd.DataFrame:
    """The lab template's columns for the measured rows (seed means), latency in seconds, the format beside them."""
    ok = agg[agg["status"] == "ok"]
    table = pd.DataFrame({header: ok[column] for header, column in TEMPLATE_COLUMNS.items()})
    table.insert(1, "Format", ok["format"])
    return table


LAB_CSV_COLUMNS = ["device", "task", "experiment", "method", "iteration", "format", "seeds", "n_seeds", "status",
                   "error", "accuracy_mismatch"]


def _mismatch_notes(rows: pd.DataFrame) -> list[str]:
    notes = []
    for _, row in rows[rows["accuracy_mismatch"]].iterrows():
        notes.append(
            f"{FLAG} {row['name']} ({row['format']}): device accuracy {row['device_accuracy_pct']:.2f}% vs host "
            f"{row['host_accuracy_pct']:.2f}% ({row['accuracy_delta_pp']:+.2f} points), more than "
            f"{ACCURACY_FLAG_PP:g} percentage points apart."
        )
    return notes


def _settings_note(rows: pd.DataFrame) -> str:
    first = rows.iloc[0]
    batch = fmt_text(known(first.to_dict(), "settings.batch_size"))
    threads = known(first.to_dict(), "settings.threads")
    threads_text = "automatic threads" if threads == 0 else f"{fmt_text(threads)} thread(s)"
    return (f"Latency p50 (ms): device p50 for one batch of {batch} input(s), {threads_text}. Disk Size (MB): the "
            f"model file on the device (MB = 10^6 bytes). Host numbers from torch, device numbers from the runner; "
            f"± is the sample standard deviation over seeds.")


def lab_tables_section(frame: pd.DataFrame, out_dir: Path) -> list[Block]:
    blocks: list[Block] = [
        Heading(2, "Results per device and experiment"),
        Paragraph(f"One row per model file. {FLAG} marks a device accuracy more than {ACCURACY_FLAG_PP:g} "
                  "percentage points away from the host accuracy of the same file: torch's for the float32 "
                  "files, the workstation's onnxruntime for int8 files (none shown where the bundle has none)."),
    ]
    csv_names: set[str] = set()
    for device, device_rows in frame.groupby("device", sort=False):
        for experiment, rows in device_rows.groupby("experiment", sort=False):
            csv_name = unique_name(f"lab-{slug(device)}-{slug(experiment or 'none')}", ".csv", csv_names)
            agg = _lab_rows(rows)
            agg.insert(0, "device", device)
            csv = agg[LAB_CSV_COLUMNS + [c for c in agg.columns if c.endswith(("_mean", "_std"))
                                         and not c.startswith("latency_p50_s_")]]
            template = unique_name(f"lab-template-{slug(device)}-{slug(experiment or 'none')}", ".csv", csv_names)
            template_csv(agg).to_csv(out_dir / template, index=False)
            blocks.append(Heading(3, f"{device} · {experiment or 'no experiment'}"))
            blocks.append(Table(display=lab_display(agg), data=csv,
                                csv_name=csv_name))
            notes = [_settings_note(rows), device_noise_note(frame, device),
                     f"`{template}`: this table in the lab template's columns, latency in seconds as the template "
                     f"asks (the only place the report uses seconds), for pasting into the write-up.",
                     *_mismatch_notes(rows)]
            if experiment in experiments_where("compared") and (agg["n_seeds"] < 2).any():
                notes.append(ONE_SEED_NOTE)
            blocks.append(Notes(tuple(notes)))
    return blocks
