"""What the CPU is: /proc/cpuinfo parsed per core, ARM implementer and part numbers decoded, instruction-set flags,
and whether the CPU is emulated (an aarch64 Python under qemu-user on an x86-64 machine, say).

Pure functions over text, so every rule is tested on the cpuinfo of boards this machine is not; reading the files
is device.py's job. Nothing here raises for odd or missing input: an unknown fact is None.
"""

from __future__ import annotations

import re
from typing import Any, Iterable

# ISA flags reported in every result, in this order. Value: True/False when the CPU flag list is known,
# None when it is not (e.g. no /proc/cpuinfo and no sysctl).
ISA_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx", "neon", "asimddp", "sve", "fma", "f16c")

# Linux flag names (x86 "flags", ARM "Features") that imply each reported flag.
LINUX_FLAG_NAMES = {
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

# "CPU implementer" codes (the MIDR register's top byte), as the Linux kernel and lscpu name them.
ARM_IMPLEMENTERS = {
    "0x41": "Arm", "0x42": "Broadcom", "0x43": "Cavium", "0x46": "Fujitsu", "0x48": "HiSilicon", "0x4e": "NVIDIA",
    "0x50": "APM", "0x51": "Qualcomm", "0x53": "Samsung", "0x56": "Marvell", "0x61": "Apple", "0x69": "Intel",
    "0x6d": "Microsoft", "0xc0": "Ampere",
}
# "CPU part" numbers per implementer (lscpu's tables), for boards whose cpuinfo has no "model name".
ARM_PARTS = {
    "0x41": {
        "0xb76": "ARM1176", "0xc07": "Cortex-A7", "0xc08": "Cortex-A8", "0xc09": "Cortex-A9", "0xc0f": "Cortex-A15",
        "0xd03": "Cortex-A53", "0xd04": "Cortex-A35", "0xd05": "Cortex-A55", "0xd07": "Cortex-A57",
        "0xd08": "Cortex-A72", "0xd09": "Cortex-A73", "0xd0a": "Cortex-A75", "0xd0b": "Cortex-A76",
        "0xd0c": "Neoverse-N1", "0xd0d": "Cortex-A77", "0xd40": "Neoverse-V1", "0xd41": "Cortex-A78",
        "0xd44": "Cortex-X1", "0xd46": "Cortex-A510", "0xd47": "Cortex-A710", "0xd48": "Cortex-X2",
        "0xd49": "Neoverse-N2", "0xd4b": "Cortex-A78C", "0xd4f": "Neoverse-V2", "0xd80": "Cortex-A520",
        "0xd81": "Cortex-A720", "0xd82": "Cortex-X4",
    },
    "0x42": {"0x516": "ThunderX2", "0x100": "Brahma-B53"},
    "0x43": {"0x0a1": "ThunderX", "0x0af": "ThunderX2"},
    "0x48": {"0xd01": "TaiShan-v110"},
    "0x4e": {"0x004": "Carmel"},
    "0x51": {"0x800": "Kryo-2XX-Gold", "0x801": "Kryo-2XX-Silver", "0x802": "Kryo-3XX-Gold",
             "0x803": "Kryo-3XX-Silver", "0x804": "Kryo-4XX-Gold", "0x805": "Kryo-4XX-Silver"},
    "0x61": {"0x022": "Icestorm (M1)", "0x023": "Firestorm (M1)"},
    "0xc0": {"0xac3": "Ampere-1", "0xac4": "Ampere-1a"},
}


def parse_blocks(text: str) -> list[dict[str, str]]:
    """/proc/cpuinfo as one dict per block (blank-line separated: one per core, plus a trailer on ARM)."""
    blocks: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            if not line.strip() and current:
                blocks.append(current)
                current = {}
            continue
        current.setdefault(key.strip(), value.strip())
    if current:
        blocks.append(current)
    return blocks


def first_values(blocks: Iterable[dict[str, str]]) -> dict[str, str]:
    """The first value of each key over all blocks (what most facts need)."""
    info: dict[str, str] = {}
    for block in blocks:
        for key, value in block.items():
            info.setdefault(key, value)
    return info


def _hex(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return f"0x{int(value, 16):x}" if value.lower().startswith("0x") else f"0x{int(value):x}"
    except ValueError:
        return None


def arm_core(implementer: str | None, part: str | None) -> str | None:
    """(0x41, 0xd08) -> "Cortex-A72"; an unknown part -> "Arm part 0xabc"; None without a part."""
    imp, prt = _hex(implementer), _hex(part)
    if prt is None:
        return None
    prt3 = f"0x{int(prt, 16):03x}"
    name = ARM_PARTS.get(imp or "", {}).get(prt3)
    if name:
        return name
    vendor = ARM_IMPLEMENTERS.get(imp or "", f"implementer {imp}" if imp else "unknown implementer")
    return f"{vendor} part {prt3}"


def arm_cores(blocks: Iterable[dict[str, str]]) -> list[dict[str, Any]]:
    """Each distinct ARM core type with its count, decoded: [{"implementer": "0x41 (Arm)", "part": "0xd08",
    "core": "Cortex-A72", "count": 4}]; [] when cpuinfo has no "CPU part" (x86, or no /proc)."""
    cores: dict[tuple[str | None, str | None], dict[str, Any]] = {}
    for block in blocks:
        part = _hex(block.get("CPU part"))
        if part is None:
            continue
        imp = _hex(block.get("CPU implementer"))
        key = (imp, part)
        if key not in cores:
            vendor = ARM_IMPLEMENTERS.get(imp or "")
            cores[key] = {"implementer": f"{imp} ({vendor})" if imp and vendor else imp, "part": part,
                          "core": arm_core(imp, part), "count": 0}
        cores[key]["count"] += 1
    return list(cores.values())


def cpu_model_from(info: dict[str, str], cores: list[dict[str, Any]]) -> str | None:
    """The CPU's name: x86 "model name"; on ARM the decoded cores ("Cortex-A55 x4 + Cortex-A76 x4"), because a
    Raspberry Pi's "Hardware" (BCM2835) names the SoC family and its "model name" says only "ARMv7 Processor"."""
    if cores:
        if len(cores) == 1:
            return cores[0]["core"]
        return " + ".join(f"{c['core']} x{c['count']}" for c in cores)
    return info.get("model name") or None


def isa_flags_from(info: dict[str, str]) -> dict[str, bool | None] | None:
    """The reported ISA flags from cpuinfo's "flags" (x86) or "Features" (ARM); None when it has neither."""
    raw = info.get("flags") or info.get("Features")
    if raw is None:
        return None
    present = set(raw.lower().split())
    return {k: any(n in present for n in LINUX_FLAG_NAMES[k]) for k in ISA_FLAGS}


# ------------------------------------------------------------------------------------------------ emulation
def machine_family(machine: str | None) -> str | None:
    """platform.machine() -> "x86" or "arm" (None for anything else)."""
    m = (machine or "").lower()
    if m in ("x86_64", "amd64", "i386", "i686", "x86"):
        return "x86"
    if m.startswith(("aarch64", "arm")):
        return "arm"
    return None


def cpuinfo_family(info: dict[str, str]) -> str | None:
    """Which architecture /proc/cpuinfo describes: x86 (vendor_id, sse flags) or arm (CPU implementer, asimd)."""
    flags = set((info.get("flags") or "").lower().split())
    features = set((info.get("Features") or "").lower().split())
    if info.get("vendor_id") or {"sse", "sse2"} & flags:
        return "x86"
    if info.get("CPU implementer") or {"asimd", "neon", "fp"} & features:
        return "arm"
    return None


def modalias_family(modalias: str | None) -> str | None:
    """/sys/devices/system/cpu/modalias ("cpu:type:x86,ven0000...", "cpu:type:aarch64:feature:...") -> family.
    It comes from the kernel, so an emulator that fakes /proc/cpuinfo does not change it."""
    m = re.match(r"cpu:type:([a-z0-9_]+)", (modalias or "").strip().lower())
    return machine_family(m.group(1)) if m else None


def emulation(machine: str | None, info: dict[str, str], modalias: str | None) -> tuple[bool | None, str | None]:
    """(emulated, evidence): True with one sentence when the machine Python reports and the CPU the kernel or
    /proc/cpuinfo describes are different architectures (qemu-user running an aarch64 Python on x86-64); False when
    the evidence agrees; None when there is nothing to compare."""
    own = machine_family(machine)
    if own is None:
        return None, None
    seen = {"the kernel's /sys/devices/system/cpu/modalias": modalias_family(modalias),
            "/proc/cpuinfo": cpuinfo_family(info)}
    for source, family in seen.items():
        if family is not None and family != own:
            return True, (f"Python runs as {machine} while {source} describes an {family} CPU, so this CPU is "
                          f"emulated and its timings are not the device's")
    if any(seen.values()):
        return False, None
    return None, None
