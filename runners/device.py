"""Facts about the device a measurement ran on (the ``device`` object of a result, docs/formats.md).

Every fact is best-effort: where a platform does not expose one, its value is ``None`` (JSON null);
collecting facts never raises.
"""

from __future__ import annotations

import os
import platform
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

# ISA flags reported in every result, in this order. Value: True/False when the CPU flag list is known,
# None when it is not (e.g. no /proc/cpuinfo and no sysctl).
ISA_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx", "neon", "asimddp", "sve", "fma", "f16c")

# Linux flag names (x86 "flags", ARM "Features") that imply each reported flag.
_LINUX_FLAG_NAMES = {
    "avx2": ("avx2",),
    "avx512f": ("avx512f",),
    "avx512_vnni": ("avx512_vnni",),
    "avx_vnni": ("avx_vnni",),
    "amx": ("amx_tile",),
    "neon": ("neon", "asimd"),  # 32-bit ARM says neon, AArch64 says asimd
    "asimddp": ("asimddp",),
    "sve": ("sve",),
    "fma": ("fma",),
    "f16c": ("f16c",),
}

# macOS sysctl keys (hw.optional.*) that imply each reported flag.
_MAC_SYSCTL = {
    "avx2": ("hw.optional.avx2_0",),
    "avx512f": ("hw.optional.avx512f",),
    "avx512_vnni": ("hw.optional.avx512vnni",),
    "avx_vnni": (),
    "amx": (),
    "neon": ("hw.optional.neon", "hw.optional.AdvSIMD"),
    "asimddp": ("hw.optional.arm.FEAT_DotProd",),
    "sve": (),
    "fma": ("hw.optional.fma",),
    "f16c": ("hw.optional.f16c",),
}

# ARM "CPU part" numbers of common cores (implementer 0x41 = Arm Ltd.), for boards without "model name".
_ARM_PARTS = {
    "0xc07": "Cortex-A7", "0xc09": "Cortex-A9", "0xc0f": "Cortex-A15", "0xd03": "Cortex-A53",
    "0xd04": "Cortex-A35", "0xd05": "Cortex-A55", "0xd07": "Cortex-A57", "0xd08": "Cortex-A72",
    "0xd09": "Cortex-A73", "0xd0a": "Cortex-A75", "0xd0b": "Cortex-A76", "0xd0c": "Neoverse-N1",
    "0xd0d": "Cortex-A77", "0xd40": "Neoverse-V1", "0xd41": "Cortex-A78", "0xd44": "Cortex-X1",
    "0xd46": "Cortex-A510", "0xd47": "Cortex-A710", "0xd48": "Cortex-X2", "0xd49": "Neoverse-N2",
    "0xd4b": "Cortex-A78C", "0xd4f": "Neoverse-V2", "0xd80": "Cortex-A520", "0xd81": "Cortex-A720",
}


def _safe(fn: Callable[[], Any], default: Any = None) -> Any:
    """Run ``fn``; any exception (missing file, missing module, odd platform) gives ``default``."""
    try:
        return fn()
    except Exception:  # noqa: BLE001 - a missing fact must never crash a measurement
        return default


def _read_text(path: str) -> str | None:
    return _safe(lambda: Path(path).read_text(errors="replace"))


def _cpuinfo() -> dict[str, str]:
    """First value of each key in /proc/cpuinfo (Linux); {} elsewhere."""
    text = _read_text("/proc/cpuinfo") or ""
    info: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            info.setdefault(key.strip(), value.strip())
    return info


def _sysctl(name: str) -> str | None:
    if sys.platform != "darwin":
        return None

    def run() -> str | None:
        out = subprocess.run(["sysctl", "-n", name], capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None if out.returncode == 0 else None

    return _safe(run)


def cpu_model(info: dict[str, str] | None = None) -> str | None:
    info = _cpuinfo() if info is None else info
    if info.get("model name"):
        return info["model name"]
    if sys.platform == "darwin":
        brand = _sysctl("machdep.cpu.brand_string")
        if brand:
            return brand
    # ARM boards: "Hardware" (older kernels), the device-tree model, or the core's part number.
    if info.get("Hardware"):
        return info["Hardware"]
    dt_model = (_read_text("/proc/device-tree/model") or "").strip("\x00 \n")
    part = info.get("CPU part")
    core = _ARM_PARTS.get(part.lower(), f"CPU part {part}") if part else None
    if dt_model and core:
        return f"{dt_model} ({core})"
    if dt_model or core:
        return dt_model or core
    return _safe(lambda: platform.processor() or None)


def isa_flags(info: dict[str, str] | None = None) -> dict[str, bool | None]:
    info = _cpuinfo() if info is None else info
    raw = info.get("flags") or info.get("Features")
    if raw is not None:
        present = set(raw.lower().split())
        return {k: any(n in present for n in _LINUX_FLAG_NAMES[k]) for k in ISA_FLAGS}
    if sys.platform == "darwin":
        arm = platform.machine() in ("arm64", "aarch64")
        x86_only = {"avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx", "fma", "f16c"}
        flags: dict[str, bool | None] = {}
        for k in ISA_FLAGS:
            values = [_sysctl(n) for n in _MAC_SYSCTL[k]]
            if any(v == "1" for v in values):
                flags[k] = True
            elif any(v is not None for v in values) or (k in x86_only) == arm:
                flags[k] = False  # sysctl says no, or the flag belongs to the other architecture
            else:
                flags[k] = None
        if arm:  # every Apple-silicon core has Advanced SIMD
            flags["neon"] = True
        return flags
    return {k: None for k in ISA_FLAGS}


def os_release() -> str | None:
    text = _read_text("/etc/os-release") or _read_text("/usr/lib/os-release")
    if text:
        m = re.search(r'^PRETTY_NAME=("?)(.*)\1\s*$', text, re.MULTILINE)
        if m:
            return m.group(2)
    if sys.platform == "darwin":
        ver = _safe(lambda: platform.mac_ver()[0])
        return f"macOS {ver}" if ver else None
    if sys.platform.startswith("win"):
        return _safe(lambda: f"Windows {platform.release()} {platform.version()}")
    return None


def _cpu_freq() -> dict[str, float | None]:
    freq = _safe(lambda: __import__("psutil").cpu_freq())
    keys = ("current", "min", "max")
    if freq is None:
        return {k: None for k in keys}
    return {k: (round(float(getattr(freq, k)), 1) if getattr(freq, k, None) else None) for k in keys}


def _governor() -> str | None:
    text = _read_text("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
    return text.strip() if text else None


def device_facts(label: str | None = None) -> dict[str, Any]:
    """The ``device`` object of a result (keys of docs/formats.md, plus a few extras)."""
    info = _cpuinfo()
    psutil = _safe(lambda: __import__("psutil"))
    ort = _safe(lambda: __import__("onnxruntime"))
    np = _safe(lambda: __import__("numpy"))
    hostname = _safe(socket.gethostname)
    mem = _safe(lambda: psutil.virtual_memory())
    return {
        "hostname": hostname,
        "label": label or hostname,
        "cpu_model": cpu_model(info),
        "machine": _safe(lambda: platform.machine() or None),
        "physical_cores": _safe(lambda: psutil.cpu_count(logical=False)),
        "logical_cores": _safe(lambda: psutil.cpu_count(logical=True)) or _safe(os.cpu_count),
        "usable_cores": _safe(lambda: len(os.sched_getaffinity(0))),
        "cpu_freq_mhz": _cpu_freq(),
        "cpu_governor": _governor(),
        "isa_flags": isa_flags(info),
        "memory_total_mb": _safe(lambda: round(mem.total / 2**20, 1)),
        "memory_available_mb": _safe(lambda: round(mem.available / 2**20, 1)),
        "os": _safe(platform.platform),
        "os_release": os_release(),
        "kernel": _safe(lambda: platform.release() or None),
        "python": _safe(platform.python_version),
        "onnxruntime": _safe(lambda: ort.__version__),
        "providers": _safe(lambda: list(ort.get_available_providers())),
        "numpy": _safe(lambda: np.__version__),
        "psutil": _safe(lambda: psutil.__version__),
    }
