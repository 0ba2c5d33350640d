"""Device facts that explain a number (runners/cpuinfo.py, runners/thermal.py, runners/device.py): boards this
machine is not, from their /proc/cpuinfo and /sys text; emulation; frequency drops and throttling; and a device
without a readable /proc, where the facts get fewer and the measurements stay."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from runner_fixtures import build_bundle, expected_accuracy  # noqa: E402
from runners import cpuinfo as cpu  # noqa: E402
from runners import thermal  # noqa: E402

PI4 = "".join(f"processor\t: {i}\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\n"
              f"CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\n"
              f"CPU revision\t: 3\n\n" for i in range(4)) + \
    "Hardware\t: BCM2835\nRevision\t: c03114\nModel\t\t: Raspberry Pi 4 Model B Rev 1.4\n"
BIG_LITTLE = "".join(f"processor : {i}\nCPU implementer : 0x41\nCPU part : {part}\nFeatures : fp asimd asimddp\n\n"
                     for i, part in enumerate(["0xd05"] * 4 + ["0xd0b"] * 4))
X86 = "processor : 0\nvendor_id : GenuineIntel\nmodel name : Intel(R) Xeon(R)\nflags : fpu sse sse2 avx2 fma\n\n"


def test_a_raspberry_pi_is_its_cortex_core_not_bcm2835() -> None:
    blocks = cpu.parse_blocks(PI4)
    cores = cpu.arm_cores(blocks)
    assert cores == [{"implementer": "0x41 (Arm)", "part": "0xd08", "core": "Cortex-A72", "count": 4}]
    assert cpu.cpu_model_from(cpu.first_values(blocks), cores) == "Cortex-A72"
    assert cpu.first_values(blocks)["Hardware"] == "BCM2835"


def test_big_little_and_unknown_parts() -> None:
    blocks = cpu.parse_blocks(BIG_LITTLE)
    assert cpu.cpu_model_from({}, cpu.arm_cores(blocks)) == "Cortex-A55 x4 + Cortex-A76 x4"
    assert cpu.arm_core("0x41", "0xfff") == "Arm part 0xfff"
    assert cpu.arm_core("0x51", "0x804") == "Kryo-4XX-Gold"
    assert cpu.arm_core("0x99", "0x1") == "implementer 0x99 part 0x001"
    assert cpu.arm_core(None, None) is None
    flags = cpu.isa_flags_from(cpu.first_values(blocks))
    assert flags["neon"] and flags["asimddp"] and not flags["avx2"]


@pytest.mark.parametrize("machine, info, modalias, emulated", [
    ("aarch64", {"flags": "fpu sse sse2 avx2", "vendor_id": "GenuineIntel"}, None, True),   # qemu-user, host cpuinfo
    ("aarch64", cpu.first_values(cpu.parse_blocks(PI4)), "cpu:type:x86,ven0000fam0006", True),  # faked cpuinfo
    ("aarch64", cpu.first_values(cpu.parse_blocks(PI4)), "cpu:type:aarch64:feature:,0000", False),  # a real Pi
    ("x86_64", cpu.first_values(cpu.parse_blocks(X86)), "cpu:type:x86,ven0000", False),
    ("x86_64", {}, None, None),                                                      # nothing to compare
])
def test_emulation_evidence(machine, info, modalias, emulated) -> None:
    found, evidence = cpu.emulation(machine, info, modalias)
    assert found is emulated
    assert (evidence is not None) == bool(emulated)
    if emulated:
        assert machine in evidence and "not the device's" in evidence


def test_frequencies_from_a_sysfs_tree(tmp_path: Path) -> None:
    for core, (cur, lo, hi) in enumerate([(1500000, 600000, 1800000), (600000, 600000, 1800000)]):
        d = tmp_path / f"cpu{core}" / "cpufreq"
        d.mkdir(parents=True)
        for name, value in [("scaling_cur_freq", cur), ("scaling_min_freq", lo), ("scaling_max_freq", hi),
                            ("cpuinfo_max_freq", hi), ("scaling_governor", "ondemand")]:
            (d / name).write_text(f"{value}\n")
    (tmp_path / "cpu2").mkdir()   # a core without cpufreq is skipped
    cores = thermal.core_frequencies(str(tmp_path))
    assert [(c["cpu"], c["current"], c["min"], c["max"], c["governor"]) for c in cores] == [
        (0, 1500.0, 600.0, 1800.0, "ondemand"), (1, 600.0, 600.0, 1800.0, "ondemand")]


def test_rpi_throttled_flags() -> None:
    assert thermal.decode_rpi_throttled(0x50005) == {"now": ["under-voltage", "throttled"],
                                                     "since_boot": ["under-voltage", "throttled"]}
    assert thermal.decode_rpi_throttled(0) == {"now": [], "since_boot": []}


def _state(max_mhz=1800.0, count=None, rpi=None):
    return {"cores": [{"cpu": 0, "current": 1800.0, "max": max_mhz}], "throttle_count": count,
            "rpi_throttled": rpi}


def test_a_frequency_drop_or_throttling_during_the_run_is_flagged() -> None:
    steady = thermal.during_run(_state(), _state(), [[1800.0], [1790.0]])
    assert steady == {"frequency_dropped": False, "throttled": None, "other_load": None, "other_load_cores": None,
                      "reasons": []}
    dropped = thermal.during_run(_state(), _state(), [[1800.0], [1200.0]])
    assert dropped["frequency_dropped"] and "1200 MHz" in dropped["reasons"][0]
    capped = thermal.during_run(_state(), _state(max_mhz=1500.0), [])
    assert capped["frequency_dropped"] and "fell from 1800 to 1500" in capped["reasons"][0]
    counted = thermal.during_run(_state(count=3), _state(count=5), [])
    assert counted["throttled"] and "2 thermal-throttle events" in counted["reasons"][0]
    pi = thermal.during_run(_state(rpi={"now": [], "since_boot": []}),
                            _state(rpi={"now": [], "since_boot": ["soft temperature limit"]}), [])
    assert pi["throttled"] and "soft temperature limit" in pi["reasons"][0]
    unknown = thermal.during_run({}, {}, [])
    assert unknown["frequency_dropped"] is None and unknown["throttled"] is None and unknown["other_load"] is None


def _cpu(busy, own, clock):
    return {"cpu_seconds": {"machine_busy_s": busy, "own_s": own, "clock_s": clock, "logical_cores": 4}}


def test_other_processes_busy_during_the_run_are_counted_apart_from_the_runners_own_cpu() -> None:
    # 10 s of wall time: the machine was busy 25 CPU seconds, 9 of them the runner's and its children's
    busy = thermal.during_run(_cpu(100.0, 2.0, 50.0), _cpu(125.0, 11.0, 60.0), [])
    assert busy["other_load_cores"] == 1.6 and busy["other_load"] is True
    assert "other processes kept 1.60 of 4 cores busy" in busy["reasons"][0]
    quiet = thermal.during_run(_cpu(100.0, 2.0, 50.0), _cpu(110.5, 11.0, 60.0), [])
    assert quiet["other_load_cores"] == 0.15 and quiet["other_load"] is False and quiet["reasons"] == []
    unreadable = thermal.during_run(_cpu(None, 2.0, 50.0), _cpu(110.0, 11.0, 60.0), [])
    assert unreadable["other_load_cores"] is None and unreadable["other_load"] is None


def test_a_bench_records_the_state_before_and_after(tmp_path: Path) -> None:
    from runners.bench import run_bench
    from runners.settings import BenchSettings

    build_bundle(tmp_path / "b")
    result = run_bench(tmp_path / "b", BenchSettings(min_runs=3, min_seconds=0, warmup=0), progress=lambda s: None)
    device = result["device"]
    assert {"state_before", "state_after", "during_run", "emulated", "board", "arm_cores"} <= set(device)
    assert set(device["during_run"]) == {"frequency_dropped", "throttled", "other_load", "other_load_cores", "reasons"}
    assert device["during_run"]["other_load_cores"] >= 0     # psutil reads /proc here
    assert {"machine_busy_s", "own_s", "clock_s"} <= set(device["state_after"]["cpu_seconds"])
    assert device["emulated"] is not True   # this machine runs its own architecture
    json.dumps(result, allow_nan=False)


def test_no_readable_proc_lowers_the_facts_not_the_measurements(tmp_path: Path, monkeypatch) -> None:
    """psutil cannot read /proc: memory is null with peak_method 'unavailable', the rest is measured."""
    import psutil

    from runners.bench import run_bench
    from runners.settings import BenchSettings
    import runners.device as dev

    def no_proc(*args, **kwargs):
        raise psutil.AccessDenied(msg="/proc is not readable")

    monkeypatch.setattr(psutil, "Process", no_proc)
    monkeypatch.setattr(dev, "_read_text", lambda path: None)
    monkeypatch.setattr(thermal, "_read", lambda path: None)
    build_bundle(tmp_path / "b")
    # in this process: the patched psutil does not reach the fresh processes (the test below hides /proc for real)
    result = run_bench(tmp_path / "b", BenchSettings(min_runs=3, min_seconds=0, warmup=0, memory_isolation="none"),
                       progress=lambda s: None)
    for m in result["models"]:
        assert m["status"] == "ok", m["error"]
        assert m["memory_mb"] == {"rss_before": None, "rss_after_load": None, "rss_peak": None,
                                  "peak_method": "unavailable", "load_increment": None, "peak_increment": None,
                                  "isolation": "none"}
        assert m["accuracy"] == expected_accuracy(tmp_path / "b", m["file"]) and m["latency_ms"]["n"] >= 3
    assert result["device"]["cpu_model"] is None or isinstance(result["device"]["cpu_model"], str)


@pytest.mark.skipif(not sys.platform.startswith("linux") or shutil.which("unshare") is None,
                    reason="needs Linux mount namespaces (unshare)")
def test_the_packaged_runner_with_proc_hidden(tmp_path: Path) -> None:
    """The real thing: /proc replaced by an empty tmpfs in a private mount namespace (root only)."""
    build_bundle(tmp_path / "b", with_runner=True)
    out = tmp_path / "r.json"
    script = (f"mount -t tmpfs none /proc && exec {sys.executable} {tmp_path / 'b' / 'runner'} bench "
              f"{tmp_path / 'b'} --out {out} --min-runs 3 --min-seconds 0 --warmup 0")
    probe = subprocess.run(["unshare", "--mount", "--fork", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("unshare --mount is not permitted here (needs root)")
    proc = subprocess.run(["unshare", "--mount", "--fork", "sh", "-c", script], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    result = json.loads(out.read_text())
    assert [m["status"] for m in result["models"]] == ["ok", "ok", "ok"]   # two files and the A/A control
    assert all(m["memory_mb"]["peak_method"] == "unavailable" for m in result["models"])
    assert result["device"]["cpu_model"] is None and result["device"]["isa_flags"]["avx2"] is None
