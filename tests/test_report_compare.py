"""harness.report.compare and the sections that state speed-ups: paired ratios with intervals over rounds, the A/A
band, results of older runners labelled, and no ranking of what the intervals cannot tell apart."""

from __future__ import annotations

import copy
import re

import numpy as np
import pytest

from harness.report import build_report, load_frame
from harness.report.compare import (BY_ROUND, ONE_WINDOW, PAIRED, UNPAIRED, AABand, Ratio, latency_ratio, records,
                                    timing_label)
from harness.report.sections.pareto import pareto_mask
from test_report import section, write_json
from test_report_sections import rich_manifest, rich_result

ROUNDS = 5
DEVICE = "pi5 (threads auto, batch 1)"
REFERENCE = "models/mnist-ffn-baseline-it0.onnx"


def with_rounds(result: dict, seed: int = 0, control_ratio: float = 1.0, noise: float = 0.01) -> dict:
    """A runner 0.4 result made from a 0.1 one: ROUNDS windows per file, each beside a reference window that shares
    the round's machine speed, and the A/A control (the reference's file again, `control_ratio` slower)."""
    result = copy.deepcopy(result)
    rng = np.random.default_rng(seed)
    speed = np.exp(rng.normal(0, 0.2, ROUNDS))                       # the machine drifts a lot between rounds
    entries = result["models"]
    reference = next(e for e in entries if e["file"] == REFERENCE)
    ref_p50 = reference["latency_ms"]["p50"]

    def rounds(p50: float) -> list[float]:
        return list(p50 * speed * np.exp(rng.normal(0, noise, ROUNDS)))

    for entry in entries:
        entry["role"] = "reference" if entry is reference else "file"
        entry["reference"] = REFERENCE
        if entry["status"] != "ok":
            continue
        entry["latency_ms"]["p50_rounds"] = rounds(entry["latency_ms"]["p50"])
        if entry is not reference:
            entry["latency_ms"]["reference_p50_rounds"] = rounds(ref_p50)
    control = copy.deepcopy(reference)
    control.update(role="aa-control")
    control["latency_ms"]["p50_rounds"] = rounds(ref_p50 * control_ratio)
    control["latency_ms"]["reference_p50_rounds"] = rounds(ref_p50)
    ratios = np.divide(control["latency_ms"]["p50_rounds"], control["latency_ms"]["reference_p50_rounds"])
    logs = np.log(ratios)
    half = 2.776445 * logs.std(ddof=1) / np.sqrt(ROUNDS)
    control["ratio_to_reference"] = {"median": float(np.median(ratios)), "n": ROUNDS,
                                     "ci95": [float(np.exp(logs.mean() - half)), float(np.exp(logs.mean() + half))]}
    entries.append(control)
    result["runner_version"] = "0.5.0"
    result["settings"].update(rounds=ROUNDS, memory_isolation="process", aa_control=True)
    for entry in entries:
        entry.setdefault("memory_mb", {})
        if entry["memory_mb"]:
            entry["memory_mb"]["isolation"] = "process"
    return result


@pytest.fixture
def paired(tmp_path):
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    manifest = rich_manifest()
    write_json(bundle / "manifest.json", manifest)
    new = write_json(tmp_path / "pi5.json", with_rounds(rich_result(manifest)))
    old = write_json(tmp_path / "pi5-old.json", {**rich_result(manifest), "device": {
        **rich_result(manifest)["device"], "label": "old-pi"}})
    return {"bundle": bundle, "new": new, "old": old, "tmp": tmp_path, "manifest": manifest}


def test_the_control_is_kept_apart_and_named_by_its_group(paired):
    frame = load_frame([paired["new"]], paired["bundle"])
    assert frame["file"].eq(REFERENCE).sum() == 1, "the control is not a second row of the reference's file"
    (control,) = frame.attrs["controls"]
    assert control["task"] == "mnist" and control["file"] == REFERENCE and control["device"] == DEVICE
    assert frame.attrs["results"][0] | {"path": None} == {
        "path": None, "device": DEVICE, "provider": "CPUExecutionProvider", "rounds": ROUNDS, "paired": True,
        "control": True, "memory_isolation": "process"}


def test_paired_speedup_cancels_the_drift_the_unpaired_one_keeps(paired):
    frame = load_frame([paired["new"]], paired["bundle"])
    rows = records(frame[frame["name"].eq("mnist-ffn-structured-neurons-l1")])
    dense = records(frame[frame["file"].eq(REFERENCE)])
    ratio = latency_ratio(rows, dense)
    assert ratio.method == PAIRED and ratio.n == ROUNDS
    assert ratio.median == pytest.approx(0.03 / 0.05, rel=0.05)
    assert ratio.ci95[0] < 0.6 < ratio.ci95[1] and ratio.ci95[1] / ratio.ci95[0] < 1.1
    # the same windows without their pairing: 20% drift per round, so a far wider interval
    unpaired = {k: v for k, v in rows[0].items() if k != "latency_ms.reference_p50_rounds"}
    loose = latency_ratio([unpaired], [{**dense[0], "result_index": -1}])
    assert loose.method == UNPAIRED and loose.ci95[1] / loose.ci95[0] > 1.2


def test_two_files_compare_through_the_reference_both_were_timed_beside(paired):
    frame = load_frame([paired["new"]], paired["bundle"])
    structured = records(frame[frame["name"].eq("mnist-ffn-structured-neurons-l1")])
    layers = records(frame[frame["name"].eq("mnist-ffn-structured-layers")])
    ratio = latency_ratio(structured, layers)
    assert ratio.method == PAIRED and ratio.median == pytest.approx(1.0, rel=0.05)


def test_results_without_rounds_give_a_bare_ratio_and_are_labelled(paired):
    frame = load_frame([paired["old"]], paired["bundle"])
    assert frame.attrs["controls"] == []
    rows = records(frame[frame["name"].eq("mnist-ffn-structured-neurons-l1") & frame["format"].eq("onnx")])
    dense = records(frame[frame["name"].eq("mnist-ffn-baseline-it0") & frame["format"].eq("onnx")])
    ratio = latency_ratio(rows, dense)
    assert ratio.method == ONE_WINDOW and ratio.ci95 is None and ratio.text() == "0.60× (no interval)"
    assert "one window per file" in timing_label(None, False, False)
    assert "no A/A control" in timing_label(3, False, False) and "unpaired" in timing_label(3, False, False)


def test_a_small_ratio_keeps_its_interval_readable():
    # a 31x speed-up as a latency ratio: two decimals would print the interval as [0.03, 0.03]
    assert Ratio(0.032, (0.0306, 0.0335), 5, PAIRED).text() == "0.032× [0.031, 0.034]"
    assert Ratio(2.63, (2.45, 2.8), 5, PAIRED).text() == "2.63× [2.45, 2.80]"


def test_aa_band_is_symmetric_and_marks_what_lies_inside():
    band = AABand(Ratio(1.01, (0.97, 1.04), 5, PAIRED))
    assert band.limit == pytest.approx(1.04), "the farthest the A/A interval reaches from 1, either way"
    assert band.contains(Ratio(1.03, None, 5, PAIRED)) and band.contains(Ratio(0.98, None, 5, PAIRED))
    assert not band.contains(Ratio(1.05, None, 5, PAIRED)) and not band.contains(Ratio(0.95, None, 5, PAIRED))


def test_pareto_frontier_does_not_rank_overlapping_latencies():
    accuracy = np.array([95.0, 94.9, 90.0])
    cost = np.array([1.00, 0.98, 0.50])
    # without intervals the slightly faster, slightly less accurate file is on the frontier too
    assert pareto_mask(accuracy, cost).tolist() == [True, True, True]
    # with overlapping intervals the two first files are equally fast: the less accurate one is beaten
    low, high = np.array([0.95, 0.93, 0.45]), np.array([1.05, 1.03, 0.55])
    assert pareto_mask(accuracy, cost, low, high).tolist() == [True, False, True]


def test_report_prints_intervals_the_aa_band_and_labels_old_results(paired):
    md = build_report([paired["new"], paired["old"]], paired["bundle"], paired["tmp"] / "report").read_text()
    devices = section(md, "## Devices")
    assert "A/A control (noise floor)" in devices and "paired ratios" in devices
    assert "one window per file" in devices and "none in this result" in devices
    structured = section(md, f"### {DEVICE} · mnist")
    assert "A/A control 1.0" in structured and "within noise" in structured
    row = next(line for line in structured.splitlines() if line.startswith("| neurons-l1 50%"))
    assert re.search(r"\| 1\.6\d× \[1\.6\d, 1\.[67]\d\] \|", row) and "within noise" not in row   # 0.05 / 0.03
    old = section(md, "### old-pi (threads auto, batch 1) · mnist")
    assert "No A/A control in this result" in old and "(no interval)" in old
    frontier = md[md.index("## Pareto frontiers"):]
    assert "A/A control" in frontier.split("### old-pi")[0] and "Latency vs dense [95%]" in frontier


def test_a_speedup_inside_the_aa_band_is_within_noise_and_not_ranked(paired):
    manifest = paired["manifest"]
    result = rich_result(manifest)
    for entry in result["models"]:          # the structured files as fast as dense, 0.5% apart
        if "structured" in entry["name"]:
            entry["latency_ms"]["p50"] = 0.05 * (1.005 if "layers" in entry["name"] else 1.0)
    noisy = write_json(paired["tmp"] / "noisy.json", with_rounds(result, control_ratio=1.03, noise=0.02))
    md = build_report([noisy], paired["bundle"], paired["tmp"] / "noisy-report").read_text()
    structured = section(md, f"### {DEVICE} · mnist")
    rows = [line for line in structured.splitlines() if line.startswith(("| neurons-l1", "| layers"))]
    assert len(rows) == 2 and all("(within noise)" in line for line in rows)


def test_two_providers_of_one_result_compare_round_by_round():
    """The same file with two execution providers of one run: each round's windows fell in the same round, so the
    ratio is taken round by round, which cancels the drift between rounds (not within one)."""
    drift = [1.0, 1.3, 0.8, 1.1, 0.9]
    cpu = {"status": "ok", "result_index": 0, "provider": "CPUExecutionProvider", "reference": REFERENCE,
           "role": "file", "latency_ms.p50_rounds": [0.1 * d for d in drift]}
    other = {**cpu, "provider": "OpenVINOExecutionProvider", "latency_ms.p50_rounds": [0.25 * d for d in drift]}
    ratio = latency_ratio([other], [cpu])
    assert ratio.method == BY_ROUND and ratio.median == pytest.approx(2.5) and ratio.ci95 == pytest.approx([2.5, 2.5])
    assert latency_ratio([other], [{**cpu, "result_index": 1}]).method == UNPAIRED
