"""What the sparse-initializer file buys on the device: size, load time, latency and peak memory of the plain and the
sparse-initializer ONNX file of the same weights (a subsection of Host storage)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from harness.report.compare import PAIRED, Ratio, band_sentence, device_bands
from harness.report.format import display_frame, fmt_ratio, unique_name
from harness.report.frame import VARIANT_COLUMNS, task_column, technique_label
from harness.report.render import Block, Heading, Paragraph, Table, slug
from runners.contract import ONNX, ONNX_SPARSE


def sparse_files_section(frame: pd.DataFrame, out_dir: Path) -> list[Block]:
    """Per device, models that have both a plain and a sparse-initializer ONNX file: size, load time, latency and
    peak memory of each, i.e. what the sparse file buys on the device."""
    pairs = frame[frame["format"].isin([ONNX, ONNX_SPARSE]) & frame["status"].eq("ok")]
    with_sparse = set(pairs.loc[pairs["format"].eq(ONNX_SPARSE), "name"])
    pairs = pairs[pairs["name"].isin(with_sparse)]
    if pairs.empty or pairs["format"].nunique() < 2:
        return []
    # the file's own peak (runner 0.5: measured in a fresh process) where the results have it, else the process's
    own = "peak_increment_mb"
    peak = own if pairs[own].notna().all() else "peak_memory_mb"
    measures = ["disk_mb", "session_ms", "latency_p50_ms"] + ([peak] if pairs[peak].notna().any() else [])
    blocks: list[Block] = [
        Heading(3, "What the sparse-initializer file buys on the device"),
        Paragraph("Plain ONNX (`onnx`) against the same weights stored as ONNX sparse initializers (`onnx-sparse`), "
                  "mean over seeds. Load = session creation (ms); peak = the runner's peak RSS (MB, 10^6 bytes) "
                  "while that file was loaded and run; from runner 0.5 on, the file's own peak (+MB: what loading "
                  "and running it added to a fresh process)."),
    ]
    names: set[str] = set()
    for device, rows in pairs.groupby("device", sort=False):
        wide = rows.pivot_table(index=["series", *VARIANT_COLUMNS], columns="format",
                                values=measures + ["sparsity_pct"], aggfunc="mean", sort=False)
        if ONNX_SPARSE not in wide.columns.get_level_values(1) or ONNX not in wide.columns.get_level_values(1):
            continue
        wide = wide.dropna(subset=[("disk_mb", ONNX), ("disk_mb", ONNX_SPARSE)])
        if wide.empty:
            continue
        wide = wide.sort_values(("sparsity_pct", ONNX_SPARSE), kind="stable")
        data = pd.DataFrame({"device": device, "sparsity_pct": wide[("sparsity_pct", ONNX_SPARSE)]})
        for m in measures:
            for f in (ONNX, ONNX_SPARSE):
                data[f"{m}.{f}"] = wide[(m, f)]
        data["size_ratio"] = data[f"disk_mb.{ONNX_SPARSE}"] / data[f"disk_mb.{ONNX}"]
        data = data.reset_index().drop(columns="series")
        data = data.sort_values(["task", "experiment", "sparsity_pct"], kind="stable", ignore_index=True)
        labels = {"disk_mb": ("Size (MB)", ".4g"), "session_ms": ("Load (ms)", ".3g"),
                  "latency_p50_ms": ("p50 (ms)", ".3g"), "peak_memory_mb": ("Peak RSS (MB)", ".4g"),
                  own: ("Peak +MB", ".3g")}
        columns = [
            task_column(data),
            # one Variant column ("imp wanda it2"): three narrow columns split their words to fit the page
            ("Variant", technique_label, None),
            ("Sparsity (%)", "sparsity_pct", ".2f"),
        ]
        for m in measures:
            title, spec = labels[m]
            columns += [(f"{title} dense", f"{m}.{ONNX}", spec), (f"{title} sparse", f"{m}.{ONNX_SPARSE}", spec)]
            if m == "disk_mb":
                columns.append(("Size sparse / dense", "size_ratio", fmt_ratio))
        display = display_frame(data, columns)
        smaller = data[data["size_ratio"] < 1]
        first_smaller = (f"the sparse file is smaller from {smaller['sparsity_pct'].min():.1f}% sparsity on"
                         if len(smaller) else "the sparse file is never smaller than the plain one here")
        load_ratio = (data[f"session_ms.{ONNX_SPARSE}"] / data[f"session_ms.{ONNX}"]).median()
        p50_ratio = (data[f"latency_p50_ms.{ONNX_SPARSE}"] / data[f"latency_p50_ms.{ONNX}"]).median()
        summary = (f"On {device}: {first_smaller} ({data['size_ratio'].min():.2f}× of dense at best); its session "
                   f"load takes {load_ratio:.2f}× the plain file's (median) and its p50 latency is {p50_ratio:.2f}× "
                   "(median): onnxruntime densifies sparse initializers at load, so the sparse file saves disk and "
                   "transfer, not inference time.")
        bands = device_bands(frame, device)
        summary += " " + (band_sentence(None) if not bands else "; ".join(
            f"{band_sentence(band)[:-1]} ({task}: the sparse/dense p50 ratio is "
            f"{'inside' if band.contains(Ratio(p50_ratio, None, 0, PAIRED)) else 'outside'} it)"
            for task, band in bands.items()) + ".")
        blocks += [Paragraph(summary),
                   Table(display=display, data=data,
                         csv_name=unique_name(f"sparse-file-{slug(device)}", ".csv", names))]
    return blocks if len(blocks) > 2 else []
