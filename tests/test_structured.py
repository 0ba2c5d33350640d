"""harness.structured and the `structured` experiment: slicing removes structure without changing what the kept
units compute, plans rebuild the pruned model from its run folder, and the ONNX file shrinks."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from conftest import CLASSES, FEATURES, make_ffn
from harness.structured import (apply_plan, find_groups, find_heads, find_layers, plan_structured,
                                prune_structured, structure_ratio)
from harness.structured.pruner import kept_count

try:   # the real model, once it has landed; otherwise a copy of its structure
    from harness.models.text import TransformerClassifier
except ImportError:   # pragma: no cover
    TransformerClassifier = None


# --- a local copy of the TransformerClassifier structure, used until harness.models.text exists --------------

class _Attention(nn.Module):
    def __init__(self, d, n_heads, head_dim):
        super().__init__()
        self.n_heads, self.head_dim = n_heads, head_dim
        self.q, self.k, self.v = (nn.Linear(d, n_heads * head_dim) for _ in range(3))
        self.o = nn.Linear(n_heads * head_dim, d)

    def forward(self, x):
        b, length, _ = x.shape
        split = lambda t: t.reshape(b, length, self.n_heads, self.head_dim).transpose(1, 2)   # noqa: E731
        w = torch.softmax(split(self.q(x)) @ split(self.k(x)).transpose(-2, -1) / self.head_dim ** 0.5, -1)
        return self.o((w @ split(self.v(x))).transpose(1, 2).reshape(b, length, -1))


class _Layer(nn.Module):
    def __init__(self, d, n_heads, head_dim, d_ff):
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(d), _Attention(d, n_heads, head_dim)
        self.norm2, self.fc1, self.fc2 = nn.LayerNorm(d), nn.Linear(d, d_ff), nn.Linear(d_ff, d)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.fc2(torch.relu(self.fc1(self.norm2(x))))


class _LocalTransformer(nn.Module):
    def __init__(self, vocab_size, num_classes=2, d_model=16, n_layers=3, n_heads=4, head_dim=4, d_ff=32,
                 max_len=8, **_):
        super().__init__()
        self.tok_emb, self.pos_emb = nn.Embedding(vocab_size, d_model), nn.Embedding(max_len, d_model)
        self.layers = nn.ModuleList(_Layer(d_model, n_heads, head_dim, d_ff) for _ in range(n_layers))
        self.norm, self.head = nn.LayerNorm(d_model), nn.Linear(d_model, num_classes)

    def forward(self, tokens):
        x = self.tok_emb(tokens) + self.pos_emb(torch.arange(tokens.shape[1]))[None]
        for layer in self.layers:
            x = layer(x)
        return self.head(self.norm(x).mean(1))


def make_transformer(seed=0):
    torch.manual_seed(seed)
    cls = TransformerClassifier or _LocalTransformer
    return cls(vocab_size=50, num_classes=2, d_model=16, n_layers=3, n_heads=4, head_dim=4, d_ff=32, max_len=8,
               dropout=0.0).eval()


def tokens(seed=0):
    return torch.randint(1, 50, (5, 8), generator=torch.Generator().manual_seed(seed))


# --- a user CNN with BatchNorm and a residual block ----------------------------------------------------------

class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.conv2, self.bn2 = nn.Conv2d(8, 12, 3, padding=1), nn.BatchNorm2d(12)
        self.conv3 = nn.Conv2d(12, 8, 3, padding=1)          # output added to conv1's: a residual pair
        self.conv4 = nn.Conv2d(8, 6, 3, padding=1, stride=2)
        self.fc1, self.fc2 = nn.Linear(6 * 3 * 3, 20), nn.Linear(20, 3)

    def forward(self, x):
        x = x.reshape(-1, 1, 6, 6)
        a = torch.relu(self.bn1(self.conv1(x)))
        r = a + self.conv3(torch.relu(self.bn2(self.conv2(a))))
        h = torch.flatten(torch.relu(self.conv4(r)), 1)
        return self.fc2(torch.relu(self.fc1(h)))


def make_cnn(seed=0):
    torch.manual_seed(seed)
    model = SmallCNN()
    for bn in (model.bn1, model.bn2):   # non-trivial running statistics, so slicing them matters
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.uniform_(-0.2, 0.2)
    return model.eval()


def zero_removed(model: nn.Module, plan: dict) -> nn.Module:
    """The unpruned model with every removed unit's weights zeroed, so it computes what the pruned one does."""
    model = copy.deepcopy(model)
    with torch.no_grad():
        for e in plan["units"]:
            drop = [i for i in range(e["size"]) if i not in e["keep"]]
            producer = model.get_submodule(e["producer"])
            producer.weight[drop] = 0
            producer.bias[drop] = 0
            for name, factor in e["consumers"]:
                w = model.get_submodule(name).weight
                for i in drop:
                    w[:, i * factor:(i + 1) * factor] = 0
    return model


# --- FFN ------------------------------------------------------------------------------------------------------

def test_ffn_groups_exclude_the_output_layer():
    groups, skipped = find_groups(make_ffn())
    assert [g.producer for g in groups] == ["layers.0", "layers.1"]
    assert [c.module for c in groups[0].consumers] == ["layers.1"] and skipped == {"out": "model output"}


def test_removing_dead_neurons_leaves_outputs_unchanged():
    model = make_ffn()
    with torch.no_grad():   # units 0..15 of each hidden layer are dead (zero row, zero bias) -> lowest L1
        for layer in model.layers:
            layer.weight[:16] = 0
            layer.bias[:16] = 0
    pruned, plan = prune_structured(model, "neurons", 0.5, "l1")
    assert [e["keep"] for e in plan["units"]] == [list(range(16, 32))] * 2
    assert [m.out_features for m in pruned.layers] == [16, 16] and pruned.out.in_features == 16
    x = torch.randn(7, FEATURES)
    torch.testing.assert_close(pruned(x), model(x), rtol=0, atol=1e-6)
    assert sum(p.numel() for p in pruned.parameters()) < sum(p.numel() for p in model.parameters()) / 2


@pytest.mark.parametrize("importance", ["l1", "l2"])
def test_neuron_removal_equals_zeroing_the_removed_units(importance):
    model = make_ffn()
    pruned, plan = prune_structured(model, "neurons", 0.25, importance, include_next=True)
    x = torch.randn(7, FEATURES)
    torch.testing.assert_close(pruned(x), zero_removed(model, plan)(x), rtol=1e-5, atol=1e-6)
    assert pruned is not model and model.layers[0].out_features == 32    # the input model is untouched


def test_l1_and_l2_rank_units_differently_when_norms_disagree():
    model = make_ffn()
    with torch.no_grad():
        model.layers[0].weight[0] = 0
        model.layers[0].weight[0, 0] = 10.0                 # one big weight: large L2, moderate L1
        model.layers[0].weight[1] = 0.7                     # many medium weights: large L1, small L2
    keep = {n: plan_structured(model, "neurons", 1.0, n)["units"][0]["keep"] for n in ("l1", "l2")}
    assert keep == {"l1": [1], "l2": [0]}


@pytest.mark.parametrize("ratio, round_to, kept", [(0.5, 0, 16), (0.6, 0, 13), (0.6, 8, 16), (0.75, 16, 16),
                                                   (0.99, 8, 8), (1.0, 0, 1), (0.0, 8, 32)])
def test_kept_widths_and_round_to(ratio, round_to, kept):
    assert kept_count(32, ratio, round_to) == kept
    pruned, plan = prune_structured(make_ffn(), "neurons", ratio, round_to=round_to)
    assert [m.out_features for m in pruned.layers] == [kept, kept]
    assert structure_ratio(plan) == pytest.approx(1 - kept / 32)
    assert pruned(torch.randn(2, FEATURES)).shape == (2, CLASSES)


# --- CNN with BatchNorm and a residual block ------------------------------------------------------------------

def test_cnn_groups_couple_bn_and_flatten_and_leave_the_residual_alone():
    groups, skipped = find_groups(make_cnn())
    by = {g.producer: g for g in groups}
    assert set(by) == {"conv2", "conv4", "fc1"}
    assert by["conv2"].norms == ["bn2"] and [(c.module, c.factor) for c in by["conv2"].consumers] == [("conv3", 1)]
    assert [(c.module, c.factor) for c in by["conv4"].consumers] == [("fc1", 9)]   # 6 channels x 3x3 -> 54
    assert "residual" in skipped["conv1"] and "residual" in skipped["conv3"]


def test_cnn_channel_removal_is_runnable_and_equals_zeroed_channels():
    model = make_cnn()
    with torch.no_grad():   # zero conv2's channels 0..5 and conv4's channels 0..2, BN maps them to a constant
        model.conv2.weight[:6] = 0
        model.conv2.bias[:6] = 0
        model.conv4.weight[:3] = 0
        model.conv4.bias[:3] = 0
    pruned, plan = prune_structured(model, "channels", 0.5, "l1")
    assert [e["producer"] for e in plan["units"]] == ["conv2", "conv4"]
    assert plan["units"][0]["keep"] == list(range(6, 12)) and plan["units"][1]["keep"] == [3, 4, 5]
    assert (pruned.conv2.out_channels, pruned.bn2.num_features, pruned.conv3.in_channels) == (6, 6, 6)
    assert (pruned.conv4.out_channels, pruned.fc1.in_features) == (3, 27)
    assert pruned.conv1.out_channels == 8 and pruned.conv3.out_channels == 8     # residual pair kept whole
    x = torch.randn(4, 36)
    # bn2 maps a zero channel to a constant that conv3 then reads: equality needs conv3's columns zeroed too
    torch.testing.assert_close(pruned(x), zero_removed(model, plan)(x), rtol=1e-5, atol=1e-5)
    with torch.no_grad():   # without BN's shift and mean the zeroed channels are exactly dead
        model.bn2.bias[:6] = 0
        model.bn2.running_mean[:6] = 0
    pruned_again, _ = prune_structured(model, "channels", 0.5, "l1")
    torch.testing.assert_close(pruned_again(x), model(x), rtol=1e-5, atol=1e-5)


# --- Transformer: heads and layers ----------------------------------------------------------------------------

def test_transformer_discovery():
    model = make_transformer()
    assert [h.module for h in find_heads(model)] == [f"layers.{i}.attn" for i in range(3)]
    assert [(lg.module, lg.size) for lg in find_layers(model)] == [("layers", 3)]
    groups, _ = find_groups(model)
    assert [g.producer for g in groups] == [f"layers.{i}.fc1" for i in range(3)]


def test_head_removal_equals_masking_those_heads():
    model = make_transformer()
    pruned, plan = prune_structured(model, "heads", 0.5, "l2")
    assert [len(e["keep"]) for e in plan["heads"]] == [2, 2, 2]
    assert all(layer.attn.n_heads == 2 and layer.attn.q.out_features == 8 and layer.attn.o.in_features == 8
               for layer in pruned.layers)
    masked = copy.deepcopy(model)
    with torch.no_grad():   # a head whose o columns are zero contributes nothing
        for e in plan["heads"]:
            o = masked.get_submodule(e["module"]).o
            for h in set(range(4)) - set(e["keep"]):
                o.weight[:, h * 4:(h + 1) * 4] = 0
    torch.testing.assert_close(pruned(tokens()), masked(tokens()), rtol=1e-5, atol=1e-5)


def test_layer_removal_drops_blocks_with_the_smallest_residual_output():
    model = make_transformer()
    with torch.no_grad():   # layer 1's residual branches write nothing: dropping it changes nothing
        model.layers[1].attn.o.weight.zero_()
        model.layers[1].attn.o.bias.zero_()
        model.layers[1].fc2.weight.zero_()
        model.layers[1].fc2.bias.zero_()
    pruned, plan = prune_structured(model, "layers", 0.34)
    assert plan["layers"] == [{"module": "layers", "size": 3, "drop": [1]}] and len(pruned.layers) == 2
    torch.testing.assert_close(pruned(tokens()), model(tokens()), rtol=1e-5, atol=1e-5)


def test_ffn_neurons_of_a_transformer_and_plan_reapplied_to_a_fresh_model():
    model = make_transformer()
    pruned, plan = prune_structured(model, "neurons", 0.5, round_to=8)
    assert all(layer.fc1.out_features == 16 and layer.fc2.in_features == 16 for layer in pruned.layers)
    fresh = apply_plan(make_transformer(seed=1), plan)
    fresh.load_state_dict(pruned.state_dict())
    torch.testing.assert_close(fresh(tokens()), pruned(tokens()))


# --- experiment, rebuild from the run folder, ONNX ------------------------------------------------------------

def test_structured_experiment_saves_a_rebuildable_variant(tmp_path, tiny_task, train_settings):
    from harness.experiments.store import load_tensors
    from harness.experiments.structured import StructuredSettings, structured_pruning
    from harness.experiments.variant import load_variant

    ss = StructuredSettings(kind="neurons", importance="l2", ratio=0.5, round_to=8)
    v = structured_pruning(tmp_path, train_settings, ss, tiny_task, plan_index=3, quiet=True)
    assert v.experiment == "structured" and v.method == "neurons-l2" and v.iteration == 1   # one pruning step
    assert v.extra["plan_index"] == 3
    assert "neurons-l2-r50" in v.name and v.extra["structure_ratio"] == 0.5 and v.extra["finetuned"] is True
    assert v.extra["round_to"] == 8 and v.model["plan"]["kind"] == "neurons"
    state = load_tensors(v.folder / "state.pt")
    assert state["layers.0.weight"].shape == (16, FEATURES)
    again = load_variant(v.folder).build(tiny_task)     # a new process: base model + plan + weights_only state
    x = torch.from_numpy(tiny_task.eval_x[:9])
    torch.testing.assert_close(again(x), v.build(tiny_task)(x), rtol=0, atol=0)
    assert load_variant(v.folder).metrics == v.metrics
    # finished: reused, not retrained
    reused = structured_pruning(tmp_path, train_settings, ss, tiny_task, plan_index=1, quiet=True)
    assert reused.metrics == v.metrics and reused.extra["plan_index"] == 1 and reused.iteration == 1


def test_structured_onnx_export_is_smaller(tmp_path, tiny_task):
    from exporters.onnx_export import export_onnx, max_abs_diff

    model = make_ffn(hidden=128)
    pruned, _ = prune_structured(model, "neurons", 0.5)
    export_onnx(model, tiny_task.eval_x[:1], tmp_path / "dense.onnx")
    export_onnx(pruned, tiny_task.eval_x[:1], tmp_path / "pruned.onnx")
    dense, small = (tmp_path / "dense.onnx").stat().st_size, (tmp_path / "pruned.onnx").stat().st_size
    assert small < dense / 2.5
    assert max_abs_diff(tmp_path / "pruned.onnx", pruned, tiny_task.eval_x[:32]) < 1e-5


def test_structured_transformer_onnx_export(tmp_path):
    from exporters.onnx_export import export_onnx

    model = make_transformer()
    pruned, _ = prune_structured(model, "heads", 0.5)
    pruned, _ = prune_structured(pruned, "layers", 0.34)
    example = tokens().numpy()
    export_onnx(model, example, tmp_path / "dense.onnx")
    export_onnx(pruned, example, tmp_path / "pruned.onnx")
    assert (tmp_path / "pruned.onnx").stat().st_size < (tmp_path / "dense.onnx").stat().st_size
