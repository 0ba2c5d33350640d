"""exporters.selection: which variants and files a bundle ships (complete, by format, by glob, "deployable")."""

from __future__ import annotations

from pathlib import Path

import pytest

from exporters.bundle import Exported, ModelFile
from exporters.selection import DEPLOYABLE, Selection, apply, deployable_files
from harness.errors import EdgepruneError
from harness.experiments.variant import Variant


def exported(tmp_path: Path, name: str, experiment: str, accuracy: float, params: int, seed: int = 0,
             int8: dict[str, tuple[int, float]] | None = None, fp32_bytes: int = 4000) -> Exported:
    """A variant with a plain ONNX file of fp32_bytes and int8 files {format: (bytes, host accuracy)}."""
    variant = Variant(name=f"{name}-s{seed}", task="mnist", experiment=experiment, method="m", iteration=1,
                      seed=seed, model={"name": "ffn"}, metrics={"accuracy": accuracy, "params": params})
    files, checks = [], {}
    for fmt, (size, acc) in {"onnx": (fp32_bytes, accuracy), **(int8 or {})}.items():
        path = tmp_path / f"{variant.name}.{fmt}"
        path.write_bytes(b"x" * size)
        files.append(ModelFile(path, fmt))
        if fmt != "onnx":
            checks[f"{fmt.replace('-', '_')}_accuracy"] = acc
    return Exported(variant, files, checks)


@pytest.fixture
def plan(tmp_path):
    return [
        exported(tmp_path, "mnist-ffn-baseline", "baseline", 0.980, 1000,
                 int8={"onnx-int8-dynamic": (1000, 0.975), "onnx-int8-static": (900, 0.960)}),
        exported(tmp_path, "mnist-ffn-structured-a", "structured", 0.976, 500, fp32_bytes=2000,
                 int8={"onnx-int8-dynamic": (600, 0.974), "onnx-int8-static": (500, 0.950)}),
        exported(tmp_path, "mnist-ffn-structured-b", "structured", 0.950, 250, fp32_bytes=1000,   # 3 points lost
                 int8={"onnx-int8-dynamic": (300, 0.949), "onnx-int8-static": (250, 0.940)}),
        exported(tmp_path, "mnist-ffn-structured-c", "structured", 0.979, 750, fp32_bytes=3000),
        exported(tmp_path, "mnist-ffn-repeated-l1-it3", "repeated", 0.978, 1000),
    ]


def test_deployable_is_dense_best_structured_and_smallest_int8_within_a_point(plan):
    keep = deployable_files(plan)
    # structured-a: fewest parameters within 1 point (b lost 3 points, c has more parameters); int8: the smallest
    # file within 1 point of dense (97.4% dynamic of a at 600 bytes; static files lost more than a point).
    assert keep == {"mnist-ffn-baseline-s0": {"onnx"}, "mnist-ffn-structured-a-s0": {"onnx", "onnx-int8-dynamic"}}


def test_deployable_judges_a_variant_by_its_mean_over_seeds(tmp_path):
    plan = [exported(tmp_path, "mnist-ffn-baseline", "baseline", 0.98, 1000, seed=s) for s in (0, 1)]
    # seed 0 within the budget, seed 1 not: mean 96.6% is 1.4 points below dense, so the variant is not deployable
    plan += [exported(tmp_path, "mnist-ffn-structured-a", "structured", acc, 500, seed=s)
             for s, acc in ((0, 0.976), (1, 0.956))]
    assert deployable_files(plan) == {"mnist-ffn-baseline-s0": {"onnx"}, "mnist-ffn-baseline-s1": {"onnx"}}


def test_apply_filters_formats_and_globs_and_refuses_an_empty_bundle(plan):
    pairs = [(e, None) for e in plan]
    kept = apply(Selection(formats=("onnx-int8-static",)), pairs)
    assert [(e.variant.name, [f.format for f in e.files]) for e, _ in kept] == [
        ("mnist-ffn-baseline-s0", ["onnx-int8-static"]), ("mnist-ffn-structured-a-s0", ["onnx-int8-static"]),
        ("mnist-ffn-structured-b-s0", ["onnx-int8-static"])]
    deployable = apply(Selection(preset=DEPLOYABLE, formats=("onnx",)), pairs)
    assert [e.variant.name for e, _ in deployable] == ["mnist-ffn-baseline-s0", "mnist-ffn-structured-a-s0"]
    with pytest.raises(EdgepruneError, match="keeps no model file"):
        apply(Selection(formats=("onnx-sparse",)), pairs)


def test_a_variant_glob_keeps_only_matching_variants(plan):
    pairs = [(e, None) for e in plan]
    globbed = apply(Selection(variants="*-structured-*"), pairs)
    assert [e.variant.name for e, _ in globbed] == ["mnist-ffn-structured-a-s0", "mnist-ffn-structured-b-s0",
                                                    "mnist-ffn-structured-c-s0"]
    assert Selection().complete and not Selection(formats=("onnx",)).complete
    assert not Selection(variants="*-s0").complete


def test_unknown_preset_or_format_is_one_sentence():
    with pytest.raises(EdgepruneError, match="unknown file format 'onnx-fp16'"):
        Selection(formats=("onnx-fp16",))
    with pytest.raises(EdgepruneError, match="unknown preset"):
        Selection(preset="tiny")
