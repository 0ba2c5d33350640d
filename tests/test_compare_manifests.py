"""benchmarks/compare_manifests.py: the check that a change of structure left a bundle's results as they were."""

from __future__ import annotations

import copy

from benchmarks.compare_manifests import compare

MANIFEST = {"models": [
    {"name": "t-m-baseline-s0", "experiment": "baseline", "method": "dense", "seed": 0, "accuracy": 0.97,
     "sparsity": 0.0, "params": 10, "nonzero_params": 10, "files": [{"format": "onnx", "sha256": "a" * 64}]},
    {"name": "t-m-repeated-l1-it1-s0", "experiment": "repeated", "method": "l1", "seed": 0, "accuracy": 0.96,
     "sparsity": 0.33, "params": 10, "nonzero_params": 7, "files": [{"format": "onnx", "sha256": "b" * 64}]},
]}


def test_identical_manifests_and_new_variants_pass():
    new = copy.deepcopy(MANIFEST)
    new["models"].append({**new["models"][1], "name": "t-m-imp-snip-it1-s0", "method": "snip"})
    new["models"][0]["iteration"] = 7          # keys outside the compared ones may change
    identical, compared, lines = compare(MANIFEST, new)
    assert (identical, compared) == (2, 2) and lines == ["t-m-imp-snip-it1-s0: only in the new manifest"]


def test_a_changed_number_a_changed_file_and_a_lost_variant_are_differences():
    new = copy.deepcopy(MANIFEST)
    new["models"][0]["accuracy"] = 0.9699
    new["models"][0]["files"][0]["sha256"] = "c" * 64
    identical, compared, lines = compare(MANIFEST, new)
    assert (identical, compared) == (1, 2) and len(lines) == 2
    assert "accuracy" in lines[0] and "file onnx" in lines[1]
    new["models"].pop(1)
    assert "missing" in compare(MANIFEST, new)[2][-1]
