"""Provenance: where the host numbers and the device numbers come from."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from harness.report.render import Block, Heading, Paragraph
from runners.contract import EXPORT_RUN


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
    return [Heading(2, "Provenance"), Paragraph(text + export_run_sentence(manifest.get(EXPORT_RUN)))]


def export_run_sentence(run) -> str:
    """How the experiment graph ran (docs/formats.md, "export"); nothing for a bundle without the record."""
    if not isinstance(run, dict) or not all(isinstance(run.get(k), (int, float)) for k in
                                            ("work_seconds", "wall_seconds", "critical_path_seconds")):
        return ""
    where = "in one process" if run.get("executor") == "sequential" else f"on {run.get('workers')} Dask worker(s)"
    return (f" The export ran {run.get('tasks_run')} of {run.get('tasks')} tasks {where}: work "
            f"{run['work_seconds']:.0f} s, wall {run['wall_seconds']:.0f} s, critical path "
            f"{run['critical_path_seconds']:.0f} s (the wall time unlimited workers would need).")
