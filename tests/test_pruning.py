"""harness.pruning: global unstructured masks over torch.nn.utils.prune, masks as values, the method registry."""

from __future__ import annotations

import pytest
import torch

from harness import metrics
from harness.errors import EdgepruneError
from harness.pruning import METHODS, PruneContext, apply_masks, get_method, global_prune, masks_of
from harness.pruning.registry import l1_magnitude

from conftest import make_ffn

N_WEIGHTS = 16 * 32 + 32 * 32 + 32 * 3     # prunable weights of the conftest FFN


def biases(model) -> dict[str, torch.Tensor]:
    return {n: t.clone() for n, t in metrics.effective_parameters(model) if n.endswith("bias")}


def zero_weights(model) -> int:
    return round(metrics.calculate_sparsity_pruned(model) * N_WEIGHTS)


def test_global_prune_twice_compounds_on_the_remaining_weights(ffn):
    before = biases(ffn)
    global_prune(ffn, 0.33)
    assert abs(zero_weights(ffn) - 0.33 * N_WEIGHTS) <= 1
    first = masks_of(ffn)
    global_prune(ffn, 0.33)
    expected = 1 - 0.67 ** 2
    assert abs(zero_weights(ffn) - expected * N_WEIGHTS) <= 1
    assert metrics.calculate_sparsity_pruned(ffn) == pytest.approx(expected, abs=1 / N_WEIGHTS)
    second = masks_of(ffn)
    for name in first:
        assert not torch.any(second[name] & ~first[name]), f"{name}: a pruned weight came back"
    after = biases(ffn)
    for name, value in before.items():
        assert torch.equal(after[name], value), f"{name} changed"
    assert not any(n.endswith("bias_mask") for n in ffn.state_dict())


def test_global_prune_uses_one_threshold_across_layers(ffn):
    weights = {n: t.abs().clone() for n, t in metrics.effective_parameters(ffn) if n.endswith("weight")}
    global_prune(ffn, 0.5)
    masks = masks_of(ffn)
    kept = torch.cat([weights[n][masks[n]] for n in weights])
    removed = torch.cat([weights[n][~masks[n]] for n in weights])
    assert kept.min() >= removed.max()
    per_layer = {n: 1 - masks[n].float().mean().item() for n in masks}
    assert max(per_layer.values()) - min(per_layer.values()) > 0.05   # global, not the same fraction per layer


def test_global_prune_with_scores_prunes_lowest_score_first(ffn):
    names = metrics.prunable_names(ffn)
    assert names == ["layers.0.weight", "layers.1.weight", "out.weight"]
    shapes = {n: t.shape for n, t in metrics.effective_parameters(ffn)}
    # the first layer scores lowest everywhere: pruning exactly its share removes it and nothing else
    scores = {n: torch.full(shapes[n], 0.0 if n == "layers.0.weight" else 1.0) for n in names}
    global_prune(ffn, (16 * 32) / N_WEIGHTS, scores=scores)
    per_param = metrics.calculate_sparsity_per_parameter(ffn)
    assert per_param["layers.0.weight"] == 1.0
    assert per_param["layers.1.weight"] == 0.0 and per_param["out.weight"] == 0.0


def test_global_prune_ranks_signed_scores_as_given_not_by_magnitude(ffn):
    shapes = {n: t.shape for n, t in metrics.effective_parameters(ffn)}
    # torch.nn.utils.prune ranks |score|; -10 must still be the lowest score, so the first layer goes first
    value = {"layers.0.weight": -10.0, "layers.1.weight": 1.0, "out.weight": 2.0}
    global_prune(ffn, (16 * 32) / N_WEIGHTS, scores={n: torch.full(shapes[n], v) for n, v in value.items()})
    per_param = metrics.calculate_sparsity_per_parameter(ffn)
    assert per_param["layers.0.weight"] == 1.0
    assert per_param["layers.1.weight"] == 0.0 and per_param["out.weight"] == 0.0


def test_masks_of_an_unpruned_model_is_all_ones(ffn):
    masks = masks_of(ffn)
    assert list(masks) == ["layers.0.weight", "layers.1.weight", "out.weight"]
    assert all(m.dtype == torch.bool and bool(m.all()) for m in masks.values())
    assert masks["layers.1.weight"].shape == (32, 32)


def test_masks_of_returns_values_not_views(ffn):
    global_prune(ffn, 0.5)
    masks = masks_of(ffn)
    live_before = ffn.layers[0].weight_mask.clone()
    masks["layers.0.weight"].fill_(False)
    assert torch.equal(ffn.layers[0].weight_mask, live_before)


def test_masks_round_trip_onto_a_fresh_model(ffn):
    global_prune(ffn, 0.33)
    global_prune(ffn, 0.33)
    masks = masks_of(ffn)
    # the dense weights under the masks (weight_orig), as a freshly built model would load them
    dense = {k.replace("_orig", ""): v for k, v in ffn.state_dict().items() if not k.endswith("_mask")}
    fresh = make_ffn(seed=123)
    fresh.load_state_dict(dense)
    apply_masks(fresh, masks)
    want = dict(metrics.effective_parameters(ffn))
    got = dict(metrics.effective_parameters(fresh))
    assert list(got) == list(want)
    for name in want:
        assert torch.equal(got[name], want[name]), name
    for name, mask in masks_of(fresh).items():
        assert torch.equal(mask, masks[name])
    x = torch.randn(4, 16)
    with torch.no_grad():
        assert torch.equal(fresh(x), ffn(x))


def test_apply_masks_combines_with_a_mask_already_there(ffn):
    first = torch.ones(32, 16, dtype=torch.bool)
    first[0] = False
    second = torch.ones(32, 16, dtype=torch.bool)
    second[:, 0] = False
    apply_masks(ffn, {"layers.0.weight": first})
    apply_masks(ffn, {"layers.0.weight": second})
    assert torch.equal(masks_of(ffn)["layers.0.weight"], first & second)
    assert metrics.calculate_sparsity_per_parameter(ffn)["layers.0.weight"] == pytest.approx((16 + 31) / 512)
    assert metrics.calculate_sparsity_per_parameter(ffn)["layers.1.weight"] == 0.0   # names it was not given


def test_registry_l1_prunes_the_requested_fraction(ffn):
    assert get_method("l1") is METHODS["l1"] is l1_magnitude
    get_method("l1")(ffn, 0.25, PruneContext())
    assert abs(zero_weights(ffn) - 0.25 * N_WEIGHTS) <= 1


def test_registry_unknown_method_names_the_known_ones():
    with pytest.raises(EdgepruneError, match="l1"):
        get_method("no-such-method")
