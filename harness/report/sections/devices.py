"""Devices: the workstation's facts and each result's device facts and bench settings, one column per device and
execution provider: the board and CPU cores, whether the CPU was emulated or slowed down during the run, and the
provider with its options and the session options every number of that column was measured with."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from harness.report.compare import device_bands, timing_label
from harness.report.format import DASH, fmt_number, fmt_text, known
from harness.report.load import BYTES_PER_MB, BYTES_PER_MIB, call_api, flatten
from harness.report.render import Block, Heading, Paragraph, Table
from runners.thermal import OTHER_LOAD_REASON


def _under(flat: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """The flattened keys below ``prefix`` (without it), known values only."""
    return {k[len(prefix):]: v for k, v in flat.items() if k.startswith(prefix) and known(flat, k) is not None}


def _pairs(values: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(values.items())) or "none"


def _yes_no(value: Any) -> str:
    return DASH if value is None else ("yes" if bool(value) else "no")


def run_facts(flat: Mapping[str, Any]) -> dict[str, str]:
    """What explains a device's numbers: board, cores, emulation, frequency and throttling during the run,
    temperatures, how the runner was installed."""
    cores = flat.get("device.arm_cores")
    cores_text = ", ".join(f"{c.get('count')}x {c.get('core')}" for c in cores if isinstance(c, Mapping)) \
        if isinstance(cores, list) and cores else DASH
    emulated = known(flat, "device.emulated")
    evidence = known(flat, "device.emulation_evidence")
    dropped, throttled = (known(flat, f"device.during_run.{k}") for k in ("frequency_dropped", "throttled"))
    reasons = flat.get("device.during_run.reasons")
    load = known(flat, "device.during_run.other_load_cores")
    load = load if isinstance(load, (int, float)) and not isinstance(load, bool) else None   # a result is input
    # the other-load reason repeats the number the cell states already
    shown = [r for r in (reasons if isinstance(reasons, list) else [])
             if not str(r).startswith(OTHER_LOAD_REASON)]
    during = DASH if dropped is None and throttled is None and load is None else \
        f"frequency dropped: {_yes_no(dropped)}; throttled: {_yes_no(throttled)}" + \
        (f"; {OTHER_LOAD_REASON} {fmt_number(float(load), '.2f')} cores busy" if load is not None else "") + \
        (f" ({'; '.join(shown)})" if shown else "")
    temps = {when: [float(v) for v in _under(flat, f"device.state_{when}.temperatures_c.").values()]
             for when in ("before", "after")}
    temp_text = DASH if not (temps["before"] or temps["after"]) else " / ".join(
        fmt_number(max(v), ".1f") if v else DASH for v in temps.values())
    install = known(flat, "device.install.source")
    return {
        "Board / SoC": " / ".join(str(v) for v in (known(flat, "device.board"), known(flat, "device.soc")) if v)
                       or DASH,
        "ARM cores": cores_text,
        "Emulated CPU": DASH if emulated is None else ("yes: timings are functional only, not the device's"
                                                       + (f" ({evidence})" if evidence else "") if emulated else "no"),
        "During the run": during,
        "Hottest sensor before / after (°C)": temp_text,
        "CPU governor": fmt_text(known(flat, "device.cpu_governor")),
        "Runner installed from": DASH if install is None else
        f"{install} ({fmt_text(known(flat, 'device.install.target'))})",
    }


def provider_facts(flat: Mapping[str, Any]) -> dict[str, str]:
    """The execution provider of this column and every session option that changes timing."""
    provider = known(flat, "provider")
    if provider is None:
        return {}
    options = _under(flat, f"settings.provider_options.{provider}.")
    effective = _under(flat, f"settings.provider_options_effective.{provider}.")
    session = _under(flat, "settings.session_options.")
    unavailable = _under(flat, "settings.providers_unavailable.")
    runner_04 = bool(session)
    if session:
        threads = [f"{k} {session[f'{k}_op_num_threads']}" + (" (default)" if session[f"{k}_op_num_threads"] == 0
                                                               else "")
                   for k in ("intra", "inter") if f"{k}_op_num_threads" in session]
        spinning = session.get("intra_op_allow_spinning")
        session_text = ", ".join([str(session.get("graph_optimization_level", DASH)),
                                  str(session.get("execution_mode", DASH)), *threads,
                                  "spinning " + ("off" if spinning == "0" else "on")])
    else:   # results before runner 0.4 set only the intra-op threads; the rest was onnxruntime's default
        session_text = "not recorded (runner before 0.4: ORT_ENABLE_ALL, ORT_SEQUENTIAL, spinning on)"
    package = known(flat, "device.onnxruntime_package")
    build = known(flat, "device.onnxruntime_build")
    build = str(build).split(", cmake")[0] if build else None   # the compiler flags that follow say nothing here
    return {
        "Execution provider": str(provider),
        "Provider options (asked / onnxruntime's)": f"{_pairs(options)} / "
                                                    f"{_pairs(effective) if runner_04 else DASH}",
        "Session options": session_text,
        "onnxruntime package / build": " / ".join(str(v) for v in (package, build) if v) or DASH,
        "Providers asked for but not available": "; ".join(f"{k}: {v}" for k, v in unavailable.items()) or "none",
    }


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


MEMORY_ISOLATION_TEXT = {
    "process": "each file in a fresh process: its own increment, whatever the order",
    "none": "all files in one process: later files' figures depend on what ran before them",
}


def measuring_facts(frame: pd.DataFrame, device: str) -> dict[str, str]:
    """Rows of the table that say how one device's result was measured, so results of older runners are labelled as
    such."""
    facts = next((r for r in frame.attrs["results"] if r["device"] == device), {})
    bands = device_bands(frame, device)
    several = len(bands) > 1
    aa = "; ".join(f"{task}: {band.ratio.text()}" if several else band.ratio.text() for task, band in bands.items())
    return {
        "Timing": timing_label(facts.get("rounds"), facts.get("paired", False), facts.get("control", False)),
        "A/A control (noise floor)": aa or "none in this result",
        "Memory per file": MEMORY_ISOLATION_TEXT.get(facts.get("memory_isolation"),
                                                     "not recorded (runner before 0.5: one process for all files)"),
    }


def devices_section(frame: pd.DataFrame, out_dir: Path) -> list[Block]:
    columns: dict[str, dict[str, str]] = {}
    host = flatten({"device": frame.attrs.get("host") or {}})
    measured_rows = dict.fromkeys(("Timing", "A/A control (noise floor)", "Memory per file"), DASH)
    columns["Workstation (training ran here)"] = {"Source": "manifest host (torch)", **hardware_facts(host),
                                                  **run_facts(host), **measured_rows}
    for _, first in frame.drop_duplicates("device").iterrows():
        flat = first.to_dict()
        columns[first["device"]] = {"Source": Path(first["result_path"]).name, **hardware_facts(flat),
                                    **run_facts(flat), **provider_facts(flat),
                                    **measuring_facts(frame, first["device"])}
    table = pd.DataFrame(columns).fillna(DASH)
    table.index.name = "Fact"
    table = table.reset_index()
    return [
        Heading(2, "Devices"),
        Paragraph("One column per result file and execution provider; the same machine with other bench settings or "
                  "another provider is a separate device. The workstation trained the models and computed the host "
                  "numbers; it is not a measured device unless one of the result files comes from it. A device label "
                  "ending in ⚠ says, wherever its numbers appear, that its CPU was emulated (timings functional "
                  "only) or slowed down during the run. The A/A control is the dense reference file timed as two "
                  "entries: the ratio of the two, over the rounds, is the noise floor of every latency comparison "
                  "on that device."),
        Table(display=table, data=table, csv_name="devices.csv"),
    ]
