"""Summary, the report's first screen: per device (and provider) and task, the file to deploy under each accuracy
budget with its latency, size and memory against the dense fp32 file, and before it the warnings that qualify every
number below (quick profile, one seed, a model at chance level, extra fine-tuning, emulated or throttled devices,
int8 or sparse files slower or larger than their fp32 file)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from harness.report.compare import AABand, Ratio, aa_band, latency_ratio, ratio_cell, records
from harness.report.format import DASH, FLAG, display_frame, fmt_ratio
from harness.report.frame import (NEAR_CHANCE_PP, against_plain_file, baseline_mask, chance_accuracy_pct,
                                   device_conditions, is_structured, manifest_models, ok_rows, point_ratio,
                                   technique_label)
from harness.report.load import is_missing
from harness.report.render import Block, Heading, Notes, Paragraph, Table
from runners.contract import DEPLOYABLE_PP, FORMATS, ONNX

# Accuracy budgets, in points below the dense baseline's device accuracy, that a recommendation may spend.
BUDGETS_PP = (0.5, DEPLOYABLE_PP)
WARNINGS_SHOWN = 3   # files named per pessimisation warning; the tables below list every one


def _label(rows: pd.DataFrame) -> str:
    first = rows.iloc[0]
    fmt = FORMATS[first["format"]].label if first["format"] in FORMATS else first["format"]
    return f"{technique_label(first)} [{fmt}]"


def _band_cell(band: AABand | None) -> str:
    return DASH if not isinstance(band, AABand) else band.ratio.text()


def recommendations(frame: pd.DataFrame, rows: pd.DataFrame, device: str, task) -> list[dict]:
    """One device's rows of one task: per budget the fastest file (p50, mean over seeds) whose device accuracy (mean
    over seeds) is within the budget of the dense fp32 baseline's; budgets that pick the same file share a row."""
    ok = ok_rows(rows)
    base = ok[baseline_mask(ok) & ok["format"].eq(ONNX)]
    if base.empty:
        return []
    files = ok.groupby(["series", "format"], sort=False)
    stats = files[["device_accuracy_pct", "latency_p50_ms", "disk_mb", "peak_memory_mb"]].mean()
    dense_accuracy = base["device_accuracy_pct"].mean()
    band = aa_band(frame, device, task)
    picked: dict[tuple, list[float]] = {}
    for budget in BUDGETS_PP:
        within = stats[stats["device_accuracy_pct"].round(9) >= round(dense_accuracy - budget, 9)]
        within = within.dropna(subset=["latency_p50_ms"])
        if len(within):
            picked.setdefault(within["latency_p50_ms"].idxmin(), []).append(budget)
    out = []
    for key, budgets in picked.items():
        chosen = files.get_group(key)
        size, memory = point_ratio(chosen["disk_mb"], base["disk_mb"]), point_ratio(chosen["peak_memory_mb"],
                                                                                    base["peak_memory_mb"])
        out.append({
            "budget": " and ".join(f"{b:g}" for b in budgets),
            "file": _label(chosen), "name": chosen["name"].iloc[0], "format": key[1],
            "accuracy": stats.loc[key, "device_accuracy_pct"],
            "delta": stats.loc[key, "device_accuracy_pct"] - dense_accuracy,
            "p50": stats.loc[key, "latency_p50_ms"], "disk_mb": stats.loc[key, "disk_mb"],
            "latency_ratio": latency_ratio(records(chosen), records(base)), "size_ratio": size,
            "memory_ratio": memory, "band": band,
        })
    return out


def _quality_warnings(frame: pd.DataFrame) -> list[str]:
    """Warnings about where the numbers come from: the profile, the seeds, models at chance, extra training."""
    warnings = []
    manifest = frame.attrs.get("manifest") or {}
    if manifest.get("profile") == "quick":
        warnings.append(f"{FLAG} Quick profile: a smoke test (a training subset, one epoch); accuracies are not the "
                        "lab's and differences between variants mean little. Export with the full profile "
                        "(`make export`) for numbers to quote.")
    models = manifest_models(frame)
    seeds = models["seed"].dropna().unique()
    if len(seeds) <= 1:
        warnings.append(f"{FLAG} One seed: accuracy differences smaller than the spread between seeds (about a "
                        "point at high sparsity) are not established; `SEEDS=3 make export` measures that spread.")
    chance, extra = [], []
    for task, rows in models.groupby("task", sort=False):
        base = rows[baseline_mask(rows)]
        dense = base["host_accuracy"].mean() * 100
        floor = chance_accuracy_pct(frame, base["eval"].iloc[0]) if len(base) and "eval" in base else None
        if floor is not None and not is_missing(dense) and dense - floor <= NEAR_CHANCE_PP:
            chance.append(f"{task} (dense {dense:.1f}%, most frequent label {floor:.1f}%)")
        tuned = rows[is_structured(rows) & rows.get("finetuned", pd.Series(False, index=rows.index)).eq(True)]
        better = tuned.groupby("series", sort=False)["host_accuracy"].mean() * 100
        if not is_missing(dense) and (better > dense).any():
            name = better.idxmax()
            label = technique_label(tuned[tuned["series"].eq(name)].iloc[0])
            extra.append(f"{task} ({label} {better.max():.1f}% against dense {dense:.1f}%)")
    if chance:
        warnings.append(f"{FLAG} At chance level: {'; '.join(chance)}. Its variants, ratios and sensitivity say "
                        "nothing about pruning; train it longer (full profile) first.")
    if extra:
        warnings.append(f"{FLAG} Structured variants beat their dense baseline after fine-tuning: "
                        f"{'; '.join(extra)}. Fine-tuning is extra training the baseline did not get, so the gain is "
                        "the training, not the pruning.")
    return warnings


def _device_warnings(frame: pd.DataFrame) -> list[str]:
    """Warnings about a measured device: its conditions, and files slower or larger than their fp32 file."""
    warnings, larger = [], {}
    for device, rows in frame.groupby("device", sort=False):
        conditions = device_conditions(rows.iloc[0].to_dict())
        if conditions:
            warnings.append(f"{FLAG} {device}: {'; '.join(conditions)}.")
        worse = against_plain_file(frame, rows, device)
        slower = worse[worse["slower"]].assign(value=[r.median for r in worse.loc[worse["slower"], "latency_ratio"]])
        if len(slower):
            slower = slower.sort_values("value", ascending=False)
            named = ", ".join(f"{s} [{f}] {v:.2f}×" for s, f, v in
                              slower[["series", "format", "value"]].head(WARNINGS_SHOWN).itertuples(index=False))
            more = f" and {len(slower) - WARNINGS_SHOWN} more" if len(slower) > WARNINGS_SHOWN else ""
            warnings.append(f"{FLAG} {device}: {len(slower)} file(s) slower than the fp32 file of the same variant "
                            f"beyond noise: {named}{more}.")
        for _, row in worse[worse["larger"]].iterrows():
            larger[(row["series"], row["format"])] = row["size_ratio"]
    if larger:
        ranked = sorted(larger.items(), key=lambda item: -item[1])
        named = ", ".join(f"{s} [{f}] {v:.2f}×" for (s, f), v in ranked[:WARNINGS_SHOWN])
        more = f" and {len(ranked) - WARNINGS_SHOWN} more" if len(ranked) > WARNINGS_SHOWN else ""
        warnings.append(f"{FLAG} {len(ranked)} file(s) larger than the fp32 file of the same variant: {named}{more}.")
    return warnings


def _lead(frame: pd.DataFrame) -> str:
    manifest = frame.attrs.get("manifest") or {}
    models = manifest_models(frame)
    seeds = sorted(int(s) for s in models["seed"].dropna().unique())
    seed_text = (f"{len(seeds)} seed{'s' if len(seeds) != 1 else ''} ({', '.join(map(str, seeds))})" if seeds
                 else "seeds not recorded")
    selection = manifest.get("selection") or {}
    bundle_text = (f"a {selection.get('preset')} selection of the plan ({selection.get('models')} of "
                   f"{selection.get('models_offered')} variants)" if selection else "the complete plan")
    return (f"Profile {manifest.get('profile') or 'unknown'}, {seed_text}, bundle: {bundle_text}. Recommended: the "
            "fastest file (device p50) whose device accuracy is within the budget of the dense fp32 file on the "
            "same device; ratios are that file's over the dense file's (below 1× is better).")


def summary_section(frame: pd.DataFrame, out_dir: Path) -> list[Block]:
    table = []
    for device, device_rows in frame.groupby("device", sort=False):   # a device per result and provider (load)
        for task, rows in device_rows.groupby("task", sort=False):
            for rec in recommendations(frame, rows, device, task) or [{"budget": DASH, "file": "no dense baseline measured"}]:
                table.append({"device": device, "task": task, **rec})
    data = pd.DataFrame(table)
    blocks: list[Block] = [Heading(2, "Summary"), Paragraph(_lead(frame))]
    warnings = _quality_warnings(frame) + _device_warnings(frame)
    if warnings:
        blocks.append(Notes(tuple(warnings)))
    if data.empty:
        return blocks + [Paragraph("No device measured a file successfully, so there is nothing to recommend.")]
    for column in ("accuracy", "delta", "p50", "disk_mb", "size_ratio", "memory_ratio"):
        if column not in data:
            data[column] = float("nan")
    for column in ("latency_ratio", "band"):
        if column not in data:
            data[column] = None
    display = display_frame(data, [
        ("Device", "device", None),
        ("Task", "task", None) if data["task"].nunique() > 1 else None,
        ("Budget (points)", "budget", None),
        ("Recommended file", "file", None),
        ("Accuracy (%) device", "accuracy", ".2f"),
        ("vs dense (points)", "delta", lambda v: DASH if is_missing(v) else f"{v:+.2f}"),
        ("Latency p50 (ms)", "p50", ".3g"),
        ("Latency vs dense [95%]", lambda row: ratio_cell(row["latency_ratio"], row["band"]), None),
        ("A/A band", lambda row: _band_cell(row["band"]), None),
        ("Size (MB)", "disk_mb", ".4g"),
        ("Size vs dense", "size_ratio", fmt_ratio),
        ("Peak RSS vs dense", "memory_ratio", fmt_ratio),
    ])
    ratios = [r if isinstance(r, Ratio) else None for r in data["latency_ratio"]]
    bands = [b.ratio if isinstance(b, AABand) else None for b in data["band"]]
    csv = data.assign(latency_ratio=[None if r is None else r.median for r in ratios],
                      latency_ratio_low=[None if r is None or r.ci95 is None else r.ci95[0] for r in ratios],
                      latency_ratio_high=[None if r is None or r.ci95 is None else r.ci95[1] for r in ratios],
                      latency_ratio_method=[None if r is None else r.method for r in ratios],
                      aa_ratio=[None if b is None else b.median for b in bands],
                      aa_ratio_low=[None if b is None or b.ci95 is None else b.ci95[0] for b in bands],
                      aa_ratio_high=[None if b is None or b.ci95 is None else b.ci95[1] for b in bands]).drop(
                          columns=["band"])
    return blocks + [
        Table(display=display, data=csv, csv_name="summary.csv"),
        Paragraph("Latency vs dense: the median of the per-round ratios of timing windows run next to each other, "
                  "with its 95% interval over the rounds (a t interval on the log ratios; no interval where the "
                  "result has no rounds); \"within noise\" where it lies inside the A/A band, the dense file timed "
                  "against itself as two entries on that device. Peak RSS: the runner's peak resident memory while "
                  "the file ran (from runner 0.5 on, in a fresh process of its own). Sizes in MB (10^6 bytes), times "
                  f"in ms. Budgets: "
                  f"{' and '.join(f'{b:g}' for b in BUDGETS_PP)} points of device accuracy below dense."),
    ]
