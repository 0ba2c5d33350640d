"""The report across devices and execution providers: a result that benched two providers becomes two devices side
by side, the devices table shows provider and session options, emulated or throttled devices carry a flag in
their label wherever their numbers appear, and an int8 file whose device accuracy differs from its host accuracy is
flagged."""

from __future__ import annotations

import copy

from harness.report import build_report, load_frame
from harness.report.sections.quantization import quantization_rows
from test_report import section, synthetic_result, write_json
from test_report_sections import rich_manifest

SESSION = {"graph_optimization_level": "ORT_ENABLE_ALL", "execution_mode": "ORT_SEQUENTIAL",
           "intra_op_num_threads": 0, "inter_op_num_threads": 0, "intra_op_allow_spinning": "1",
           "inter_op_allow_spinning": "1", "enable_cpu_mem_arena": True, "enable_mem_pattern": True,
           "use_deterministic_compute": False}


def two_provider_result(manifest):
    """Runner 0.4: every file with OpenVINO and the CPU provider, OpenVINO twice as fast."""
    result = synthetic_result(manifest, 0, {})
    result["runner_version"] = "0.4.0"
    entries = []
    for entry in result["models"]:
        for provider, speed in (("OpenVINOExecutionProvider", 0.5), ("CPUExecutionProvider", 1.0)):
            e = copy.deepcopy(entry)
            e["provider"], e["session_providers"] = provider, [provider, "CPUExecutionProvider"][:1 + (speed < 1)]
            e["latency_ms"]["p50"] *= speed
            entries.append(e)
    result["models"] = entries
    result["settings"].update(
        providers=["OpenVINOExecutionProvider", "CPUExecutionProvider"], provider="OpenVINOExecutionProvider",
        provider_options={"OpenVINOExecutionProvider": {"device_type": "CPU"}},
        provider_options_effective={"OpenVINOExecutionProvider": {}, "CPUExecutionProvider": {}},
        providers_unavailable={"cuda": "CUDAExecutionProvider is not in this onnxruntime build"},
        session_options=SESSION, graph_optimization="all", spinning=True)
    result["device"].update(onnxruntime_package="onnxruntime-openvino 1.24.1", emulated=False,
                            during_run={"frequency_dropped": False, "throttled": False, "reasons": []})
    return result


def emulated_result(manifest, int8_accuracy):
    result = synthetic_result(manifest, 1, {})
    result["device"].update(label="qemu-arm64", emulated=True, board=None,
                            emulation_evidence="Python runs as aarch64 while the kernel's modalias describes an x86 "
                                               "CPU, so this CPU is emulated and its timings are not the device's",
                            arm_cores=[{"implementer": "0x41 (Arm)", "part": "0xd08", "core": "Cortex-A72",
                                        "count": 2}],
                            during_run={"frequency_dropped": True, "throttled": None, "other_load": True,
                                        "other_load_cores": 1.0,
                                        "reasons": ["cpu0 ran at 1200 MHz after one timing window and 1800 MHz "
                                                    "after another", "other processes kept 1.00 of 2 cores busy on "
                                                    "average, which moves latencies and speed-up ratios"]})
    for entry in result["models"]:
        if entry["format"] == "onnx-int8-dynamic":
            entry["accuracy"] = int8_accuracy
    return result


def bundle_with(tmp_path, manifest):
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    for m in manifest["models"]:
        for f in m["files"]:
            if f["format"].startswith("onnx-int8"):
                m[f"{f['format'].replace('-', '_')}_accuracy"] = m["accuracy"]   # the host's check of the file
    write_json(bundle / "manifest.json", manifest)
    return bundle


def test_two_providers_of_one_result_are_two_devices_side_by_side(tmp_path):
    manifest = rich_manifest()
    bundle = bundle_with(tmp_path, manifest)
    path = write_json(tmp_path / "ov.json", two_provider_result(manifest))
    frame = load_frame([path], bundle)
    devices = list(dict.fromkeys(frame["device"]))
    assert devices == ["pi5 [openvino] (threads auto, batch 1)", "pi5 [cpu] (threads auto, batch 1)"]
    n_files = sum(len(m["files"]) for m in manifest["models"])
    assert frame.groupby("device").size().tolist() == [n_files, n_files]
    assert set(frame["status"]) == {"ok"}
    p50 = frame.set_index(["device", "file"])["latency_ms.p50"]
    f = manifest["models"][0]["files"][0]["path"]
    assert p50[(devices[0], f)] * 2 == p50[(devices[1], f)]

    md = build_report([path], bundle, tmp_path / "report").read_text()
    devices_md = section(md, "## Devices")
    assert "| Execution provider |" in devices_md and "OpenVINOExecutionProvider" in devices_md
    assert "device_type=CPU / none" in devices_md
    assert "ORT_ENABLE_ALL, ORT_SEQUENTIAL, intra 0 (default), inter 0 (default), spinning on" in devices_md
    assert "onnxruntime-openvino 1.24.1" in devices_md and "cuda: CUDAExecutionProvider is not" in devices_md


def test_an_old_single_provider_result_keeps_its_label_and_says_options_were_not_recorded(tmp_path):
    manifest = rich_manifest()
    bundle = bundle_with(tmp_path, manifest)
    path = write_json(tmp_path / "old.json", synthetic_result(manifest, 1, {}))
    frame = load_frame([path], bundle)
    assert set(frame["device"]) == {"pi5 (threads 1, batch 1)"} and set(frame["provider"]) == {"CPUExecutionProvider"}
    md = build_report([path], bundle, tmp_path / "report").read_text()
    assert "not recorded (runner before 0.4" in section(md, "## Devices")


def test_an_emulated_device_is_flagged_wherever_its_numbers_are_and_int8_host_mismatch_too(tmp_path):
    manifest = rich_manifest()
    bundle = bundle_with(tmp_path, manifest)
    host_like = write_json(tmp_path / "host.json", two_provider_result(manifest))
    emulated = write_json(tmp_path / "arm.json", emulated_result(manifest, int8_accuracy=0.172))
    frame = load_frame([host_like, emulated], bundle)
    label = ("qemu-arm64 (threads 1, batch 1) ⚠ emulated: timings functional only ⚠ CPU frequency dropped during "
             "the run")
    assert label in set(frame["device"])
    md = build_report([host_like, emulated], bundle, tmp_path / "report").read_text()
    assert f"### {label}" in md                      # the per-device tables carry the flag in their heading
    devices_md = section(md, "## Devices")
    assert "yes: timings are functional only, not the device's (Python runs as aarch64" in devices_md
    assert "2x Cortex-A72" in devices_md and "frequency dropped: yes; throttled: —" in devices_md
    assert ("frequency dropped: yes; throttled: —; other processes kept 1.00 cores busy (cpu0 ran at 1200 MHz after "
            "one timing window and 1800 MHz after another) |") in devices_md

    rows = quantization_rows(frame)
    flagged = rows[rows["int8_host_flag"]]
    assert set(flagged["device"]) == {label} and set(flagged["format"]) == {"onnx-int8-dynamic"}
    quant = section(md, "## Pruning + quantization")
    assert quant is not None
    assert "mnist-ffn-quant (int8 dynamic): 17.20% on this device vs 95.00% for the same file on the host" in md
