"""Facts about the device a measurement ran on (the ``device`` object of a result, docs/formats.md).

Every fact is best-effort: where a platform does not expose one, its value is ``None`` (JSON null);
collecting facts never raises.
"""

from __future__ import annotations

import json
import os
import platform
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

from runners import cpuinfo as cpu
from runners.cpuinfo import ISA_FLAGS

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
# onnxruntime distributions: which one provides the installed `onnxruntime` module says which providers it has.
_ORT_DISTRIBUTIONS = ("onnxruntime", "onnxruntime-openvino", "onnxruntime-gpu", "onnxruntime-directml",
                      "onnxruntime-qnn", "onnxruntime-silicon", "onnxruntime-training")


def _safe(fn: Callable[[], Any], default: Any = None) -> Any:
    """Run ``fn``; any exception (missing file, missing module, odd platform) gives ``default``."""
    try:
        return fn()
    except Exception:  # noqa: BLE001 - a missing fact must never crash a measurement
        return default


def _read_text(path: str) -> str | None:
    return _safe(lambda: Path(path).read_text(errors="replace"))


def _cpuinfo_blocks() -> list[dict[str, str]]:
    """/proc/cpuinfo, one dict per block (Linux); [] elsewhere or when /proc is not readable."""
    return cpu.parse_blocks(_read_text("/proc/cpuinfo") or "")


def _cpuinfo() -> dict[str, str]:
    """First value of each key in /proc/cpuinfo (Linux); {} elsewhere."""
    return cpu.first_values(_cpuinfo_blocks())


def _sysctl(name: str) -> str | None:
    if sys.platform != "darwin":
        return None

    def run() -> str | None:
        out = subprocess.run(["sysctl", "-n", name], capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None if out.returncode == 0 else None

    return _safe(run)


def board_model() -> str | None:
    """The board: the device tree's model (Raspberry Pi 4 Model B Rev 1.4), else DMI vendor and product (PCs)."""
    for path in ("/proc/device-tree/model", "/sys/firmware/devicetree/base/model"):
        text = (_read_text(path) or "").strip("\x00 \n")
        if text:
            return text
    vendor, product = ((_read_text(f"/sys/class/dmi/id/{k}") or "").strip() for k in ("sys_vendor", "product_name"))
    return " ".join(v for v in (vendor, product) if v) or None


def cpu_model(info: dict[str, str] | None = None, blocks: list[dict[str, str]] | None = None) -> str | None:
    if blocks is None:
        blocks = [info] if info is not None else _cpuinfo_blocks()
    info = cpu.first_values(blocks) if info is None else info
    name = cpu.cpu_model_from(info, cpu.arm_cores(blocks))
    if name:
        return name
    if sys.platform == "darwin":
        brand = _sysctl("machdep.cpu.brand_string")
        if brand:
            return brand
    return info.get("Hardware") or _safe(lambda: platform.processor() or None)


def isa_flags(info: dict[str, str] | None = None) -> dict[str, bool | None]:
    info = _cpuinfo() if info is None else info
    flags = cpu.isa_flags_from(info)
    if flags is not None:
        return flags
    if sys.platform == "darwin":
        arm = platform.machine() in ("arm64", "aarch64")
        x86_only = {"avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx", "fma", "f16c"}
        mac: dict[str, bool | None] = {}
        for k in ISA_FLAGS:
            values = [_sysctl(n) for n in _MAC_SYSCTL[k]]
            if any(v == "1" for v in values):
                mac[k] = True
            elif any(v is not None for v in values) or (k in x86_only) == arm:
                mac[k] = False  # sysctl says no, or the flag belongs to the other architecture
            else:
                mac[k] = None
        if arm:  # every Apple-silicon core has Advanced SIMD
            mac["neon"] = True
        return mac
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


def _distribution(names: tuple[str, ...]) -> str | None:
    """"onnxruntime-openvino 1.24.1": the installed distribution among ``names`` (first found)."""
    from importlib import metadata

    for name in names:
        try:
            return f"{name} {metadata.version(name)}"
        except metadata.PackageNotFoundError:
            continue
    return None


def _ort_build(ort: Any) -> str | None:
    """onnxruntime's build line (git commit, build type), from get_build_info where this version has it."""
    info = _safe(lambda: ort.get_build_info())
    return str(info).strip() or None if info else None


def _install_record() -> dict[str, Any] | None:
    """How `runner install` made this environment (carried wheels or registry), when it did."""
    text = _read_text(os.path.join(sys.prefix, "edgeprune-install.json"))
    return _safe(lambda: json.loads(text)) if text else None


def device_facts(label: str | None = None) -> dict[str, Any]:
    """The ``device`` object of a result (keys of docs/formats.md, plus a few extras)."""
    blocks = _cpuinfo_blocks()
    info = cpu.first_values(blocks)
    psutil = _safe(lambda: __import__("psutil"))
    ort = _safe(lambda: __import__("onnxruntime"))
    np = _safe(lambda: __import__("numpy"))
    hostname = _safe(socket.gethostname)
    mem = _safe(lambda: psutil.virtual_memory())
    machine = _safe(lambda: platform.machine() or None)
    emulated, evidence = cpu.emulation(machine, info, _read_text("/sys/devices/system/cpu/modalias"))
    return {
        "hostname": hostname,
        "label": label or hostname,
        "cpu_model": cpu_model(info, blocks),
        "board": board_model(),
        "soc": info.get("Hardware") or None,
        "arm_cores": cpu.arm_cores(blocks),
        "machine": machine,
        "emulated": emulated,
        "emulation_evidence": evidence,
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
        "onnxruntime_package": _safe(lambda: _distribution(_ORT_DISTRIBUTIONS)),
        "onnxruntime_build": _ort_build(ort) if ort else None,
        "providers": _safe(lambda: list(ort.get_available_providers())),
        "numpy": _safe(lambda: np.__version__),
        "psutil": _safe(lambda: psutil.__version__),
        "install": _install_record(),
    }
