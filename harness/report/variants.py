"""Sections that compare model variants with each other: pruning methods, structured pruning, host vs device runtime,
quantization. Shared here: what a variant is called, which model is a task's dense baseline, and the sparsity rate.

Every section returns no blocks when its data is absent, so a bundle without e.g. int8 files has no empty heading.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from harness.report.load import is_missing
from harness.report.render import Block, Heading, Notes, Paragraph, Table, slug
from harness.report.format import DASH, FLAG, fmt_number, fmt_ratio, format_rank, unique_name
from harness.report.frame import (NO_METHOD, baseline_mask, column, is_structured, manifest_models, ok_rows,
                                   sparsity_rate_pct, technique_label)

ITERATIVE_EXPERIMENTS = ("repeated", "imp")
EXPERIMENT_WORDS = {"imp": "after IMP", "repeated": "after repeated pruning"}
QUANT_FORMATS = {"onnx-int8-dynamic": "int8 dynamic", "onnx-int8-static": "int8 static"}
# Static int8 more than this many points below its fp32 source on the same device is flagged.
QUANT_FLAG_PP = 1.0
# "Deployable": device accuracy at most this many points below the dense baseline's.
DEPLOYABLE_PP = 1.0


def seed_suffix(row: pd.Series, several: bool) -> str:
    seed = row.get("seed")
    return f" (seed {int(seed)})" if several and not is_missing(seed) else ""


def same_machine(device_row: pd.Series, host: dict) -> bool:
    """A device is the workstation when hostname and CPU model both match the manifest's host facts."""
    keys = ("hostname", "cpu_model")
    return all(host.get(k) and device_row.get(f"device.{k}") == host.get(k) for k in keys)


# ---------------------------------------------------------------- methods comparison


def _common_level(levels: dict[str, set[int]]) -> tuple[int, list[str]] | None:
    """Highest sparsity level (rounded %) shared by all methods, else by as many methods as possible (>= 2)."""
    candidates: dict[int, list[str]] = {}
    for method, values in levels.items():
        for level in values:
            if level > 0:
                candidates.setdefault(level, []).append(method)
    shared = [(len(methods), level, methods) for level, methods in candidates.items() if len(methods) >= 2]
    if not shared:
        return None
    _, level, methods = max(shared)
    return level, methods


def methods_section(frame: pd.DataFrame, out_dir: Path) -> list[Block]:
    rows = ok_rows(frame)
    rows = rows[rows["experiment"].isin(ITERATIVE_EXPERIMENTS) & ~rows["method"].isin(NO_METHOD)
                & rows["format"].eq("onnx")]
    if rows.empty:
        return []
    blocks: list[Block] = []
    table_rows = []
    for device, device_rows in rows.groupby("device", sort=False):
        sentences = []
        for (task, experiment), group in device_rows.groupby(["task", "experiment"], sort=False):
            group = group.assign(level=group["sparsity_pct"].round().astype("Int64"))
            levels = {m: set(g["level"].dropna().astype(int)) for m, g in group.groupby("method", sort=False)}
            if len(levels) < 2:
                continue
            common = _common_level(levels)
            if common is None:
                continue
            level, methods = common
            at = group[group["level"].eq(level) & group["method"].isin(methods)]
            acc = at.groupby("method", sort=False)[["device_accuracy_pct", "host_accuracy_pct",
                                                    "sparsity_pct"]].mean()
            acc = acc.sort_values("device_accuracy_pct", ascending=False)
            listed = ", ".join(f"{m} {a:.2f}%" for m, a in acc["device_accuracy_pct"].items())
            missing = sorted(set(levels) - set(methods))
            absent = f" ({', '.join(missing)} did not reach this sparsity)" if missing else ""
            prefix = f"{task}: " if rows["task"].nunique() > 1 else ""
            sentences.append(f"{prefix}At {level}% sparsity {EXPERIMENT_WORDS.get(experiment, experiment)}: "
                             f"{listed}{absent}.")
            for method, values in acc.iterrows():
                table_rows.append({"device": device, "task": task, "experiment": experiment, "method": method,
                                   "level_pct": level, "sparsity_pct": values["sparsity_pct"],
                                   "device_accuracy_pct": values["device_accuracy_pct"],
                                   "host_accuracy_pct": values["host_accuracy_pct"]})
        if sentences:
            blocks += [Heading(3, device), Paragraph(" ".join(sentences))]
    if not table_rows:
        return []
    data = pd.DataFrame(table_rows)
    display = pd.DataFrame({
        "Device": data["device"], "Experiment": data["experiment"], "Method": data["method"],
        "Sparsity (%)": data["sparsity_pct"].map(lambda v: fmt_number(v, ".2f")),
        "Accuracy (%) device": data["device_accuracy_pct"].map(lambda v: fmt_number(v, ".2f")),
        "Accuracy (%) host": data["host_accuracy_pct"].map(lambda v: fmt_number(v, ".2f")),
    })
    if data["task"].nunique() > 1:
        display.insert(1, "Task", data["task"])
    return [
        Heading(2, "Pruning methods compared"),
        Paragraph("Device accuracy of the plain ONNX file of each method at the highest sparsity (rounded to 1%) "
                  "that the methods share, mean over seeds; the plots above show every iteration."),
        *blocks,
        Table(display=display, data=data, csv_name="methods.csv"),
    ]


# ---------------------------------------------------------------- structured pruning


def _baseline_device(rows: pd.DataFrame) -> pd.Series | None:
    """Mean device numbers of the dense fp32 ONNX baseline among one device's rows of one task."""
    base = rows[baseline_mask(rows) & rows["format"].eq("onnx") & rows["status"].eq("ok")]
    if base.empty:
        return None
    return base[["device_accuracy_pct", "latency_p50_ms", "latency_p50_s", "disk_mb", "params"]].mean()


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
        dense = baseline_mask(rows) & rows["format"].eq("onnx")
        chosen = rows[(is_structured(rows) | dense) & rows["status"].eq("ok")]
        if not is_structured(chosen).any():
            continue
        found = True
        base = _baseline_device(rows)
        agg = (chosen.groupby(["technique", "format"], sort=False, dropna=False)
               [["sparsity_rate_pct", "device_accuracy_pct", "latency_p50_s", "latency_p50_ms", "disk_mb"]]
               .mean().reset_index())
        agg["speedup"] = base["latency_p50_ms"] / agg["latency_p50_ms"] if base is not None else np.nan
        agg["size_ratio"] = agg["disk_mb"] / base["disk_mb"] if base is not None else np.nan
        agg = agg.sort_values("format", key=lambda s: s.map(format_rank), kind="stable")
        display = pd.DataFrame({
            "Structure Pruned": agg["technique"],
            "Sparsity Rate (%)": agg["sparsity_rate_pct"].map(lambda v: fmt_number(v, ".2f")),
            "Accuracy (%)": agg["device_accuracy_pct"].map(lambda v: fmt_number(v, ".2f")),
            "Latency (s)": agg["latency_p50_s"].map(lambda v: fmt_number(v, ".3g")),
            "Disk Size (MB)": agg["disk_mb"].map(lambda v: fmt_number(v, ".4g")),
            "Speed-up vs dense": agg["speedup"].map(fmt_ratio),
            "Size vs dense": agg["size_ratio"].map(fmt_ratio),
        })
        if agg["format"].nunique() > 1:
            display.insert(1, "Format", agg["format"])
        blocks.append(Heading(3, f"{device} · {task}"))
        blocks.append(Table(display=display, data=agg.assign(device=device, task=task),
                            csv_name=unique_name(f"structured-{slug(device)}-{slug(task)}", ".csv", csv_names)))
        if base is None:
            blocks.append(Paragraph("No dense baseline was measured on this device, so speed-up and size are not "
                                    "computed."))
    return blocks if found else []


# ---------------------------------------------------------------- host vs device runtime


def runtime_models(models: pd.DataFrame) -> pd.DataFrame:
    """Per task: the dense baseline, every structured variant and the highest-sparsity unstructured one (first
    seed each), in that order."""
    first_seed = models[models["seed"].isna() | models["seed"].eq(models.groupby("task")["seed"].transform("min"))]
    picked = []
    for _, rows in first_seed.groupby("task", sort=False):
        base = rows[baseline_mask(rows)].head(1)
        structured = rows[is_structured(rows)]
        unstructured = rows[~is_structured(rows) & ~baseline_mask(rows) & rows["sparsity"].notna()]
        top = unstructured.loc[[unstructured["sparsity"].idxmax()]] if len(unstructured) else unstructured
        picked += [base, structured, top]
    return pd.concat(picked) if picked else models.head(0)


def runtime_section(frame: pd.DataFrame, out_dir: Path) -> list[Block]:
    if column(frame, "host_latency_ms").isna().all():
        return []
    models = runtime_models(manifest_models(frame))
    models = models[models["host_latency_ms"].notna()]
    if models.empty:
        return []
    host = frame.attrs.get("host") or {}
    onnx = frame[frame["format"].eq("onnx")]
    devices = list(dict.fromkeys(frame["device"]))
    blocks: list[Block] = [
        Heading(2, "Runtime: host PyTorch vs device ONNX Runtime"),
        Paragraph("Host latency is PyTorch eager, batch 1, median, measured on the workstation during export "
                  f"({host.get('cpu_model') or 'CPU unknown'}, host {host.get('hostname') or 'unknown'}). Device "
                  "columns are onnxruntime p50 of the plain ONNX file with each device's bench settings. File size is "
                  "the plain ONNX file."),
    ]
    csv_names: set[str] = set()
    for task, rows in models.groupby("task", sort=False):
        data = pd.DataFrame({
            "task": task, "name": rows["name"], "technique": rows.apply(technique_label, axis=1),
            "sparsity_rate_pct": sparsity_rate_pct(rows, frame).to_numpy(), "params": rows["params"],
            "host_torch_ms": rows["host_latency_ms"],
        })
        display = pd.DataFrame({
            "Variant": data["technique"],
            "Sparsity Rate (%)": data["sparsity_rate_pct"].map(lambda v: fmt_number(v, ".2f")),
            "Params": data["params"].map(lambda v: DASH if is_missing(v) else f"{v:,.0f}"),
            "Host PyTorch eager (ms)": data["host_torch_ms"].map(lambda v: fmt_number(v, ".3g")),
        })
        for device in devices:
            measured = onnx[onnx["device"].eq(device) & onnx["status"].eq("ok")].set_index("name")
            p50 = data["name"].map(measured["latency_p50_ms"]) if len(measured) else np.nan
            data[f"{device} ORT p50 (ms)"] = p50
            display[f"{device} ORT p50 (ms)"] = pd.Series(p50, index=data.index).map(lambda v: fmt_number(v, ".3g"))
        sizes = onnx.drop_duplicates("name").set_index("name")["file_mb"]
        data["onnx_mb"] = data["name"].map(sizes)
        display["ONNX file (MB)"] = data["onnx_mb"].map(lambda v: fmt_number(v, ".4g"))
        if models["task"].nunique() > 1:
            blocks.append(Heading(3, task))
        blocks.append(Table(display=display, data=data,
                            csv_name=unique_name(f"runtime-{slug(task)}", ".csv", csv_names)))
    notes = []
    for _, first in frame.drop_duplicates("device").iterrows():
        batch = first.get("settings.batch_size")
        if same_machine(first, host):
            text = (f"{first['device']} is the workstation itself (same hostname and CPU model), so its column "
                    "and the host column compare runtimes like for like")
            text += "." if batch == 1 else f", except that the device ran batch {fmt_number(batch, '.0f')}."
        else:
            text = (f"{first['device']} is another machine than the workstation "
                    f"({first.get('device.cpu_model') or 'CPU unknown'}), so its column differs from the host "
                    "column by hardware as well as by runtime.")
        notes.append(text)
    blocks.append(Notes(tuple(notes)))
    return blocks


# ---------------------------------------------------------------- quantization


def quantization_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Per device, every model that has an int8 file: its fp32 onnx row and its int8 rows, with the static-int8
    flag (more than QUANT_FLAG_PP points below the fp32 file of the same model on the same device)."""
    quant = frame["format"].isin(list(QUANT_FORMATS))
    keys = set(zip(frame.loc[quant, "device"], frame.loc[quant, "name"]))
    if not keys:
        return frame.head(0)
    pair = pd.Series(list(zip(frame["device"], frame["name"])), index=frame.index).isin(keys)
    rows = frame[pair & (quant | frame["format"].eq("onnx"))].copy()
    fp32 = rows[rows["format"].eq("onnx")].set_index(["device", "name"])["device_accuracy_pct"]
    source = [fp32.get((d, n), np.nan) for d, n in zip(rows["device"], rows["name"])]
    rows["fp32_accuracy_pct"] = source
    rows["drop_vs_fp32_pp"] = rows["fp32_accuracy_pct"] - rows["device_accuracy_pct"]
    rows["quant_flag"] = rows["format"].eq("onnx-int8-static") & rows["drop_vs_fp32_pp"].round(9).gt(QUANT_FLAG_PP)
    return rows


def quantization_section(frame: pd.DataFrame, out_dir: Path) -> list[Block]:
    rows = quantization_rows(frame)
    if rows.empty:
        return []
    rows = rows.assign(sparsity_rate_pct=sparsity_rate_pct(rows, frame).to_numpy())
    several_seeds = manifest_models(frame).groupby(["task", "experiment", "method", "iteration"])["seed"].nunique()
    several = bool((several_seeds > 1).any())
    blocks: list[Block] = [
        Heading(2, "Pruning + quantization"),
        Paragraph("Each model with an int8 file beside its fp32 ONNX file. Accuracy is measured by the runner on the "
                  f"device; {FLAG} marks static int8 more than {QUANT_FLAG_PP:g} point below its fp32 source on the "
                  "same device (a sign of a poor calibration set)."),
    ]
    csv_names: set[str] = set()
    for device, device_rows in rows.groupby("device", sort=False):
        device_rows = device_rows.sort_values(["order"], kind="stable")
        ok = device_rows["status"].eq("ok")
        accuracy = [
            (fmt_number(a, ".2f") + (f" {FLAG}" if flag else "")) if good else f"error: {err or status}"
            for a, flag, good, err, status in zip(device_rows["device_accuracy_pct"], device_rows["quant_flag"], ok,
                                                  device_rows["error"], device_rows["status"])
        ]
        display = pd.DataFrame({
            "Pruning Technique": [technique_label(r) + seed_suffix(r, several) for _, r in device_rows.iterrows()],
            "Quantization": device_rows["format"].map(lambda f: QUANT_FORMATS.get(f, "none (fp32)")),
            "Sparsity Rate (%)": device_rows["sparsity_rate_pct"].map(lambda v: fmt_number(v, ".2f")),
            "Accuracy (%)": accuracy,
            "Disk Size (MB)": device_rows["disk_mb"].map(lambda v: fmt_number(v, ".4g")),
            "Latency (s)": [fmt_number(v, ".3g") if good else DASH
                            for v, good in zip(device_rows["latency_p50_s"], ok)],
        })
        data = device_rows[["device", "task", "name", "experiment", "method", "iteration", "seed", "format",
                            "status", "sparsity_rate_pct", "device_accuracy_pct", "fp32_accuracy_pct",
                            "drop_vs_fp32_pp", "quant_flag", "disk_mb", "latency_p50_s"]]
        blocks += [Heading(3, device),
                   Table(display=display, data=data,
                         csv_name=unique_name(f"quantization-{slug(device)}", ".csv", csv_names))]
        flagged = device_rows[device_rows["quant_flag"]]
        if len(flagged):
            blocks.append(Notes(tuple(
                f"{FLAG} {r['name']} (static int8): {r['device_accuracy_pct']:.2f}% vs {r['fp32_accuracy_pct']:.2f}% "
                f"for its fp32 ONNX file ({r['drop_vs_fp32_pp']:.2f} points lower)." for _, r in flagged.iterrows())))
    return blocks
