"""Table sections of the report: provenance, devices, the lab's per-experiment tables, host storage.

Each section is `section(frame, out_dir) -> list[Block]` over the frame from `load.load_frame`; adding a section
is one function plus a line in `build.SECTIONS`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from harness.report.format import (DASH, FLAG, fmt_int, fmt_mean_std, fmt_number, fmt_text, known,
                                    unique_name)
from harness.report.frame import aggregate_seeds
from harness.report.load import ACCURACY_FLAG_PP, BYTES_PER_MB, call_api, flatten, is_missing
from harness.report.render import Block, Heading, Notes, Paragraph, Table, slug
from harness.representations import ENTROPY_BOUND, LOSSY

SEED_KEYS = ["task", "experiment", "method", "iteration", "format"]


# ---------------------------------------------------------------- provenance


def provenance_section(frame: pd.DataFrame, out_dir: Path) -> list[Block]:
    attrs = frame.attrs
    manifest = attrs.get("manifest", {})
    bundle_facts = ", ".join(
        f"{key} {manifest[key]}" for key in ("profile", "created", "edgeprune_version") if manifest.get(key)
    )
    merged = "; ".join(f"`{r['path']}` ({r['device']})" for r in attrs.get("results", []))
    text = (
        "Host numbers (sparsity, parameter counts, host accuracy, storage sizes) come from torch on the workstation "
        f"where training ran, via the manifest of bundle `{attrs.get('bundle_dir')}` "
        f"(id {str(attrs.get('bundle_id'))[:12]}{', ' + bundle_facts if bundle_facts else ''}). "
        "Device numbers (latency, disk size, device accuracy) come from the runner on each device. "
        f"Merged result files: {merged}."
    )
    return [Heading(2, "Provenance"), Paragraph(text)]


# ---------------------------------------------------------------- devices


def hardware_facts(flat: Mapping[str, Any]) -> dict[str, str]:
    """Rows of the hardware table for one flattened device ("device.*", "settings.*" keys)."""
    freq = {k: known(flat, f"device.cpu_freq_mhz.{k}") for k in ("max", "current", "min")}
    freq_text = (
        f"max {fmt_number(freq['max'], '.0f')}, current {fmt_number(freq['current'], '.0f')}"
        if freq["max"] or freq["current"] else DASH
    )
    flags = sorted(k.rsplit(".", 1)[1] for k, v in flat.items() if k.startswith("device.isa_flags.")
                   and isinstance(v, (bool, np.bool_)) and bool(v))
    memory = known(flat, "device.memory_total_mb")
    os_name = " / ".join(str(v) for v in (known(flat, "device.os_release"), known(flat, "device.os")) if v)
    threads = known(flat, "settings.threads")
    return {
        "Hostname": fmt_text(known(flat, "device.hostname")),
        "CPU model": fmt_text(known(flat, "device.cpu_model")),
        "Machine": fmt_text(known(flat, "device.machine")),
        "Cores (physical/logical)": f"{fmt_text(known(flat, 'device.physical_cores'))}/"
                                    f"{fmt_text(known(flat, 'device.logical_cores'))}",
        "CPU frequency (MHz)": freq_text,
        "ISA flags (true)": ", ".join(flags) if flags else DASH,
        "Memory (MiB)": DASH if memory is None else f"{float(memory):,.0f}",
        "OS": os_name or DASH,
        "Python": fmt_text(known(flat, "device.python")),
        "onnxruntime": fmt_text(known(flat, "device.onnxruntime")),
        "Providers": fmt_text(known(flat, "device.providers")),
        "Bench threads": DASH if threads is None else ("auto (0)" if threads == 0 else fmt_text(threads)),
        "Bench batch size": fmt_text(known(flat, "settings.batch_size")),
        "Bench calls": DASH if threads is None else call_api({"api": known(flat, "settings.api")}),
        "Bench warm-up / min runs / min seconds": " / ".join(
            fmt_text(known(flat, f"settings.{k}")) for k in ("warmup", "min_runs", "min_seconds")),
        # runners before 0.3 timed each file in one window
        "Bench rounds": DASH if threads is None else fmt_text(known(flat, "settings.rounds") or 1),
        "Runner": fmt_text(known(flat, "runner_version")),
    }


def devices_section(frame: pd.DataFrame, out_dir: Path) -> list[Block]:
    columns: dict[str, dict[str, str]] = {}
    host = flatten({"device": frame.attrs.get("host") or {}})
    columns["Workstation (training ran here)"] = {"Source": "manifest host (torch)", **hardware_facts(host)}
    for _, first in frame.drop_duplicates("device").iterrows():
        columns[first["device"]] = {"Source": Path(first["result_path"]).name, **hardware_facts(first.to_dict())}
    table = pd.DataFrame(columns)
    table.index.name = "Fact"
    table = table.reset_index()
    return [
        Heading(2, "Devices"),
        Paragraph("One column per result file; the same machine with other bench settings is a separate device. "
                  "The workstation trained the models and computed the host numbers; it is not a measured device "
                  "unless one of the result files comes from it."),
        Table(display=table, data=table, csv_name="devices.csv"),
    ]


# ---------------------------------------------------------------- the lab's tables


LAB_COLUMNS = ["Iteration", "Sparsity (%)", "Accuracy (%) host", "Accuracy (%) device", "Latency (s)",
               "Disk Size (MB)", "Parameters (nonzero/params)"]


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


# ---------------------------------------------------------------- host storage


def _mb(value: float) -> str:
    return f"{fmt_number(value / BYTES_PER_MB, '.4g')} MB"


def coo_explanation(models: pd.DataFrame) -> str | None:
    """Why the lab's COO file is not (1 - sparsity) of the dense one, from the highest-sparsity variant's numbers."""
    needed = ["storage.dense", "storage.lab_coo", "storage.entropy_bound"]
    if not all(c in models for c in needed):
        return None
    usable = models.dropna(subset=needed + ["sparsity"])
    if usable.empty:
        return None
    top = usable.loc[usable["sparsity"].idxmax()]
    dense, coo, bound, sparsity = (float(top[c]) for c in needed + ["sparsity"])
    naive = dense * (1 - sparsity)
    per_nonzero = (
        f" Here that is {coo / top['nonzero_params']:.1f} bytes per nonzero parameter."
        if not is_missing(top.get("nonzero_params")) and top["nonzero_params"] > 0 else ""
    )
    others = [c for c in models.columns if c.startswith("storage.") and c not in needed]
    other_text = "; ".join(f"{c.split('.', 1)[1]} {_mb(float(top[c]))}" for c in others if not is_missing(top[c]))
    return (
        f"Why the lab's COO file is not {1 - sparsity:.0%} of the dense one: at the highest sparsity "
        f"({top['name']}, {sparsity:.1%} of prunable weights zero) the dense weights take {_mb(dense)}, so one might "
        f"expect about {_mb(naive)}, but the lab's COO file takes {_mb(coo)} ({coo / dense:.0%} of dense). "
        "torch's to_sparse() stores a 2-D tensor as indices [2, nnz] int64 plus values [nnz] float32, 16 bytes of "
        "index per 4 bytes of value, so a nonzero costs 20 bytes instead of 4 and COO of a weight matrix only beats "
        "dense above 80% sparsity; the lab also saves the unpruned biases with to_sparse(), 8 + 4 bytes per entry "
        f"instead of 4.{per_nonzero} The entropy bound (every nonzero value at 32 bits, plus the information in the "
        f"mask: each tensor's size times the binary entropy of its density) is {_mb(bound)} ({bound / dense:.0%} of "
        "dense); a compressed file can land below it, because trained float32 values themselves compress a little"
        + (f"; other representations: {other_text}." if other_text else ".")
    )


def storage_section(frame: pd.DataFrame, out_dir: Path) -> list[Block]:
    blocks: list[Block] = [Heading(2, "Host storage")]
    keys = [c for c in frame.columns if c.startswith("storage.")]
    models = frame[frame["in_manifest"]].drop_duplicates("name")
    if not keys:
        return blocks + [Paragraph("The manifest records no storage sizes for these models.")]
    in_mb = models.assign(**{f"{c}_mb": models[c] / BYTES_PER_MB for c in keys})
    agg = aggregate_seeds(in_mb, ["task", "experiment", "method", "iteration"],
                          ["sparsity_pct"] + [f"{c}_mb" for c in keys]).sort_values("order", kind="stable")
    display = pd.DataFrame({
        "Experiment": agg["experiment"], "Method": agg["method"], "Iteration": agg["iteration"].map(fmt_int),
        "Seeds": agg["seeds"],
        "Sparsity (%)": [fmt_mean_std(m, s, ".2f") for m, s in zip(agg["sparsity_pct_mean"], agg["sparsity_pct_std"])],
    })
    for c in keys:
        display[f"{c.split('.', 1)[1]} (MB)"] = [fmt_mean_std(m, s, ".4g")
                                                 for m, s in zip(agg[f"{c}_mb_mean"], agg[f"{c}_mb_std"])]
    agg = agg.join(storage_ratios(agg, keys))
    if agg["best_representation"].notna().any():
        display["Best lossless"] = agg["best_representation"].fillna(DASH)
        display["Best lossless / entropy bound"] = agg["best_over_bound"].map(
            lambda v: DASH if is_missing(v) else f"{v:.2f}×")
        display["lab_coo / entropy bound"] = agg["lab_coo_over_bound"].map(
            lambda v: DASH if is_missing(v) else f"{v:.2f}×")
    if agg["task"].nunique() > 1:
        display.insert(0, "Task", agg["task"])
    if (agg["seeds"] == DASH).all():
        display = display.drop(columns=["Seeds"])
    blocks += [
        Paragraph("Bytes each representation of the pruned weights needs, computed on the workstation "
                  "(manifest `storage`, MB = 10^6 bytes, mean ± sample std over seeds)."),
        Table(display=display, data=agg.drop(columns=["order", "accuracy_mismatch"]), csv_name="storage.csv"),
    ]
    for task, task_models in models.groupby("task", sort=False):
        text = coo_explanation(task_models)
        if text:
            blocks.append(Paragraph((f"{task}: " if models["task"].nunique() > 1 else "") + text))
    return blocks + sparse_file_blocks(frame)


def storage_ratios(agg: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """Per row (seed means): the smallest lossless representation (the bound counts every value at 32 bits, so
    int8 files are not held against it, and the bound itself is not a file), its size over the entropy bound, and
    lab_coo over the entropy bound."""
    bound_key = f"storage.{ENTROPY_BOUND}"
    lossless = [c for c in keys if c != bound_key and c.removeprefix("storage.") not in LOSSY]
    out = pd.DataFrame(index=agg.index, columns=["best_representation", "best_over_bound", "lab_coo_over_bound"],
                       dtype=object)
    if not lossless or bound_key not in keys:
        return out
    sizes = agg[[f"{c}_mb_mean" for c in lossless]].astype(float)
    bound = agg[f"{bound_key}_mb_mean"].astype(float)
    has_size = sizes.notna().any(axis=1)
    best_col = sizes[has_size].idxmin(axis=1)
    out.loc[has_size, "best_representation"] = best_col.map(lambda c: c[len("storage."):-len("_mb_mean")])
    out["best_over_bound"] = sizes.min(axis=1) / bound
    if "storage.lab_coo" in keys:
        out["lab_coo_over_bound"] = agg["storage.lab_coo_mb_mean"] / bound
    return out


SPARSE_FORMAT = "onnx-sparse"


def sparse_file_blocks(frame: pd.DataFrame) -> list[Block]:
    """Per device, models that have both a plain and a sparse-initializer ONNX file: size, load time, latency and
    peak memory of each, i.e. what the sparse file buys on the device."""
    pairs = frame[frame["format"].isin(["onnx", SPARSE_FORMAT]) & frame["status"].eq("ok")]
    with_sparse = set(pairs.loc[pairs["format"].eq(SPARSE_FORMAT), "name"])
    pairs = pairs[pairs["name"].isin(with_sparse)]
    if pairs.empty or pairs["format"].nunique() < 2:
        return []
    peak = "memory_mb.rss_peak"
    measures = ["disk_mb", "session_ms", "latency_p50_ms"] + ([peak] if peak in pairs else [])
    blocks: list[Block] = [
        Heading(3, "What the sparse-initializer file buys on the device"),
        Paragraph("Plain ONNX (`onnx`) against the same weights stored as ONNX sparse initializers (`onnx-sparse`), "
                  "mean over seeds. Load = session creation (ms); peak = the runner's peak RSS (MiB, 2^20 bytes) "
                  "while that file was loaded and run."),
    ]
    names: set[str] = set()
    for device, rows in pairs.groupby("device", sort=False):
        wide = rows.pivot_table(index=["task", "experiment", "method", "iteration"], columns="format",
                                values=measures + ["sparsity_pct"], aggfunc="mean", sort=False)
        if SPARSE_FORMAT not in wide.columns.get_level_values(1) or "onnx" not in wide.columns.get_level_values(1):
            continue
        wide = wide.dropna(subset=[("disk_mb", "onnx"), ("disk_mb", SPARSE_FORMAT)])
        if wide.empty:
            continue
        wide = wide.sort_values(("sparsity_pct", SPARSE_FORMAT), kind="stable")
        data = pd.DataFrame({"device": device, "sparsity_pct": wide[("sparsity_pct", SPARSE_FORMAT)]})
        for m in measures:
            for f in ("onnx", SPARSE_FORMAT):
                data[f"{m}.{f}"] = wide[(m, f)]
        data["size_ratio"] = data[f"disk_mb.{SPARSE_FORMAT}"] / data["disk_mb.onnx"]
        data = data.reset_index().sort_values(["task", "experiment", "sparsity_pct"], kind="stable",
                                              ignore_index=True)
        labels = {"disk_mb": ("Size (MB)", ".4g"), "session_ms": ("Load (ms)", ".3g"),
                  "latency_p50_ms": ("p50 (ms)", ".3g"), peak: ("Peak RSS (MiB)", ".4g")}
        display = pd.DataFrame({"Experiment": data["experiment"], "Method": data["method"],
                                "Iteration": data["iteration"].map(fmt_int),
                                "Sparsity (%)": data["sparsity_pct"].map(lambda v: fmt_number(v, ".2f"))})
        for m in measures:
            title, spec = labels[m]
            for f, short in (("onnx", "dense"), (SPARSE_FORMAT, "sparse")):
                display[f"{title} {short}"] = data[f"{m}.{f}"].map(lambda v, spec=spec: fmt_number(v, spec))
            if m == "disk_mb":
                display["Size sparse/dense"] = data["size_ratio"].map(lambda v: f"{v:.2f}×")
        if data["task"].nunique() > 1:
            display.insert(0, "Task", data["task"])
        smaller = data[data["size_ratio"] < 1]
        first_smaller = (f"the sparse file is smaller from {smaller['sparsity_pct'].min():.1f}% sparsity on"
                         if len(smaller) else "the sparse file is never smaller than the plain one here")
        load_ratio = (data[f"session_ms.{SPARSE_FORMAT}"] / data["session_ms.onnx"]).median()
        p50_ratio = (data[f"latency_p50_ms.{SPARSE_FORMAT}"] / data["latency_p50_ms.onnx"]).median()
        summary = (f"On {device}: {first_smaller} ({data['size_ratio'].min():.2f}× of dense at best); its session "
                   f"load takes {load_ratio:.2f}× the plain file's (median) and its p50 latency is {p50_ratio:.2f}× "
                   "(median): onnxruntime densifies sparse initializers at load, so the sparse file saves disk and "
                   "transfer, not inference time.")
        blocks += [Paragraph(summary),
                   Table(display=display, data=data,
                         csv_name=unique_name(f"sparse-file-{slug(device)}", ".csv", names))]
    return blocks if len(blocks) > 2 else []
