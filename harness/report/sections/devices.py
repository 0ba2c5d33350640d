"""Devices: the workstation's facts and each result's device facts and bench settings, one column each."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from harness.report.format import DASH, fmt_number, fmt_text, known
from harness.report.load import BYTES_PER_MB, BYTES_PER_MIB, call_api, flatten
from harness.report.render import Block, Heading, Paragraph, Table


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
        "Memory (MB)": DASH if memory is None else f"{float(memory) * BYTES_PER_MIB / BYTES_PER_MB:,.0f}",
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
