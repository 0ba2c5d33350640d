"""Results per device and experiment: the lab's table (iteration, sparsity, host and device accuracy, latency, disk
size, parameters) with seeds averaged, failed files shown, and device accuracies far from the host's flagged."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from harness.report.format import DASH, FLAG, fmt_int, fmt_mean_std, fmt_text, known, unique_name
from harness.report.frame import aggregate_seeds
from harness.report.load import ACCURACY_FLAG_PP, is_missing
from harness.report.render import Block, Heading, Notes, Paragraph, Table, slug

SEED_KEYS = ["task", "experiment", "method", "iteration", "format"]


def _lab_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """Aggregated numbers for measured files plus one row per failed or missing file, in manifest order."""
    ok = rows[rows["status"] == "ok"]
    failed = rows[rows["status"] != "ok"]
    parts = []
    if len(ok):
        agg = aggregate_seeds(ok, SEED_KEYS)
        agg["status"], agg["error"] = "ok", None
        parts.append(agg)
    if len(failed):
        single = aggregate_seeds(failed, SEED_KEYS + ["seed", "name", "status", "error"])
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
    ok = agg["status"] == "ok"
    display = pd.DataFrame({
        "Method": agg["method"],
        "Iteration": agg["iteration"].map(fmt_int),
        "Format": agg["format"],
        "Seeds": agg["seeds"],
        "Sparsity (%)": [fmt_mean_std(m, s, ".2f") for m, s in zip(agg["sparsity_pct_mean"], agg["sparsity_pct_std"])],
        "Accuracy (%) host": [fmt_mean_std(m, s, ".2f")
                              for m, s in zip(agg["host_accuracy_pct_mean"], agg["host_accuracy_pct_std"])],
        "Accuracy (%) device": agg.apply(_device_accuracy_cell, axis=1),
        "Latency (s)": [fmt_mean_std(m, s, ".3g") if good else DASH
                        for m, s, good in zip(agg["latency_p50_s_mean"], agg["latency_p50_s_std"], ok)],
        "Disk Size (MB)": [fmt_mean_std(m, s, ".4g") for m, s in zip(agg["disk_mb_mean"], agg["disk_mb_std"])],
        "Parameters (nonzero/params)": agg.apply(_parameters_cell, axis=1),
    })
    if (agg["task"].nunique() > 1):
        display.insert(0, "Task", agg["task"])
    if (agg["seeds"] == DASH).all():
        display = display.drop(columns=["Seeds"])
    return display


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
    return (f"Latency (s): device p50 for one batch of {batch} input(s), {threads_text}. Disk Size (MB): the model "
            f"file on the device (MB = 10^6 bytes). Host numbers from torch, device numbers from the runner; "
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
            csv = agg[LAB_CSV_COLUMNS + [c for c in agg.columns if c.endswith(("_mean", "_std"))]]
            blocks.append(Heading(3, f"{device} · {experiment or 'no experiment'}"))
            blocks.append(Table(display=lab_display(agg), data=csv,
                                csv_name=csv_name))
            notes = [_settings_note(rows), *_mismatch_notes(rows)]
            blocks.append(Notes(tuple(notes)))
    return blocks
