"""harness.experiments.sensitivity: one group pruned at a time, rows cached by content; the report's conclusions."""

from __future__ import annotations

import re

from harness.report.sections.sensitivity import sensitivity_conclusions

import pytest

from conftest import make_ffn
from harness.experiments.sensitivity import (SensitivitySettings, component_groups, sensitivity_analysis,
                                             sensitivity_rows)

KEYS = {"task", "model", "group", "kind", "ratio", "accuracy", "baseline_accuracy", "params_removed"}


def test_rows_cover_every_group_kind_and_ratio_and_ratio_zero_is_the_baseline(tiny_task):
    rows = sensitivity_rows(make_ffn(), tiny_task, "ffn", SensitivitySettings(ratios=(0.0, 0.5, 0.9)))
    assert all(KEYS <= set(r) for r in rows)
    assert {(r["group"], r["kind"]) for r in rows} == {("layers.0", "unstructured"), ("layers.1", "unstructured"),
                                                        ("out", "unstructured"), ("layers.0", "structured"),
                                                        ("layers.1", "structured")}   # the output has no units
    for r in rows:
        if r["ratio"] == 0:
            assert r["accuracy"] == r["baseline_accuracy"] and r["params_removed"] == 0
        else:
            assert r["params_removed"] > 0
    half = {(r["group"], r["kind"]): r for r in rows if r["ratio"] == 0.5}
    assert half[("layers.0", "unstructured")]["params_removed"] == 16 * 32 // 2
    assert half[("layers.0", "structured")]["params_removed"] == 16 * (16 + 1) + 16 * 32   # rows+bias, next cols


def test_transformer_groups():
    from test_structured import make_transformer

    names = [g.name for g in component_groups(make_transformer())]
    # three layers: the earlier half is layer 0 alone, which would repeat its row
    assert names == ["embeddings", "attention", "feed-forward", "layer 0", "layer 1", "layer 2", "later layers"]
    from harness.models.text import TransformerClassifier

    two_layers = TransformerClassifier(vocab_size=50, num_classes=2, d_model=16, n_layers=2, n_heads=4, head_dim=4,
                                       d_ff=32, max_len=8, dropout=0.0)
    two = [g.name for g in component_groups(two_layers)]
    assert two == ["embeddings", "attention", "feed-forward", "layer 0", "layer 1"]


def test_transformer_rows_structured_heads_and_neurons(tiny_task):
    import torch

    from harness.data import TaskData
    from test_structured import make_transformer

    gen = torch.Generator().manual_seed(0)
    x = torch.randint(1, 50, (40, 8), generator=gen).numpy()
    task = TaskData("toy-text", x, x[:, 0] % 2, x, x[:, 0] % 2, 2, "toy tokens")
    rows = sensitivity_rows(make_transformer(), task, "transformer", SensitivitySettings(ratios=(0.0, 0.5)))
    kinds = {(r["group"], r["kind"]) for r in rows}
    assert ("embeddings", "unstructured") in kinds and ("embeddings", "structured") not in kinds
    assert ("attention", "structured") in kinds and ("layer 1", "structured") in kinds
    assert all(r["accuracy"] == r["baseline_accuracy"] for r in rows if r["ratio"] == 0)


def test_analysis_is_cached_in_the_run_folder(tmp_path, tiny_task, train_settings, monkeypatch):
    from harness.experiments import sensitivity as mod

    ss = SensitivitySettings(ratios=(0.5,))
    rows = sensitivity_analysis(tmp_path, train_settings, tiny_task, ss, quiet=True)
    assert list(tmp_path.glob("train-*/sensitivity-*/sensitivity.json"))
    monkeypatch.setattr(mod, "sensitivity_rows", lambda *a, **k: pytest.fail("recomputed a finished analysis"))
    assert sensitivity_analysis(tmp_path, train_settings, tiny_task, ss, quiet=True) == rows


def row(group, kind, ratio, acc, layer_index=None, scope="component", base=0.9):
    return {"task": "t", "model": "m", "group": group, "kind": kind, "ratio": ratio, "accuracy": acc,
            "baseline_accuracy": base, "params_removed": 1, "scope": scope, "layer_index": layer_index}


def test_conclusions_name_groups_and_numbers():
    rows = [row("embeddings", "unstructured", 0.5, 0.89), row("attention", "unstructured", 0.5, 0.70),
            row("feed-forward", "unstructured", 0.5, 0.85), row("attention", "structured", 0.5, 0.60),
            row("feed-forward", "structured", 0.5, 0.80),
            row("layer 0", "unstructured", 0.5, 0.75, 0, "layer"), row("layer 1", "unstructured", 0.5, 0.88, 1, "layer"),
            row("attention", "unstructured", 0.9, 0.5)]
    text = sensitivity_conclusions(rows)
    assert len(text) == 3
    assert "attention is the most sensitive" in text[0] and "20.0 points" in text[0] and "embeddings" in text[0]
    assert "Later layers tolerate more" in text[1] and "2.0" in text[1] and "15.0" in text[1]
    assert "structured pruning loses 20.0 points" in text[2] and "12.5" in text[2] and "attention" in text[2]
    assert all(re.search(r"\d", t) for t in text)
    assert sensitivity_conclusions([]) == []


def test_conclusions_average_each_group_over_seeds():
    """Three seeds x three layers: each layer counted once, its drop the mean over seeds."""
    drops = {"layers.0": (1, 2, 3), "layers.1": (0, 1, 2), "out": (4, 5, 6)}
    rows = [dict(row(group, "unstructured", 0.5, 0.9 - d / 100, i, "layer"), seed=seed)
            for i, (group, ds) in enumerate(drops.items()) for seed, d in enumerate(ds)]
    text = sensitivity_conclusions(rows)
    assert "out is the most sensitive" in text[0] and "-5.0 points" in text[0]
    assert "layers.1 the least" in text[0] and "-1.0 points" in text[0]
    assert "layers.1, out lose 3.0 points on average against 2.0 for layers.0." in text[1]


def test_a_group_that_gains_accuracy_reads_as_a_gain():
    rows = [row("layers.0", "unstructured", 0.5, 0.901, 0, "layer"), row("out", "unstructured", 0.5, 0.85, 1, "layer")]
    text = sensitivity_conclusions(rows)
    assert "(90.1%, +0.1 points)" in text[0] and "--" not in text[0]
    assert "(accuracy 90.0% -> 85.0%, -5.0 points)" in text[0]
    assert "out loses 5.0 points" in text[1]
