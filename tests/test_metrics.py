"""harness.metrics: one definition of each host number, checked on hand-made models with known zeros."""

from __future__ import annotations

import io
from fractions import Fraction

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils import prune

from harness import metrics
from harness.models.ffn import FFN
from harness.pruning import apply_masks, global_prune


def known_zeros_model() -> FFN:
    """4 -> 3 -> 2 with exact zeros: weights 6/12 and 3/6, biases 1/3 and 2/2."""
    model = FFN(in_features=4, hidden_sizes=[3], num_classes=2)
    with torch.no_grad():
        model.layers[0].weight.copy_(torch.tensor([[0, 1, 0, 2], [3, 0, 4, 0], [5, 6, 0, 0.5]]))   # 5 zeros of 12
        model.layers[0].weight[2, 1] = 0                                                           # 6 zeros
        model.layers[0].bias.copy_(torch.tensor([0.0, 1.0, -1.0]))
        model.out.weight.copy_(torch.tensor([[0, 0, 1.0], [2.0, 0, 3.0]]))                         # 3 zeros of 6
        model.out.bias.zero_()
    return model


def test_sparsity_fractions_are_exact_on_known_zeros():
    model = known_zeros_model()
    assert metrics.calculate_sparsity_pruned(model) == pytest.approx(float(Fraction(9, 18)), abs=0)
    assert metrics.calculate_sparsity_overall(model) == pytest.approx(float(Fraction(12, 23)), abs=0)
    assert metrics.calculate_sparsity_per_parameter(model) == {
        "layers.0.weight": 0.5, "layers.0.bias": pytest.approx(1 / 3), "out.weight": 0.5, "out.bias": 1.0}
    assert metrics.count_parameters(model) == (23, 11)


def test_biases_count_only_in_overall_sparsity():
    model = known_zeros_model()
    before_pruned = metrics.calculate_sparsity_pruned(model)
    before_overall = metrics.calculate_sparsity_overall(model)
    with torch.no_grad():
        model.layers[0].bias.zero_()          # two more zeros, both in a bias
    assert metrics.calculate_sparsity_pruned(model) == before_pruned
    assert metrics.calculate_sparsity_overall(model) == pytest.approx(14 / 23)
    assert metrics.calculate_sparsity_overall(model) > before_overall


def test_prunable_parameters_are_linear_and_conv_weights_only():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU(), nn.Flatten(), nn.Linear(8, 3))
    assert metrics.prunable_names(model) == ["0.weight", "4.weight"]
    assert [p for _, p in metrics.prunable_parameters(model)] == ["weight", "weight"]
    with torch.no_grad():
        model[1].bias.fill_(1.0)
        model[1].weight.zero_()               # a BatchNorm weight is not a pruning target
    assert metrics.calculate_sparsity_pruned(model) == 0.0
    assert metrics.calculate_sparsity_overall(model) == pytest.approx(2 / metrics.count_parameters(model)[0])
    assert metrics.prunable_names(nn.Linear(2, 2)) == ["weight"]


def test_pruned_model_reports_plain_parameter_names_and_mask_sparsity():
    model = known_zeros_model()
    mask = torch.ones(3, 4)
    mask[0, 1] = 0                            # zeroes a nonzero weight: 7 of 12 now
    apply_masks(model, {"layers.0.weight": mask})
    assert "layers.0.weight_orig" in model.state_dict()
    per_param = metrics.calculate_sparsity_per_parameter(model)
    assert set(per_param) == {"layers.0.weight", "layers.0.bias", "out.weight", "out.bias"}
    assert per_param["layers.0.weight"] == pytest.approx(7 / 12)
    assert metrics.calculate_sparsity_pruned(model) == pytest.approx(10 / 18)
    assert [name for name, _ in metrics.effective_parameters(model)] == list(per_param)


def test_count_parameters_of_a_dense_ffn(ffn):
    total, nonzero = metrics.count_parameters(ffn)
    assert total == sum(p.numel() for p in ffn.parameters()) == 16 * 32 + 32 + 32 * 32 + 32 + 32 * 3 + 3
    assert nonzero == total


def pruned_ffn(ffn, amount=0.5):
    global_prune(ffn, amount)
    return ffn


def test_without_reparametrization_folds_masks_into_a_copy(ffn):
    model = pruned_ffn(ffn)
    x = torch.randn(5, 16)
    plain = metrics.without_reparametrization(model)
    keys = set(plain.state_dict())
    assert not any(k.endswith("_orig") or k.endswith("_mask") for k in keys)
    assert keys == {"layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias", "out.weight", "out.bias"}
    assert all(not m._forward_pre_hooks for m in plain.modules())
    with torch.no_grad():
        torch.testing.assert_close(plain(x), model(x), rtol=0, atol=0)
    mask = model.layers[1].weight_mask
    assert torch.all(plain.layers[1].weight[mask == 0] == 0)
    assert metrics.calculate_sparsity_pruned(plain) == pytest.approx(metrics.calculate_sparsity_pruned(model))


def test_without_reparametrization_leaves_the_live_model_as_it_was(ffn):
    model = pruned_ffn(ffn)
    x = torch.randn(5, 16)
    before_state = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        before_out = model(x)
    plain = metrics.without_reparametrization(model)
    state = model.state_dict()
    assert list(state) == list(before_state)
    for key, value in before_state.items():
        assert torch.equal(state[key], value), key
    assert all(isinstance(h, prune.BasePruningMethod) for h in model.layers[0]._forward_pre_hooks.values())
    assert len(model.layers[0]._forward_pre_hooks) == 1
    with torch.no_grad():
        assert torch.equal(model(x), before_out)
        plain.out.bias.add_(1.0)               # the copy shares no storage with the live model
        assert torch.equal(model(x), before_out)


def test_live_model_still_trains_through_its_masks_after_without_reparametrization(ffn):
    model = pruned_ffn(ffn)
    metrics.without_reparametrization(model)
    mask = model.layers[0].weight_mask.clone()
    orig_before = model.layers[0].weight_orig.detach().clone()
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loss = model(torch.randn(8, 16)).square().mean()
    loss.backward()
    assert model.layers[0].weight_orig.grad is not None
    assert model.layers[0].weight_orig.grad.abs().sum() > 0
    optimizer.step()
    assert not torch.equal(model.layers[0].weight_orig.detach(), orig_before)
    with torch.no_grad():
        model(torch.randn(2, 16))              # forward refreshes the masked weight
    assert torch.equal(model.layers[0].weight_mask, mask)
    assert torch.all(model.layers[0].weight[mask == 0] == 0)
    plain = metrics.without_reparametrization(model)
    assert torch.all(plain.layers[0].weight[mask == 0] == 0)


def test_without_reparametrization_of_a_twice_pruned_model(ffn):
    global_prune(ffn, 0.33)
    global_prune(ffn, 0.33)
    plain = metrics.without_reparametrization(ffn)
    assert not any("_orig" in k or "_mask" in k for k in plain.state_dict())
    x = torch.randn(3, 16)
    with torch.no_grad():
        torch.testing.assert_close(plain(x), ffn(x), rtol=0, atol=0)
    assert "layers.0.weight_mask" in ffn.state_dict()


def test_effective_parameters_follow_weight_orig_without_a_forward(ffn):
    model = pruned_ffn(ffn)
    with torch.no_grad():
        model.layers[0].weight_orig.zero_()    # what an optimizer step or a state_dict load does, in the extreme
    effective = dict(metrics.effective_parameters(model))
    assert torch.equal(effective["layers.0.weight"], torch.zeros(32, 16))
    assert metrics.calculate_sparsity_per_parameter(model)["layers.0.weight"] == 1.0


def test_pruned_state_dict_with_masks_is_larger_than_dense(ffn):
    dense_size = metrics.state_dict_size(ffn)
    model = pruned_ffn(ffn, 0.9)
    with_masks = metrics.state_dict_size(model)
    plain_size = metrics.state_dict_size(metrics.without_reparametrization(model))
    assert with_masks > dense_size
    masks_bytes = sum(b.numel() * b.element_size() for n, b in model.named_buffers() if n.endswith("_mask"))
    assert with_masks - dense_size >= masks_bytes           # the masks are stored in full, on top of the weights
    # zeros cost as much as any other float in a dense save (only zip record padding may differ)
    assert abs(plain_size - dense_size) <= 128


def test_saved_size_is_the_size_of_torch_save(tmp_path, ffn):
    path = tmp_path / "state.pt"
    torch.save(ffn.state_dict(), path)
    # the zip's inner folder is named after the file, so record names (not data) may differ by a few bytes
    assert abs(metrics.saved_size(ffn.state_dict()) - path.stat().st_size) <= 64
    assert metrics.saved_size({"w": torch.zeros(1000)}) > metrics.saved_size({"w": torch.zeros(10)})


def test_accuracy_is_the_fraction_correct():
    model = nn.Linear(3, 3, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.eye(3))
    inputs = np.eye(3, dtype=np.float32)[[0, 1, 2, 2]]
    assert metrics.accuracy(model, inputs, np.array([0, 1, 2, 0])) == 0.75
    assert metrics.accuracy(model, inputs, np.array([1, 2, 0, 0])) == 0.0
    many = np.repeat(inputs, 700, axis=0)                   # more rows than one predict batch
    assert metrics.accuracy(model, many, np.repeat([0, 1, 2, 0], 700)) == 0.75


def test_host_latency_runs_a_masked_model_and_returns_milliseconds(ffn):
    model = pruned_ffn(ffn)
    ms = metrics.host_latency_ms(model, np.zeros((1, 16), dtype=np.float32), warmup=1, runs=5)
    assert isinstance(ms, float) and np.isfinite(ms) and ms > 0
    assert not model.training
    assert "layers.0.weight_mask" in model.state_dict()
