"""The report's comparison sections (per-parameter sparsity, storage ratios, methods, structured, runtime,
sensitivity, quantization, Pareto) on a synthetic bundle: present with their data, absent without it."""

from __future__ import annotations

import copy
import json
import re

import numpy as np
import pandas as pd
import pytest

from harness.report import build_report, load_frame
from harness.report.sections.pareto import pareto_mask
from harness.report.sections.per_parameter_sparsity import sparsity_table
from harness.report.sections.plots import seed_means
from harness.report.sections.quantization import quantization_rows
from harness.report.sections.structured import kept_summary
from test_report import section, synthetic_manifest, synthetic_result, write_json

DEVICE = "pi5 (threads 0, batch 1)"
DEVICE_AUTO = "pi5 (threads auto, batch 1)"


def file(name, fmt, nbytes):
    return {"path": f"models/{name}.{fmt}.onnx", "format": fmt, "bytes": nbytes, "sha256": "3" * 64}


def rich_manifest():
    manifest = synthetic_manifest()
    base = {k: v for k, v in manifest["models"][0].items() if k not in ("files", "name")}
    extra = []
    for method, accuracy in (("wanda", 0.972), ("random", 0.90)):
        for iteration, sparsity in ((1, 0.5), (2, 0.75)):
            name = f"mnist-ffn-repeated-{method}-it{iteration}"
            extra.append({**base, "name": name, "experiment": "repeated", "method": method, "iteration": iteration,
                          "sparsity": sparsity, "accuracy": accuracy - 0.01 * iteration,
                          "files": [file(name, "onnx", 40_500)]})
    for method, ratio, params in (("neurons-l1", 0.5, 6_000), ("layers", 0.25, 8_000)):
        name = f"mnist-ffn-structured-{method}"
        extra.append({**base, "name": name, "experiment": "structured", "method": method, "structure_ratio": ratio,
                      "finetuned": True, "iteration": 0, "sparsity": 0.0, "params": params, "nonzero_params": params,
                      "accuracy": 0.96, "files": [file(name, "onnx", params * 4)]})
    name = "mnist-ffn-quant"
    extra.append({**base, "name": name, "experiment": "repeated", "method": "l1", "iteration": 3, "sparsity": 0.9,
                  "accuracy": 0.95, "files": [file(name, "onnx", 40_500), file(name, "onnx-int8-dynamic", 10_500),
                                              file(name, "onnx-int8-static", 10_400)]})
    manifest["models"] += extra
    for m in manifest["models"]:
        s = m["sparsity"]
        m["sparsity_per_parameter"] = {"fc.weight": s * 1.1, "fc.bias": 0.0, "out.weight": s * 0.5}
        m["sparsity_overall"] = s * 0.99
        m["host_latency_ms"] = 0.2
        # a lossy int8 file smaller than everything: a size to show, never the "best" against a 32-bit bound
        m["storage"] = {**m["storage"], "bitmask": m["storage"]["csr"] - 100, "bitmask_int8": 1000}
    manifest["sensitivity"] = [
        {"task": "mnist", "model": "ffn", "group": group, "kind": "unstructured", "ratio": ratio,
         "accuracy": 0.98 - drop * ratio, "baseline_accuracy": 0.98, "params_removed": 100}
        for group, drop in (("fc", 0.002), ("out", 0.2)) for ratio in (0.25, 0.5, 0.75)
    ]
    return manifest


def rich_result(manifest, static_accuracy=0.93):
    result = synthetic_result(manifest, 0, {})
    for entry in result["models"]:
        if entry["format"] == "onnx-int8-static":
            entry["accuracy"] = static_accuracy
        if entry["format"].startswith("onnx-int8"):
            entry["latency_ms"]["p50"] = 0.02
        if "structured" in entry["name"]:
            entry["latency_ms"]["p50"] = 0.03
    return result


def report_of(tmp_path, manifest) -> dict:
    """A bundle holding `manifest`, the pi5 result of it and the report built from both."""
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    write_json(bundle / "manifest.json", manifest)
    result = write_json(tmp_path / "pi5.json", rich_result(manifest))
    out = tmp_path / "report"
    md = build_report([result], bundle, out).read_text()
    return {"md": md, "out": out, "bundle": bundle, "result": result, "manifest": manifest, "tmp": tmp_path}


@pytest.fixture
def rich(tmp_path):
    return report_of(tmp_path, rich_manifest())


def test_new_sections_appear_with_their_data(rich):
    md = rich["md"]
    for heading in ("## Sparsity per parameter", "## Pruning methods compared", "## Structured pruning",
                    "## Runtime: host PyTorch vs device ONNX Runtime", "## Sensitivity", "## Pruning + quantization",
                    "## Pareto frontiers", "### What the sparse-initializer file buys on the device"):
        assert heading + "\n" in md, heading
    pngs = {p.name for p in rich["out"].glob("*.png")}
    assert "sensitivity-mnist-ffn-unstructured.png" in pngs
    assert {"pareto-pi5-threads-auto-batch-1-mnist-accuracy-vs-latency.png",
            "pareto-pi5-threads-auto-batch-1-mnist-accuracy-vs-size.png"} <= pngs
    for name in ("methods.csv", "quantization-pi5-threads-auto-batch-1.csv", "runtime-mnist.csv"):
        assert (rich["out"] / name).exists()


def test_new_sections_absent_without_their_data(tmp_path):
    manifest = synthetic_manifest()
    for m in manifest["models"]:
        m["files"] = m["files"][:1]  # no onnx-sparse twin either
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    write_json(bundle / "manifest.json", manifest)
    result = write_json(tmp_path / "r.json", synthetic_result(manifest, 0, {}))
    md = build_report([result], bundle, tmp_path / "report").read_text()
    for heading in ("Sparsity per parameter", "Pruning methods compared", "Structured pruning", "Runtime:",
                    "Sensitivity", "Pruning + quantization", "sparse-initializer"):
        assert heading not in md, heading
    assert "## Pareto frontiers" in md  # any measured file has a frontier


def test_sparsity_table_rows(rich):
    md = rich["md"]
    table = section(md, "### repeated · l1, seed 0")
    lines = [line for line in table.splitlines() if line.startswith("| ")]
    assert lines[0] == "| Parameter | Iteration 1 | Iteration 2 | Iteration 3 |"
    assert [line.split(" | ")[0][2:] for line in lines[1:]] == [
        "fc.bias", "fc.weight", "out.weight", "across pruned parameters", "whole model"]
    assert "| fc.weight | 55.00 | 82.50 |" in table  # seed 0 only: 0.5 x 1.1, 0.75 x 1.1
    assert "| across pruned parameters | 50.00 | 75.00 | 90.00 |" in table
    assert "| whole model | 49.50 | 74.25 | 89.10 |" in table


def test_sparsity_table_direct():
    rows = pd.DataFrame({"iteration": [2, 1], "sparsity": [0.6, 0.3], "sparsity_overall": [0.5, 0.25],
                         "sparsity_per_parameter.layers.10.weight": [0.7, 0.4],
                         "sparsity_per_parameter.layers.2.weight": [0.5, np.nan]})
    table = sparsity_table(rows)
    assert list(table.columns) == ["Parameter", "Iteration 1", "Iteration 2"]
    assert table["Parameter"].tolist() == ["layers.2.weight", "layers.10.weight", "across pruned parameters",
                                           "whole model"]
    assert table["Iteration 1"].round(6).tolist()[1:] == [40.0, 30.0, 25.0]


def test_storage_ratios_and_coo_explanation(rich):
    storage = section(rich["md"], "## Host storage")
    assert "| Best lossless | Best lossless / entropy bound | lab_coo / entropy bound |" in storage
    # 75% model, seed 0: nonzero 2,500 -> bitmask 2,500 x 8 + 304, entropy bound 7,500, lab_coo 50,000 bytes.
    assert "| bitmask | 2.71× | 6.67× |" in storage
    assert "indices [2, nnz] int64" in storage and "biases" in storage
    sparse = section(rich["md"], "### What the sparse-initializer file buys on the device")
    assert "Size sparse / dense" in sparse and "Load (ms) sparse" in sparse and "Peak RSS (MB) sparse" in sparse


def test_methods_paragraph(rich):
    methods = section(rich["md"], "### pi5 (threads auto, batch 1)")
    # Shared levels 50% and 75%: the highest is 75; l1 is the mean of seeds 0, 1 (95.5, 95.7), sample std 0.14.
    assert ("At 75% sparsity after repeated pruning: l1 95.60 ± 0.14% (2 seeds), wanda 95.20% (1 seed), "
            "random 88.00% (1 seed).") in methods
    # l1 against wanda: 0.40 points, within 2 standard errors when wanda's one seed carries the measured spread
    # (sqrt(0.14^2/2 + 0.93^2) = 0.94 points); random is 7 points below both: established.
    assert "Not established over these seeds" in methods and "l1 vs wanda (0.40 points)" in methods
    assert "random (" not in methods.split("Not established")[1]
    # wanda and random have one seed: their lab table says what one seed cannot establish
    assert "Rows with one seed have no spread of their own" in section(rich["md"], f"### {DEVICE_AUTO} · repeated")


def test_method_differences_are_judged_by_the_seeds_spread():
    from harness.report.sections.methods import SEED_SPREAD_PP, not_established

    acc = pd.DataFrame({"device_accuracy_pct": [95.0, 94.0, 90.0], "std": [0.2, 0.3, float("nan")],
                        "n_seeds": [4, 4, 1]}, index=["a", "b", "c"])
    pairs = {(a, b) for a, b, _ in not_established(acc)}
    # a vs b: se = sqrt(0.04/4 + 0.09/4) = 0.18, 1.0 point is 5.5 se: established; c has one seed, so it is
    # judged with the measured spread: a vs c, se = sqrt(0.01 + 0.93^2) = 0.94, 5 points is 5.3 se: established;
    # b vs c 4 points is 4.3 se: established too. With c at 93.5%, 1.5 and 0.5 points from a and b, neither is.
    assert pairs == set()
    acc.loc["c", "device_accuracy_pct"] = 93.5
    assert {(a, b) for a, b, _ in not_established(acc)} == {("a", "c"), ("b", "c")}
    assert SEED_SPREAD_PP > 0


def test_structured_table(rich):
    table = section(rich["md"], "### pi5 (threads auto, batch 1) · mnist")
    assert "| Structure Pruned | Sparsity Rate (%) | Accuracy (%) | Latency p50 (ms) | Disk Size (MB) |" in table
    # 6,000 of the baseline's 10,000 params: 40% sparsity rate; p50 0.03 ms vs 0.05 ms dense; 24 kB vs 40.5 kB.
    # a result of runner 0.1: one window per file, so a bare ratio, and no A/A control to judge it by
    assert "| neurons-l1 50% + fine-tune | 40.00 | 96.00 | 0.03 | 0.024 | 1.67× (no interval) | 0.59× |" in table
    assert "| none (dense) | 0.00 | 98.00 |" in table
    assert "No A/A control in this result" in table


def test_runtime_table_and_same_machine_note(rich):
    runtime = section(rich["md"], "## Runtime: host PyTorch vs device ONNX Runtime")
    variants = [line.split(" | ")[0][2:] for line in runtime.splitlines() if line.startswith("| ")][1:]
    assert variants == ["none (dense)", "neurons-l1 50% + fine-tune", "layers 25% + fine-tune", "repeated l1 it3"]
    assert "PyTorch eager, batch 1" in runtime and "workstation" in runtime
    assert "is another machine than the workstation" in runtime


def test_runtime_like_for_like_when_same_machine(rich):
    data = rich_result(rich["manifest"])
    data["device"].update(hostname="ws", cpu_model="Workstation CPU 9000")
    path = write_json(rich["tmp"] / "ws.json", data)
    md = build_report([path], rich["bundle"], rich["tmp"] / "report2").read_text()
    assert "is the workstation itself (same hostname and CPU model)" in section(md, "## Runtime: host PyTorch vs "
                                                                                    "device ONNX Runtime")


def test_sensitivity_table_heatmap_and_conclusions(rich):
    sens = section(rich["md"], "### mnist · ffn · unstructured")
    assert "| Group | 25% | 50% | 75% |" in sens and "| out | 93.00 | 88.00 | 83.00 |" in sens
    conclusions = section(rich["md"], "### Conclusions")
    assert "At 50% unstructured pruning, out is the most sensitive group" in conclusions
    assert "-10.0 points" in conclusions and "fc the least" in conclusions


@pytest.mark.parametrize("static_accuracy,flagged", [(0.93, True), (0.945, False), (0.94, False)])
def test_quantization_flag(rich, static_accuracy, flagged):
    path = write_json(rich["tmp"] / "q.json", rich_result(rich["manifest"], static_accuracy))
    frame = load_frame([path], rich["bundle"])
    rows = quantization_rows(frame)
    assert sorted(rows["format"]) == ["onnx", "onnx-int8-dynamic", "onnx-int8-static"]
    assert rows["quant_flag"].tolist() == [False, False, flagged]  # 1.0 point exactly is not flagged
    md = build_report([path], rich["bundle"], rich["tmp"] / "rq").read_text()
    quant = section(md, "## Pruning + quantization")
    assert ("⚠ mnist-ffn-quant (static int8)" in md) == flagged
    assert "| Pruning Technique | Quantization | Sparsity Rate (%) | Accuracy (%) | Disk Size (MB) | Latency p50 (ms) |" \
        in md and "## Pruning + quantization" in md and quant is not None


def test_pareto_mask_hand_made():
    accuracy = np.array([90.0, 95.0, 95.0, 80.0, 95.0, 99.0, np.nan])
    cost = np.array([1.0, 2.0, 2.0, 1.5, 3.0, 5.0, 0.1])
    # 0: cheapest; 1 and 2: identical, both kept; 3: dominated by 0; 4: dominated by 1; 5: most accurate; 6: NaN.
    assert pareto_mask(accuracy, cost).tolist() == [True, True, True, False, False, True, False]


def test_pareto_section_marks_and_best_deployable(rich):
    pareto = section(rich["md"], "### pi5 (threads auto, batch 1) · mnist")
    pareto = rich["md"][rich["md"].index("## Pareto frontiers"):]
    assert "Best deployable: mnist-ffn-structured-neurons-l1 (onnx)" not in pareto  # 96% is 2 points below dense
    assert "Best deployable: mnist-ffn-quant (onnx-int8-dynamic), 95.00%" not in pareto
    frame = pd.read_csv(rich["out"] / "pareto-pi5-threads-auto-batch-1-mnist.csv")
    dense = frame[(frame["name"] == "mnist-ffn-baseline-it0") & (frame["format"] == "onnx")].iloc[0]
    assert bool(dense["frontier_latency"])  # most accurate file and as fast as any other 98% file
    random = frame[frame["name"] == "mnist-ffn-repeated-random-it2"].iloc[0]
    assert not random["frontier_latency"] and not random["frontier_size"]


def test_int8_files_are_held_to_their_own_host_accuracy_never_to_fp32(rich):
    """Device accuracy of an int8 file against the host's accuracy of that same int8 file; without one, no flag."""
    def int8_rows(manifest):
        write_json(rich["bundle"] / "manifest.json", manifest)
        frame = load_frame([rich["result"]], rich["bundle"])
        return frame[frame["format"].str.startswith("onnx-int8")].set_index("format")

    rows = int8_rows(rich["manifest"])          # fp32 0.95, static int8 measured 0.93 on the device
    assert rows["host_accuracy"].isna().all() and not rows["accuracy_mismatch"].any()
    manifest = copy.deepcopy(rich["manifest"])
    quant = next(m for m in manifest["models"] if m["name"] == "mnist-ffn-quant")
    quant["onnx_int8_static_accuracy"] = 0.945  # the host's onnxruntime on the same int8 file
    rows = int8_rows(manifest)
    assert rows.loc["onnx-int8-static", "host_accuracy"] == 0.945
    assert rows.loc["onnx-int8-static", "accuracy_mismatch"]
    assert not rows.loc["onnx-int8-dynamic", "accuracy_mismatch"]


def test_dynamic_int8_measured_in_other_eval_batches_is_not_flagged(rich):
    """Dynamic int8 scales activations per call: a device that batched the eval set differently may differ."""
    manifest = copy.deepcopy(rich["manifest"])
    quant = next(m for m in manifest["models"] if m["name"] == "mnist-ffn-quant")
    quant.update(onnx_int8_dynamic_accuracy=0.90, onnx_int8_static_accuracy=0.90, onnx_int8_eval_batch=256)
    write_json(rich["bundle"] / "manifest.json", manifest)
    result = json.loads(rich["result"].read_text())
    flags = {}
    for batch in (256, 64):
        result["settings"]["eval_batch_size"] = batch
        path = write_json(rich["tmp"] / f"pi5-{batch}.json", result)
        frame = load_frame([path], rich["bundle"]).set_index("format")
        flags[batch] = (bool(frame.loc["onnx-int8-dynamic", "accuracy_mismatch"]),
                        bool(frame.loc["onnx-int8-static", "accuracy_mismatch"]))
    assert flags == {256: (True, True), 64: (False, True)}


def plan_manifest(new_keys):
    """rich_manifest with three structured variants (two of one method) in two seeds each, listed out of plan order.
    new_keys: as exporters write it now, every model with its `series`, a structured variant with `plan_index` and
    iteration 1 (its pruning round); else as older exporters did, the plan position in `iteration`."""
    manifest = rich_manifest()
    base = next(m for m in manifest["models"] if m["experiment"] == "structured")
    manifest["models"] = [m for m in manifest["models"] if m["experiment"] != "structured"]
    if new_keys:
        for m in manifest["models"]:
            m["series"] = re.sub(r"-s\d+$", "", m["name"])
    plan = [("neurons-l1", 0.5, 6_000), ("neurons-l1", 0.25, 8_500), ("layers", 0.25, 8_000)]
    for index in (2, 0, 1):
        method, ratio, params = plan[index]
        series = f"mnist-ffn-structured-{method}-r{round(ratio * 100)}"
        for seed in (0, 1):
            name = f"{series}-s{seed}"
            manifest["models"].append({
                **base, "name": name, "method": method, "structure_ratio": ratio, "seed": seed, "params": params,
                "nonzero_params": params, "accuracy": 0.97 - 0.02 * ratio + 0.002 * seed, "iteration": index,
                "files": [file(name, "onnx", params * 4)],
                **({"iteration": 1, "plan_index": index, "series": series} if new_keys else {})})
    return manifest


def test_structured_variants_are_told_apart_by_series_and_listed_in_plan_order(tmp_path):
    md = {}
    for new_keys in (False, True):
        bundle = tmp_path / f"bundle-{new_keys}"
        bundle.mkdir()
        manifest = plan_manifest(new_keys)
        write_json(bundle / "manifest.json", manifest)
        result = write_json(tmp_path / f"pi5-{new_keys}.json", rich_result(manifest))
        md[new_keys] = build_report([result], bundle, tmp_path / f"report-{new_keys}").read_text()
    structured = section(md[True], "### pi5 (threads auto, batch 1) · mnist")
    variants = [line.split(" | ")[:2] for line in structured.splitlines() if line.startswith("| ")][1:]
    # Seeds averaged (sparsity rate of 6,000 of 10,000 params: 40%), variants in plan_index order.
    assert variants == [["| none (dense)", "0.00"], ["| neurons-l1 50% + fine-tune", "40.00"],
                        ["| neurons-l1 25% + fine-tune", "15.00"], ["| layers 25% + fine-tune", "20.00"]]
    assert "| neurons-l1 50% + fine-tune | 40.00 | 96.10 |" in structured  # 96.0 and 96.2 over two seeds
    runtime = section(md[True], "## Runtime: host PyTorch vs device ONNX Runtime")
    assert [line.split(" | ")[0][2:] for line in runtime.splitlines() if line.startswith("| ")][2:5] == [
        "neurons-l1 50% + fine-tune", "neurons-l1 25% + fine-tune", "layers 25% + fine-tune"]
    lab = section(md[True], "### pi5 (threads auto, batch 1) · structured")
    assert [line.split(" | ")[:4] for line in lab.splitlines() if line.startswith("| ")][1:] == [
        ["| layers", "1", "onnx", "0, 1"], ["| neurons-l1", "1", "onnx", "0, 1"], ["| neurons-l1", "1", "onnx", "0, 1"]]
    # A manifest without the new keys reads the same, but for the iteration it records.
    for heading in ("### pi5 (threads auto, batch 1) · mnist", "## Runtime: host PyTorch vs device ONNX Runtime",
                    "## Pareto frontiers", "## Pruning + quantization"):
        assert section(md[False], heading) == section(md[True], heading), heading


def test_accuracy_points_are_one_per_series_in_plan_order():
    rows = pd.DataFrame({"experiment": "structured", "method": "neurons-l1", "iteration": 1,
                         "series": ["r25", "r25", "r50", "r50"], "plan_index": [1, 1, 0, 0], "seed": [0, 1, 0, 1],
                         "sparsity_pct": [15.0, 15.0, 40.0, 40.0], "host_accuracy_pct": [97.0, 97.2, 96.0, 96.2]})
    points = seed_means(rows, ["experiment", "method"], "sparsity_pct", "host_accuracy_pct")
    assert points["series"].tolist() == ["r50", "r25"]
    assert points["y"].round(6).tolist() == [96.1, 97.1]


def channels_manifest():
    """rich_manifest whose structured variants carry what the dependency-graph pruner writes: the ratio asked and
    removed, kept widths, groups left whole, MACs; the 75% variant removed nothing (every group failed its check)."""
    manifest = rich_manifest()
    base = next(m for m in manifest["models"] if m["experiment"] == "structured")
    manifest["models"] = [m for m in manifest["models"] if m["experiment"] != "structured"]
    classifier = {"root": "fc", "size": 10, "asked": False, "reason": "its units are the model's output"}
    failed = {"root": "block.conv1", "size": 16, "asked": True, "reason": "the pruned model fails its forward pass"}
    variants = [(0.25, 0.25, {"stem.0": [16, 12], "block.conv1": [16, 12], "down.0": [32, 24]}, [classifier]),
                (0.5, 0.5, {"stem.0": [16, 8], "block.conv1": [16, 8], "down.0": [32, 16]}, [classifier]),
                (0.75, 0.0, {}, [classifier, failed])]
    for index, (asked, done, widths, skipped) in enumerate(variants):
        name = f"mnist-cnn-structured-channels-l1-r{round(asked * 100)}"
        params = 10_000 - round(8_000 * done)
        manifest["models"].append({
            **base, "name": name, "series": name, "method": "channels-l1", "iteration": 1, "plan_index": index,
            "structure_ratio": done, "structure_ratio_asked": asked, "under_pruned": done < asked / 2,
            "kept_widths": widths, "skipped_groups": skipped, "params": params, "nonzero_params": params,
            "macs": round(400_000 * (1 - done) ** 2), "dense_macs": 400_000, "dense_params": 10_000,
            "files": [file(name, "onnx", params * 4)]})
    return manifest


def test_structured_section_shows_kept_widths_macs_skipped_groups_and_under_pruning(tmp_path):
    md = report_of(tmp_path, channels_manifest())["md"]
    table = section(md, "### pi5 (threads auto, batch 1) · mnist")
    rows = {line.split(" | ")[0][2:]: line.split(" | ") for line in table.splitlines() if line.startswith("| ")}
    header = rows.pop("Structure Pruned")
    assert header[-4:] == ["Params", "MACs", "Units removed", "Kept widths |"]
    # the dense row's MACs are the variants' dense_macs; the summary counts layers per dense->kept width
    assert rows["none (dense)"][-4:] == ["10,000", "400,000", "—", "— |"]
    assert rows["channels-l1 50% + fine-tune"][-4:] == ["6,000", "100,000", "50% of 50%", "16→8 ×2, 32→16 ×1 |"]
    # a variant is named by the ratio asked; one that removed nothing says so, flagged
    assert rows["channels-l1 75% + fine-tune"][-4:] == ["10,000", "400,000", "⚠ 0% of 75%", "none narrowed |"]
    widths = section(md, "### Kept widths · mnist")
    assert "| Layer | Dense width | channels-l1 25% + fine-tune | channels-l1 50% + fine-tune | " \
           "channels-l1 75% + fine-tune |" in widths
    assert "| down.0 | 32 | 24 | 16 | 32 |" in widths
    assert "⚠ channels-l1 75% + fine-tune removed 0% of the units it was asked to remove (75%)" in widths
    assert "- fc (10 units), left whole in every variant: its units are the model's output." in widths
    assert ("- ⚠ block.conv1 (16 units), left whole in channels-l1 75% + fine-tune: the pruned model fails its "
            "forward pass.") in widths
    data = pd.read_csv(tmp_path / "report" / "structured-kept-widths-mnist.csv")
    assert data["Layer"].tolist() == ["stem.0", "block.conv1", "down.0"]


def test_kept_summary_lists_a_few_widths_and_counts_the_rest():
    row = {f"kept_widths.l{i}": [64, 64 - i] for i in range(1, 6)}
    assert kept_summary(row) == "64→63 ×1, 64→62 ×1, 64→61 ×1, +2 more"
    assert kept_summary({"kept_widths": {}}) == "none narrowed"
    assert kept_summary({"params": 3}) == "—"


def test_provenance_quotes_how_the_export_graph_ran_and_skips_bundles_without_it():
    from harness.report.sections.provenance import export_run_sentence

    run = {"executor": "dask-local", "workers": 2, "tasks": 156, "tasks_run": 150, "work_seconds": 600.4,
           "wall_seconds": 330.2, "critical_path_seconds": 140.0}
    sentence = export_run_sentence(run)
    assert "150 of 156 tasks on 2 Dask worker(s)" in sentence and "critical path 140 s" in sentence
    assert "in one process" in export_run_sentence({**run, "executor": "sequential"})
    assert export_run_sentence(None) == "" and export_run_sentence({"work_seconds": "?"}) == ""
