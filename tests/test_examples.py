"""The worked examples on real MNIST (quick profile, small subsets): a small residual CNN (repeated pruning and
structured pruning at 25/50/75%), a ResNet-style and a MobileNetV2-style network (structured pruning at 50%), each
with fine-tuning, int8 twins, export, the bundle's runner and the report. Runs whenever EDGEPRUNE_DATA holds mnist/
(CI sets it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = os.environ.get("EDGEPRUNE_DATA")
BIN = Path(sys.executable).parent
pytestmark = [pytest.mark.realdata,
              pytest.mark.skipif(not DATA or not (Path(DATA) / "mnist").is_dir(),
                                 reason="EDGEPRUNE_DATA does not hold mnist/")]

# Repeated pruning and the 25/75% ratios run on the small CNN only (its plugin gives the whole plan; the larger
# networks' build_small asks for 50% alone): the same code path for every model, and CI's time is short.
EXAMPLES = [("small_cnn.py:build", "baseline,repeated,structured", [0.25, 0.5, 0.75]),
            ("resnet_mnist.py:build_small", "baseline,structured", [0.5]),
            ("mobilenetv2_mnist.py:build_small", "baseline,structured", [0.5])]


@pytest.mark.parametrize("example, experiments, ratios", EXAMPLES)
def test_example_through_structured_pruning_the_runner_and_the_report(example, experiments, ratios, tmp_path):
    bundle, result, report = tmp_path / "bundle", tmp_path / "result.json", tmp_path / "report"
    subprocess.run([str(BIN / "harness"), "export", "--profile", "quick", "--model", f"examples/{example}",
                    "--experiments", experiments, "--rounds", "1", "--runs-dir",
                    str(tmp_path / "runs"), "--out", str(bundle), "--quiet"], check=True, cwd=ROOT)
    manifest = json.loads((bundle / "manifest.json").read_text())
    dense = next(m for m in manifest["models"] if m["experiment"] == "baseline")
    structured = {m["structure_ratio_asked"]: m for m in manifest["models"] if m["experiment"] == "structured"}
    assert sorted(structured) == ratios
    for asked, m in structured.items():
        assert m["structure_ratio"] == pytest.approx(asked, abs=0.05) and not m["under_pruned"]
        assert m["onnx_max_abs_diff"] < 1e-4 and m["finetuned"]
        assert {f["format"] for f in m["files"]} >= {"onnx", "onnx-int8-dynamic", "onnx-int8-static"}
        assert [s["root"] for s in m["skipped_groups"]] == ["fc"]        # only the classifier is left whole
    half = structured[0.5]
    assert half["params"] < 0.35 * dense["params"] and half["macs"] < half["dense_macs"] / 2
    assert half["accuracy"] > 0.25      # one epoch on a subset: above chance, not the example's real accuracy
    subprocess.run([sys.executable, str(bundle / "runner"), "bench", str(bundle), "--out", str(result),
                    "--models", "*-s0", "--min-runs", "5", "--min-seconds", "0", "--warmup", "1"], check=True,
                   capture_output=True)
    assert all(m["status"] == "ok" for m in json.loads(result.read_text())["models"])
    subprocess.run([str(BIN / "harness"), "report", str(result), "--bundle", str(bundle), "--out", str(report)],
                   check=True, capture_output=True)
    assert "tructured" in (report / "report.md").read_text()
