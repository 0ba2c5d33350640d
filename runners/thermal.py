"""The CPU's state while it measures: per-core frequency (current, min, max) and governor, temperatures and
throttling, taken before and after a run, plus the current frequency after each file's timing window, so a result
says when a slow number came from a hot or capped CPU.

Sources, each optional (a missing /sys or /proc entry makes its value None, never an error): cpufreq in /sys (or
/proc/cpuinfo's "cpu MHz" on virtual machines), psutil.sensors_temperatures() (hwmon and thermal zones), the x86
kernel's thermal_throttle counters, and the Raspberry Pi firmware's throttled flags (sysfs, else vcgencmd).

It also records how busy the rest of the machine was: the CPU seconds the whole machine spent busy (psutil's
system-wide cpu_times) minus those of the runner and the fresh processes it waited for, over the run's wall time.
Why: on a shared machine a neighbour's load moves latencies and even speed-up ratios (on the 2-vCPU workstation a
training job on the other vCPU doubled a small file's p50 and took the FFN's 50% speed-up from about 7x to 3.7x),
and neither the paired windows nor the A/A control can show that, since both sides share the load.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any, Callable

CPU_SYS = "/sys/devices/system/cpu"
# The Raspberry Pi firmware's get_throttled bits (vcgencmd get_throttled), "now" and "has occurred since boot".
RPI_THROTTLED_BITS = {0: "under-voltage", 1: "arm frequency capped", 2: "throttled", 3: "soft temperature limit"}
RPI_SYSFS_THROTTLED = "/sys/devices/platform/soc/soc:firmware/get_throttled"
FREQUENCY_DROP = 0.10   # a core's frequency after a timing window more than 10% below its highest one is a drop
OTHER_LOAD = 0.25       # other processes busy for more than a quarter of a core on average: the run shared the CPU
OTHER_LOAD_REASON = "other processes kept"   # how that reason begins (the report states the number itself)


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text(errors="replace").strip()
    except (OSError, ValueError):
        return None


def _number(path: str, scale: float = 1.0) -> float | None:
    text = _read(path)
    try:
        return round(float(text) * scale, 1) if text is not None else None
    except ValueError:
        return None


def _cpu_ids(root: str = CPU_SYS) -> list[int]:
    ids = [int(m.group(1)) for p in glob.glob(f"{root}/cpu[0-9]*") if (m := re.search(r"cpu(\d+)$", p))]
    return sorted(ids)


def _proc_cpu_mhz() -> list[float]:
    text = _read("/proc/cpuinfo") or ""
    return [round(float(v), 1) for v in re.findall(r"^cpu MHz\s*:\s*([0-9.]+)", text, re.MULTILINE)]


def core_frequencies(root: str = CPU_SYS) -> list[dict[str, Any]]:
    """Per core: {"cpu", "current", "min", "max" (MHz), "governor"}; cpufreq in /sys where the kernel has it, else
    /proc/cpuinfo's "cpu MHz" (current only); [] when neither is readable."""
    cores = []
    for cpu in _cpu_ids(root):
        base = f"{root}/cpu{cpu}/cpufreq"
        if not os.path.isdir(base):
            continue
        cores.append({"cpu": cpu, "current": _number(f"{base}/scaling_cur_freq", 1e-3),
                      "min": _number(f"{base}/scaling_min_freq", 1e-3),
                      "max": _number(f"{base}/scaling_max_freq", 1e-3),
                      "hardware_max": _number(f"{base}/cpuinfo_max_freq", 1e-3),
                      "governor": _read(f"{base}/scaling_governor")})
    if cores:
        return cores
    return [{"cpu": i, "current": mhz, "min": None, "max": None, "hardware_max": None, "governor": None}
            for i, mhz in enumerate(_proc_cpu_mhz())]


def current_mhz(root: str = CPU_SYS) -> list[float | None]:
    """Each core's current frequency now (cheap: one small file per core)."""
    return [c["current"] for c in core_frequencies(root)]


def temperatures() -> dict[str, float]:
    """Sensor label -> degrees Celsius (psutil: hwmon and thermal zones); {} where the OS exposes none."""
    try:
        import psutil

        readings = psutil.sensors_temperatures() if hasattr(psutil, "sensors_temperatures") else {}
    except Exception:  # noqa: BLE001 - no /sys, or a sensor that fails to read
        return {}
    out: dict[str, float] = {}
    for chip, entries in (readings or {}).items():
        for i, entry in enumerate(entries):
            label = f"{chip}/{entry.label or i}"
            if entry.current is not None:
                out[label] = round(float(entry.current), 1)
    return out


def _rpi_throttled(run: Callable[..., Any] = subprocess.run) -> int | None:
    text = _read(RPI_SYSFS_THROTTLED)
    if text is None and shutil.which("vcgencmd"):
        try:
            proc = run(["vcgencmd", "get_throttled"], capture_output=True, text=True, timeout=5)
            text = proc.stdout.strip().partition("=")[2] if proc.returncode == 0 else None
        except (OSError, subprocess.SubprocessError):
            text = None
    try:
        return int(text, 0) if text else None
    except ValueError:
        return None


def decode_rpi_throttled(value: int) -> dict[str, list[str]]:
    """0x50005 -> {"now": ["under-voltage", "throttled"], "since_boot": ["under-voltage", "throttled"]}."""
    return {"now": [name for bit, name in RPI_THROTTLED_BITS.items() if value >> bit & 1],
            "since_boot": [name for bit, name in RPI_THROTTLED_BITS.items() if value >> (bit + 16) & 1]}


def throttle_counts(root: str = CPU_SYS) -> int | None:
    """Sum of the x86 kernel's core and package thermal-throttle events over all cores; None where absent."""
    counts = [_number(p) for p in glob.glob(f"{root}/cpu[0-9]*/thermal_throttle/*_throttle_count")]
    counts = [c for c in counts if c is not None]
    return int(sum(counts)) if counts else None


def cpu_seconds() -> dict[str, Any]:
    """Busy CPU seconds of the whole machine and of this process with the children it waited for, and a monotonic
    clock; None for what psutil cannot read here."""
    import time

    import psutil

    def machine() -> float:
        t = psutil.cpu_times()
        return float(sum(t) - t.idle - getattr(t, "iowait", 0.0) - getattr(t, "guest", 0.0)
                     - getattr(t, "guest_nice", 0.0))   # guest time is already counted in user time on Linux

    def own() -> float:
        t = psutil.Process().cpu_times()
        return float(t.user + t.system + getattr(t, "children_user", 0.0) + getattr(t, "children_system", 0.0))

    def safe(fn: Callable[[], float]) -> float | None:
        try:
            return fn()
        except Exception:  # noqa: BLE001 - a fact the platform does not offer is None, never an error
            return None

    return {"machine_busy_s": safe(machine), "own_s": safe(own), "clock_s": time.monotonic(),
            "logical_cores": psutil.cpu_count()}


def snapshot() -> dict[str, Any]:
    """The CPU's state now: per-core frequencies and governors, temperatures, throttling, CPU seconds."""
    rpi = _rpi_throttled()
    return {
        "cores": core_frequencies(),
        "temperatures_c": temperatures(),
        "throttle_count": throttle_counts(),
        "rpi_throttled": None if rpi is None else {"raw": hex(rpi), **decode_rpi_throttled(rpi)},
        "cpu_seconds": cpu_seconds(),
    }


def other_load(before: dict[str, Any], after: dict[str, Any]) -> float | None:
    """Cores kept busy by other processes during the run, on average (None when it cannot be told)."""
    b, a = before.get("cpu_seconds") or {}, after.get("cpu_seconds") or {}
    keys = ("machine_busy_s", "own_s", "clock_s")
    if any(b.get(k) is None or a.get(k) is None for k in keys) or a["clock_s"] <= b["clock_s"]:
        return None
    other = (a["machine_busy_s"] - b["machine_busy_s"]) - (a["own_s"] - b["own_s"])
    return round(max(other, 0.0) / (a["clock_s"] - b["clock_s"]), 2)


def during_run(before: dict[str, Any], after: dict[str, Any], samples: list[list[float | None]]
               ) -> dict[str, Any]:
    """Did the CPU slow down during the run? ``samples`` are current_mhz() after each timing window.

    frequency_dropped: a core's lowest sample is more than FREQUENCY_DROP below its highest, or a core's max
    frequency was lowered between before and after. throttled: the x86 throttle count rose, or the Pi firmware
    reports throttling or capping now or newly since boot. Each is None when there is nothing to compare; the
    reasons say in words what was seen. other_load_cores: how many cores other processes kept busy on average
    (other_load: more than OTHER_LOAD of a core).
    """
    reasons: list[str] = []
    dropped: bool | None = None
    per_core = list(zip(*samples)) if samples and all(len(s) == len(samples[0]) for s in samples) else []
    seen_any = False
    for cpu, values in enumerate(per_core):
        values = [v for v in values if v]
        if len(values) < 2:
            continue
        seen_any = True
        if min(values) < (1 - FREQUENCY_DROP) * max(values):
            reasons.append(f"cpu{cpu} ran at {min(values):.0f} MHz after one timing window and {max(values):.0f} "
                           f"MHz after another")
    maxima = {(c["cpu"]): c["max"] for c in before.get("cores", []) if c.get("max")}
    for c in after.get("cores", []):
        if c.get("max") and c["cpu"] in maxima:
            seen_any = True
            if c["max"] < maxima[c["cpu"]]:
                reasons.append(f"cpu{c['cpu']}'s max frequency fell from {maxima[c['cpu']]:.0f} to {c['max']:.0f} MHz")
    if seen_any:
        dropped = bool(reasons)
    throttled: bool | None = None
    b, a = before.get("throttle_count"), after.get("throttle_count")
    if b is not None and a is not None:
        throttled = a > b
        if throttled:
            reasons.append(f"the kernel counted {a - b} thermal-throttle events")
    rb, ra = before.get("rpi_throttled"), after.get("rpi_throttled")
    if ra is not None:
        new = sorted(set(ra["since_boot"]) - set((rb or {}).get("since_boot", [])))
        flagged = ra["now"] or new
        throttled = bool(throttled) or bool(flagged)
        if flagged:
            reasons.append("the Raspberry Pi firmware reports " + ", ".join(sorted(set(ra["now"]) | set(new))))
    load = other_load(before, after)
    busy = None if load is None else load > OTHER_LOAD
    if busy:
        cores = (after.get("cpu_seconds") or {}).get("logical_cores")
        of_cores = f" of {cores}" if cores else ""
        reasons.append(f"{OTHER_LOAD_REASON} {load:.2f}{of_cores} cores busy on average, "
                       f"which moves latencies and speed-up ratios")
    return {"frequency_dropped": dropped, "throttled": throttled, "other_load": busy, "other_load_cores": load,
            "reasons": reasons}
