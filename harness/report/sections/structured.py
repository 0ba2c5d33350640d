"""Structured pruning: each structured variant against the task's dense baseline on the same device (sparsity rate,
accuracy, latency, size, speed-up, parameters, MACs, what was removed), then per task the kept width of every
narrowed layer, the groups left whole with their reasons, and the variants that removed less than half of what
they were asked to."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.report.format import DASH, FLAG, display_frame, fmt_count, fmt_ratio, format_rank, unique_name
from harness.report.frame import (baseline_mask, column, is_structured, manifest_models, plan_position,
                                  sparsity_rate_pct, technique_label)
from harness.report.load import is_missing
from harness.report.render import Block, Heading, Notes, Paragraph, Table, slug
from runners.contract import ONNX

# What the table shows of each variant, averaged over its seeds.
MEASURES = ["sparsity_rate_pct", "device_accuracy_pct", "latency_p50_s", "latency_p50_ms", "disk_mb", "params",
            "macs"]
# The same for every seed and file of a variant (manifest facts): the first row's.
FACTS = ["removed", "kept_summary"]
# Manifest key {"layer": [dense width, kept width]}, flattened by load.flatten into one column per layer.
KEPT_PREFIX = "kept_widths."
SUMMARY_PAIRS = 3          # distinct "dense→kept" widths a table cell lists before "+N more"


def _baseline_device(rows: pd.DataFrame) -> pd.Series | None:
    """Mean device numbers of the dense fp32 ONNX baseline among one device's rows of one task."""
    base = rows[baseline_mask(rows) & rows["format"].eq(ONNX) & rows["status"].eq("ok")]
    if base.empty:
        return None
    return base[["device_accuracy_pct", "latency_p50_ms", "latency_p50_s", "disk_mb", "params"]].mean()


def _format_ranks(values: pd.Series) -> pd.Series:
    return values.map(format_rank) if values.name == "format" else values


def kept_widths(row: pd.Series | dict) -> dict[str, tuple[int, int]]:
    """Layer -> (dense width, kept width) of one manifest row, in the manifest's layer order."""
    return {key[len(KEPT_PREFIX):]: (int(value[0]), int(value[1])) for key, value in row.items()
            if key.startswith(KEPT_PREFIX) and isinstance(value, (list, tuple)) and len(value) == 2}


def kept_summary(row: pd.Series | dict) -> str:
    """The compact form of a variant's kept widths: "32→16 ×7, 64→32 ×5" (how many narrowed layers went from
    each dense width to each kept width), the first SUMMARY_PAIRS pairs and how many more."""
    if is_missing(row.get("kept_widths", np.nan)) and not kept_widths(row):
        return DASH                       # no kept widths recorded (a dense model, an older manifest)
    pairs = Counter(kept_widths(row).values())
    if not pairs:
        return "none narrowed"
    cells = [f"{dense}→{kept} ×{n}" for (dense, kept), n in list(pairs.items())[:SUMMARY_PAIRS]]
    more = len(pairs) - SUMMARY_PAIRS
    return ", ".join(cells) + (f", +{more} more" if more > 0 else "")


def removed_cell(row: pd.Series | dict) -> str:
    """"48% of 50%": the share of units removed against the share asked; flagged when less than half went."""
    done, asked = row.get("structure_ratio"), row.get("structure_ratio_asked")
    if is_missing(done) or is_missing(asked):
        return DASH
    flag = f"{FLAG} " if row.get("under_pruned") is True else ""
    return f"{flag}{float(done):.0%} of {float(asked):.0%}"


def _structured_models(frame: pd.DataFrame) -> pd.DataFrame:
    """One manifest row per structured variant (its first seed), in plan order, labelled."""
    models = manifest_models(frame)
    models = models[is_structured(models)]
    models = models.assign(position=plan_position(models)).sort_values(["task", "position"], kind="stable")
    models = models.drop_duplicates("series")
    return models.assign(label=_distinct_labels(models))


def _distinct_labels(models: pd.DataFrame) -> list[str]:
    """technique_label, with the series added where two variants of a task would share a label (e.g. two
    round_to settings of one ratio)."""
    labels = [technique_label(row) for _, row in models.iterrows()]
    counts = Counter(zip(models["task"], labels))
    return [label if counts[(task, label)] == 1 else f"{label} ({series})"
            for task, label, series in zip(models["task"], labels, models["series"])]


def kept_widths_table(models: pd.DataFrame) -> pd.DataFrame:
    """Layers narrowed in at least one variant x (dense width, each variant's kept width); a layer a variant left
    alone shows its dense width."""
    widths = {label: kept_widths(row) for label, (_, row) in zip(models["label"], models.iterrows())}
    layers: dict[str, int] = {}
    for per_variant in widths.values():
        for layer, (dense, _) in per_variant.items():
            layers.setdefault(layer, dense)
    table = {"Layer": list(layers), "Dense width": list(layers.values())}
    for label, per_variant in widths.items():
        table[label] = [per_variant.get(layer, (dense, dense))[1] for layer, dense in layers.items()]
    return pd.DataFrame(table)


def skipped_notes(models: pd.DataFrame) -> list[str]:
    """One line per group left whole (root, size, reason), naming the variants it was left whole in; groups that
    were asked for and failed their check are flagged."""
    seen: dict[tuple, list[str]] = {}
    for label, groups in zip(models["label"], column(models, "skipped_groups")):
        for g in groups if isinstance(groups, list) else ():
            key = (g.get("root"), g.get("size"), g.get("reason"), bool(g.get("asked")))
            seen.setdefault(key, []).append(label)
    notes = []
    for (root, size, reason, asked), labels in seen.items():
        where = "every variant" if len(labels) == len(models) else ", ".join(labels)
        units = f" ({size} units)" if size is not None else ""
        notes.append(f"{FLAG + ' ' if asked else ''}{root}{units}, left whole in {where}: {reason}.")
    return notes


def under_pruned_notes(models: pd.DataFrame) -> list[str]:
    rows = models[column(models, "under_pruned").eq(True)]
    return [f"{FLAG} {row['label']} removed {float(row['structure_ratio']):.0%} of the units it was asked to "
            f"remove ({float(row['structure_ratio_asked']):.0%}), less than half: the groups left whole say why."
            for _, row in rows.iterrows()]


def _device_table(rows: pd.DataFrame, chosen: pd.DataFrame, dense_macs: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the raw numbers, the displayed table) of one device's structured variants and its dense baseline."""
    base = _baseline_device(rows)
    # One row per structured variant (its seeds averaged) and file format, the dense baseline first, then the
    # variants in plan order.
    structured = is_structured(chosen)
    chosen = chosen.assign(variant=chosen["series"].where(structured, ""),
                           position=plan_position(chosen).where(structured, -1),
                           macs=column(chosen, "macs").where(structured, dense_macs),
                           removed=chosen.apply(removed_cell, axis=1),
                           kept_summary=chosen.apply(kept_summary, axis=1))
    grouped = chosen.groupby(["technique", "variant", "format"], sort=False, dropna=False)
    agg = grouped[["position", *MEASURES]].mean().join(grouped[FACTS].first()).reset_index()
    agg = agg.sort_values(["format", "position"], key=_format_ranks, kind="stable")
    agg = agg.drop(columns=["variant", "position"])
    agg["speedup"] = base["latency_p50_ms"] / agg["latency_p50_ms"] if base is not None else np.nan
    agg["size_ratio"] = agg["disk_mb"] / base["disk_mb"] if base is not None else np.nan
    has = {name: chosen[name].ne(DASH).any() for name in FACTS}
    display = display_frame(agg, [
        ("Structure Pruned", "technique", None),
        ("Format", "format", None) if agg["format"].nunique() > 1 else None,
        ("Sparsity Rate (%)", "sparsity_rate_pct", ".2f"),
        ("Accuracy (%)", "device_accuracy_pct", ".2f"),
        ("Latency (s)", "latency_p50_s", ".3g"),
        ("Disk Size (MB)", "disk_mb", ".4g"),
        ("Speed-up vs dense", "speedup", fmt_ratio),
        ("Size vs dense", "size_ratio", fmt_ratio),
        ("Params", "params", fmt_count),
        ("MACs", "macs", fmt_count) if agg["macs"].notna().any() else None,
        ("Units removed", "removed", None) if has["removed"] else None,
        ("Kept widths", "kept_summary", None) if has["kept_summary"] else None,
    ])
    return agg, display


def _host_blocks(models: pd.DataFrame, task: Any, csv_names: set[str]) -> list[Block]:
    """Per task, from the manifest: kept width of every narrowed layer, groups left whole, under-pruned variants."""
    blocks: list[Block] = []
    table = kept_widths_table(models)
    if len(table):
        blocks += [Heading(3, f"Kept widths · {task}"),
                   Table(display=table.astype(str), data=table.assign(task=task),
                         csv_name=unique_name(f"structured-kept-widths-{slug(str(task))}", ".csv", csv_names))]
    notes = under_pruned_notes(models) + skipped_notes(models)
    if notes:
        if not len(table):
            blocks.append(Heading(3, f"Kept widths · {task}"))
        blocks += [Paragraph("Groups left whole (a group is every layer that must lose the same units; "
                             f"{FLAG}: asked for, but removing its units failed the exactness check):"),
                   Notes(tuple(notes))]
    return blocks


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
                  "to the dense baseline's plain ONNX file on the same device. Params and MACs (multiply-accumulates "
                  "of one input row) are the host's counts; Units removed is the share of the units the variant was "
                  "asked to remove that went, against the share asked; Kept widths counts the narrowed layers per "
                  "dense→kept width (every layer is listed below the device tables)."),
    ]
    models = _structured_models(frame)
    dense_macs = {task: column(rows, "dense_macs").max() for task, rows in models.groupby("task", sort=False)}
    csv_names: set[str] = set()
    found = False
    for (device, task), rows in frame.groupby(["device", "task"], sort=False):
        dense = baseline_mask(rows) & rows["format"].eq(ONNX)
        chosen = rows[(is_structured(rows) | dense) & rows["status"].eq("ok")]
        if not is_structured(chosen).any():
            continue
        found = True
        agg, display = _device_table(rows, chosen, dense_macs.get(task, np.nan))
        blocks.append(Heading(3, f"{device} · {task}"))
        blocks.append(Table(display=display, data=agg.assign(device=device, task=task),
                            csv_name=unique_name(f"structured-{slug(device)}-{slug(task)}", ".csv", csv_names)))
        if _baseline_device(rows) is None:
            blocks.append(Paragraph("No dense baseline was measured on this device, so speed-up and size are not "
                                    "computed."))
    host = [block for task, rows in models.groupby("task", sort=False) for block in _host_blocks(rows, task,
                                                                                                  csv_names)]
    return blocks + host if found or host else []
