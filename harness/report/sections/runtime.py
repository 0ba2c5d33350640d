"""Runtime: host PyTorch eager latency (measured at export) beside each device's onnxruntime p50 of the same
variants."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from harness.report.compare import device_noise_note
from harness.report.format import display_frame, fmt_count, fmt_number, unique_name
from harness.report.frame import (baseline_mask, column, is_structured, manifest_models, plan_position,
                                   several_tasks, sparsity_rate_pct, technique_label)
from harness.report.render import Block, Heading, Notes, Paragraph, Table, slug
from runners.contract import ONNX


def same_machine(device_row: pd.Series, host: dict) -> bool:
    """A device is the workstation when hostname and CPU model both match the manifest's host facts."""
    keys = ("hostname", "cpu_model")
    return all(host.get(k) and device_row.get(f"device.{k}") == host.get(k) for k in keys)


def runtime_models(models: pd.DataFrame) -> pd.DataFrame:
    """Per task: the dense baseline, every structured variant in plan order and the highest-sparsity unstructured one
    (first seed each), in that order."""
    first_seed = models[models["seed"].isna() | models["seed"].eq(models.groupby("task")["seed"].transform("min"))]
    picked = []
    for _, rows in first_seed.groupby("task", sort=False):
        base = rows[baseline_mask(rows)].head(1)
        structured = rows[is_structured(rows)]
        structured = structured.loc[plan_position(structured).sort_values(kind="stable").index]
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
    onnx = frame[frame["format"].eq(ONNX)]
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
        for device in devices:
            measured = onnx[onnx["device"].eq(device) & onnx["status"].eq("ok")].set_index("name")
            data[f"{device} ORT p50 (ms)"] = data["name"].map(measured["latency_p50_ms"]) if len(measured) else np.nan
        sizes = onnx.drop_duplicates("name").set_index("name")["file_mb"]
        data["onnx_mb"] = data["name"].map(sizes)
        display = display_frame(data, [
            ("Variant", "technique", None),
            ("Sparsity Rate (%)", "sparsity_rate_pct", ".2f"),
            ("Params", "params", fmt_count),
            ("Host PyTorch eager (ms)", "host_torch_ms", ".3g"),
            *((f"{device} ORT p50 (ms)", f"{device} ORT p50 (ms)", ".3g") for device in devices),
            ("ONNX file (MB)", "onnx_mb", ".4g"),
        ])
        if several_tasks(models):
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
        notes.append(f"{text} {device_noise_note(frame, first['device'])}")
    blocks.append(Notes(tuple(notes)))
    return blocks
