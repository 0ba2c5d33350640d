"""Pruning methods beyond l1: random, wanda, 2:4, lamp, snip, movement -- exact sparsity, masks kept across rounds,
data use."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from harness import metrics
from harness.errors import EdgepruneError
from harness.experiments.imp import imp_with_rewinding
from harness.experiments.repeated import repeated_pruning
from harness.experiments.settings import PruneSettings
from harness.pruning import METHODS, PruneContext, get_method, global_prune, masks_of
from harness.pruning.lamp import lamp_scores
from harness.pruning.local import effective_weights
from harness.pruning.movement import movement_scores
from harness.pruning.snip import snip_scores
from harness.pruning.wanda import input_feature_norms
from harness.training import TrainConfig, train

from conftest import CLASSES, FEATURES, make_ffn

NEW_METHODS = ("random", "wanda", "2:4", "lamp", "snip", "movement")
GRADIENT_METHODS = ("snip", "movement")


def ctx(seed: int = 0, rows: int = 64) -> PruneContext:
    rng = np.random.default_rng(1)
    return PruneContext(calibration=rng.standard_normal((rows, FEATURES)).astype(np.float32), seed=seed,
                        calibration_labels=rng.integers(0, CLASSES, rows))


class TinyConv(nn.Module):
    """Conv2d (3 x 3 x 3 = 27 inputs per row: 6 groups of 4 and a tail of 3) then Linear (6 * 4 * 4 = 96 inputs)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 6, 3)
        self.fc = nn.Linear(96, 5)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).flatten(1))


def zeros_per_row(model) -> dict[str, torch.Tensor]:
    return {n: (~m).reshape(m.shape[0], -1).sum(1) for n, m in masks_of(model).items()}


@pytest.mark.parametrize("method", NEW_METHODS)
def test_every_method_is_registered_and_keeps_pruned_weights_pruned(method):
    model = make_ffn()
    fn = get_method(method)
    fn(model, 0.3, ctx(seed=1))
    first = masks_of(model)
    fn(model, 0.3, ctx(seed=2))
    second = masks_of(model)
    for name in first:
        assert not torch.any(second[name] & ~first[name]), f"{method} {name}: a pruned weight came back"
        assert torch.all(effective_weights(model)[name][~second[name]] == 0)


@pytest.mark.parametrize("method", ["random", "wanda"])
def test_random_and_wanda_prune_exactly_amount_of_the_remaining_weights_per_layer(method):
    model = make_ffn()
    fn = get_method(method)
    for round_, seed in enumerate((3, 4), start=1):
        before = masks_of(model)
        fn(model, 0.3, ctx(seed=seed))
        after = masks_of(model)
        for name in before:
            remaining = int(before[name].sum())
            if method == "random":
                assert int(after[name].sum()) == remaining - round(0.3 * remaining), (method, round_, name)
            else:       # per row: every row loses round(0.3 * its remaining weights)
                rows_before = before[name].reshape(before[name].shape[0], -1).sum(1)
                rows_after = after[name].reshape(after[name].shape[0], -1).sum(1)
                expected = rows_before - torch.round(0.3 * rows_before.double()).long()
                assert torch.equal(rows_after, expected), name


def test_random_depends_on_the_seed_and_only_on_it():
    a, b, c = make_ffn(), make_ffn(), make_ffn()
    get_method("random")(a, 0.5, ctx(seed=1))
    get_method("random")(b, 0.5, ctx(seed=1))
    get_method("random")(c, 0.5, ctx(seed=2))
    ma, mb, mc = masks_of(a), masks_of(b), masks_of(c)
    assert all(torch.equal(ma[n], mb[n]) for n in ma)
    assert not all(torch.equal(ma[n], mc[n]) for n in ma)


def test_wanda_prunes_the_input_feature_with_zero_activation_first():
    model = make_ffn()
    calibration = ctx().calibration.copy()
    calibration[:, 5] = 0.0                                  # feature 5 never fires on the calibration batch
    with torch.no_grad():
        model.layers[0].weight[:, 5] = 100.0                 # ... although its weights are the largest
    get_method("wanda")(model, 1 / FEATURES, PruneContext(calibration=calibration))
    first = masks_of(model)["layers.0.weight"]
    assert not first[:, 5].any(), "the dead feature's weights are pruned in every row"
    assert first.sum(1).tolist() == [FEATURES - 1] * first.shape[0]    # and nothing else in the first layer
    assert input_feature_norms(make_ffn(), calibration)["layers.0.weight"][5] == 0


def test_wanda_without_calibration_says_so():
    with pytest.raises(EdgepruneError, match="calibration"):
        get_method("wanda")(make_ffn(), 0.3, PruneContext())


@pytest.mark.parametrize("make", [make_ffn, TinyConv])
def test_two_four_zeroes_exactly_two_of_every_four_and_keeps_its_mask(make):
    model = make()
    weights = {n: w.clone() for n, w in effective_weights(model).items()}
    get_method("2:4")(model, 0.3, ctx())
    first = masks_of(model)
    for name, mask in first.items():
        rows = mask.reshape(mask.shape[0], -1)
        k = rows.shape[1]
        full = k - k % 4
        groups = rows[:, :full].reshape(rows.shape[0], -1, 4)
        assert torch.all((~groups).sum(2) == 2), name
        # the two zeros are the two smallest |w| of the group
        w = weights[name].reshape(rows.shape)[:, :full].abs().reshape(groups.shape)
        assert torch.all(w.masked_fill(groups, float("-inf")).amax(2)
                         <= w.masked_fill(~groups, float("inf")).amin(2)), name
        tail = rows[:, full:]
        assert torch.all((~tail).sum(1) == (k - full) * 2 // 4), name
    get_method("2:4")(model, 0.3, ctx())                    # a second round keeps the fixed pattern
    second = masks_of(model)
    assert all(torch.equal(first[n], second[n]) for n in first)
    ffn_like = isinstance(model, TinyConv)
    if ffn_like:
        assert (~first["conv.weight"]).reshape(6, -1).sum(1).tolist() == [6 * 2 + 1] * 6   # 27 = 6 groups + 3 tail


def test_lamp_scores_and_global_threshold():
    w = torch.tensor([[1.0, -2.0], [3.0, 0.0]])
    # ascending squares 0, 1, 4, 9; tail sums 14, 14, 13, 9
    assert torch.allclose(lamp_scores(w), torch.tensor([[1 / 14, 4 / 13], [1.0, 0.0]], dtype=torch.float64))
    model = make_ffn()
    before = masks_of(model)
    total = sum(int(m.sum()) for m in before.values())
    scores = {n: lamp_scores(w) for n, w in effective_weights(model).items()}
    get_method("lamp")(model, 0.6, ctx())
    after = masks_of(model)
    assert sum(int(m.sum()) for m in after.values()) == total - round(0.6 * total)   # exact global count
    kept = torch.cat([scores[n][after[n]] for n in after])
    removed = torch.cat([scores[n][~after[n]] for n in after])
    assert kept.min() >= removed.max()                                                  # one global threshold
    assert all(int(m.sum()) >= 1 for m in after.values())                              # every layer survives


def test_labelled_batch_says_what_is_missing():
    inputs = ctx().calibration
    with pytest.raises(EdgepruneError, match="snip needs a labelled calibration batch"):
        PruneContext(calibration=inputs).labelled_batch("snip")
    with pytest.raises(EdgepruneError, match="64 inputs but 3 labels"):
        PruneContext(calibration=inputs, calibration_labels=np.zeros(3, dtype=np.int32)).labelled_batch("snip")
    x, y = PruneContext(calibration=inputs, calibration_labels=np.zeros(64, dtype=np.int32)).labelled_batch("snip")
    assert x.shape == (64, FEATURES) and y.dtype == np.int64


def test_pruning_rounds_give_methods_training_rows_with_their_labels(tmp_path, train_settings, tiny_task,
                                                                     monkeypatch):
    seen = []

    def recording(model, amount, c):
        seen.append(c)
        METHODS["l1"](model, amount, c)
    monkeypatch.setitem(METHODS, "recording", recording)
    settings = PruneSettings(method="recording", amount=0.3, calibration_samples=40)
    repeated_pruning(tmp_path, train_settings, settings, 1, tiny_task, quiet=True)
    (c,) = seen
    assert np.array_equal(c.calibration, tiny_task.train_x[:40])
    assert np.array_equal(c.calibration_labels, tiny_task.train_y[:40])
    assert c.loss_fn is F.cross_entropy


# --- gradient-based methods ---------------------------------------------------------------------------------

def kept_after_rounds(total: int, amount: float, rounds: int) -> int:
    """Weights left after `rounds` global rounds, each pruning round(amount * remaining) (torch's rounding)."""
    for _ in range(rounds):
        total -= round(amount * total)
    return total


@pytest.mark.parametrize("method", GRADIENT_METHODS)
def test_gradient_methods_run_in_imp_with_the_exact_sparsity_per_round(method, tmp_path, train_settings, tiny_task):
    settings = PruneSettings(method=method, amount=0.33, calibration_samples=64)
    variants = imp_with_rewinding(tmp_path, train_settings, settings, 2, tiny_task, quiet=True)
    total = sum(m.numel() for m in masks_of(make_ffn()).values())
    previous = None
    for v in variants:
        zeros = round(v.metrics["sparsity"] * total)
        assert zeros == total - kept_after_rounds(total, 0.33, v.iteration), (method, v.iteration)
        assert abs(zeros - (1 - 0.67 ** v.iteration) * total) <= 1, (method, v.iteration)
        model = v.build(tiny_task, with_masks=True)
        masks = masks_of(model)
        assert sum(int((~m).sum()) for m in masks.values()) == zeros, "the zeros are the masked weights"
        if previous is not None:
            assert all(not torch.any(masks[n] & ~previous[n]) for n in masks), "a pruned weight came back"
        previous = masks
    assert [v.method for v in variants] == [method] * 3


def one_layer(weight: torch.Tensor) -> nn.Module:
    model = nn.Sequential(nn.Linear(weight.shape[1], weight.shape[0], bias=False))
    with torch.no_grad():
        model[0].weight.copy_(weight)
    return model


def test_snip_scores_are_weight_times_the_cross_entropy_gradient():
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.standard_normal((8, 3)).astype(np.float32))
    y = torch.tensor([0, 1, 1, 0, 1, 0, 0, 1])
    w = torch.tensor([[0.5, -1.0, 100.0], [2.0, 0.1, -100.0]])
    x[:, 2] = 0.0                               # the largest weights see no input: zero gradient
    # one linear layer: dL/dW = (softmax(x W^T) - onehot(y))^T x / n
    grad = (torch.softmax(x @ w.T, 1) - F.one_hot(y, 2).float()).T @ x / len(x)
    scores = snip_scores(one_layer(w), x, y, F.cross_entropy)["0.weight"]
    assert torch.allclose(scores, (w * grad).abs(), rtol=1e-5, atol=0)
    assert torch.all(scores[:, 2] == 0)
    model = one_layer(w)
    get_method("snip")(model, 2 / 6, PruneContext(calibration=x.numpy(), calibration_labels=y.numpy()))
    assert masks_of(model)["0.weight"].tolist() == [[True, True, False], [True, True, False]], \
        "the zero-gradient weights go first although their magnitude is the largest"
    model = one_layer(w)
    get_method("snip")(model, 3 / 6, PruneContext(calibration=x.numpy(), calibration_labels=y.numpy()))
    kept = masks_of(model)["0.weight"]
    assert kept.sum() == 3 and kept.flatten()[scores.flatten().argmax()], "the largest |w * grad| stays"


def test_snip_takes_the_gradient_through_the_mask_and_leaves_the_model_as_it_was():
    model = make_ffn()
    global_prune(model, 0.5)
    model.layers[1].bias.requires_grad_(False)
    model.train()
    c = ctx()
    x, y = torch.from_numpy(c.calibration), torch.from_numpy(c.calibration_labels)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    flags = {n: p.requires_grad for n, p in model.named_parameters()}

    # the reference: the same effective weights as plain parameters, gradient by backward()
    plain = metrics.without_reparametrization(model).eval()
    F.cross_entropy(plain(x), y).backward()
    want = {n: (w * w.grad).abs() for n, w in plain.named_parameters() if n in masks_of(model)}

    got = snip_scores(model, x, y, F.cross_entropy)
    assert list(got) == list(want)
    for name in want:
        assert torch.allclose(got[name], want[name], rtol=1e-5, atol=1e-12), name
        assert torch.all(got[name][~masks_of(model)[name]] == 0), f"{name}: a pruned weight scores 0"
    after = model.state_dict()
    assert all(torch.equal(after[k], before[k]) for k in before), "the weights and masks are untouched"
    assert all(p.grad is None for p in model.parameters()), "no gradient is left behind"
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags
    assert model.training, "the model's mode is its own"
    assert all(m.weight.grad_fn is None for m in (model.layers[0], model.layers[1], model.out))


@pytest.mark.parametrize("method", GRADIENT_METHODS)
def test_gradient_methods_without_labels_say_so(method):
    with pytest.raises(EdgepruneError, match=f"{method} needs a labelled calibration batch"):
        get_method(method)(make_ffn(), 0.3, PruneContext(calibration=ctx().calibration))


def test_movement_scores_sum_minus_gradient_times_weight_over_the_fine_tuning_steps():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 3)).astype(np.float32)
    x[:, 2] = 0.0                               # the largest weights see no input: zero gradient, they never move
    y = np.array([0, 1, 1, 0, 1, 0, 0, 1])
    w0 = torch.tensor([[0.5, -1.0, 100.0], [2.0, 0.1, -100.0]])

    def grad(w):                                # one linear layer: dL/dW = (softmax(x W^T) - onehot(y))^T x / n
        xt = torch.from_numpy(x)
        return (torch.softmax(xt @ w.T, 1) - F.one_hot(torch.from_numpy(y), 2).float()).T @ xt / len(x)

    one_step = TrainConfig(epochs=1, batch_size=8, lr=0.01)
    s1 = movement_scores(one_layer(w0), x, y, F.cross_entropy, seed=0, cfg=one_step)["0.weight"]
    assert torch.allclose(s1, -grad(w0) * w0, rtol=1e-5, atol=1e-7)
    stepped = one_layer(w0)
    train(stepped, x, y, one_step, seed=0, quiet=True)
    w1 = stepped[0].weight.detach()
    s2 = movement_scores(one_layer(w0), x, y, F.cross_entropy, seed=0,
                         cfg=TrainConfig(epochs=2, batch_size=8, lr=0.01))["0.weight"]
    assert torch.allclose(s2 - s1, -grad(w1) * w1, rtol=1e-4, atol=1e-7), "step 2 adds -grad * w at the new w"
    assert torch.all(s2[:, 2] == 0)

    c = PruneContext(calibration=x, calibration_labels=y)
    scores = movement_scores(one_layer(w0), x, y, F.cross_entropy, seed=0)["0.weight"]     # as the method does
    shrinking = scores < 0                      # gradient descent moves these towards zero
    assert 0 < int(shrinking.sum()) < 4
    model = one_layer(w0)
    get_method("movement")(model, int(shrinking.sum()) / 6, c)
    assert torch.equal(masks_of(model)["0.weight"], ~shrinking), \
        "the weights moving towards zero go first; the still ones (score 0) stay, although SNIP would drop them"


def test_movement_fine_tunes_a_copy_and_leaves_the_model_and_the_random_state_as_they_were():
    model = make_ffn()
    global_prune(model, 0.5)
    model.layers[1].bias.requires_grad_(False)
    c = ctx()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    rng_state = torch.get_rng_state()
    scores = movement_scores(model, c.calibration, c.calibration_labels, F.cross_entropy, seed=4)
    assert torch.equal(torch.get_rng_state(), rng_state)
    again = movement_scores(model, c.calibration, c.calibration_labels, F.cross_entropy, seed=4)
    masks = masks_of(model)
    for name in masks:
        assert torch.equal(scores[name], again[name]), f"{name}: same seed, same scores"
        assert torch.all(scores[name][~masks[name]] == 0), f"{name}: a pruned weight does not move"
        assert torch.any(scores[name][masks[name]] != 0), name
    after = model.state_dict()
    assert all(torch.equal(after[k], before[k]) for k in before), "the weights and masks are untouched"
    assert all(p.grad is None for p in model.parameters())
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags
    assert not model.training
    get_method("movement")(model, 0.3, c)
    pruned = {n: m for n, m in masks_of(model).items()}
    assert all(torch.equal(after[k], model.state_dict()[k]) for k in after if not k.endswith("_mask"))
    kept = torch.cat([scores[n][pruned[n]] for n in pruned])
    removed = torch.cat([scores[n][masks[n] & ~pruned[n]] for n in pruned])
    assert kept.min() >= removed.max(), "one global threshold over the signed scores"
