"""harness.structured and the `structured` experiment: slicing removes structure without changing what the kept
units compute, plans rebuild the pruned model from its run folder, and the ONNX file shrinks."""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

import pytest
import torch
from torch import nn

from conftest import CLASSES, FEATURES, make_ffn
from harness.structured import (apply_plan, find_groups, find_heads, find_layers, plan_structured,
                                prune_structured, structure_ratio)
from harness.structured.pruner import kept_count

ROOT = Path(__file__).resolve().parents[1]


def load_example(name: str):
    spec = importlib.util.spec_from_file_location(f"edgeprune_example_{name}", ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


X_FFN = torch.randn(8, FEATURES, generator=torch.Generator().manual_seed(0))
X_CNN = torch.randn(8, 36, generator=torch.Generator().manual_seed(0))

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
        for e in plan["groups"]:
            drop = [i for i in range(e["size"]) if i not in e["keep"]]
            for name, dim in e["members"]:
                m = model.get_submodule(name)
                if dim == "out" and isinstance(m, (nn.Linear, nn.Conv2d)):
                    m.weight[drop] = 0
                    if m.bias is not None:
                        m.bias[drop] = 0
                elif dim == "in" and isinstance(m, (nn.Linear, nn.Conv2d)):
                    factor = m.weight.shape[1] // e["size"]
                    for i in drop:
                        m.weight[:, i * factor:(i + 1) * factor] = 0
    return model


def params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# --- FFN ------------------------------------------------------------------------------------------------------

def test_ffn_groups_and_the_output_layer_left_whole():
    groups, _ = find_groups(make_ffn(), X_FFN, "neurons")
    assert [g.root for g in groups] == ["layers.0", "layers.1", "out"]
    assert [(m.module, m.dim) for m in groups[0].members] == [("layers.0", "out"), ("layers.1", "in")]
    assert [g.reaches_output for g in groups] == [False, False, True] and not any(g.coupled for g in groups)
    plan = plan_structured(make_ffn(), "neurons", 0.5, example=X_FFN)
    assert [g["root"] for g in plan["groups"]] == ["layers.0", "layers.1"]
    assert plan["skipped"] == [{"root": "out", "size": CLASSES, "asked": False,
                                "reason": "its units are the model's output (the classifier's classes)"}]


def test_removing_dead_neurons_leaves_outputs_unchanged():
    model = make_ffn()
    with torch.no_grad():   # units 0..15 of each hidden layer are dead (zero row, zero bias) -> lowest L1
        for layer in model.layers:
            layer.weight[:16] = 0
            layer.bias[:16] = 0
    pruned, plan = prune_structured(model, "neurons", 0.5, "l1", example=X_FFN)
    assert [e["keep"] for e in plan["groups"]] == [list(range(16, 32))] * 2
    assert [m.out_features for m in pruned.layers] == [16, 16] and pruned.out.in_features == 16
    x = torch.randn(7, FEATURES)
    torch.testing.assert_close(pruned(x), model(x), rtol=0, atol=1e-6)
    assert params(pruned) < params(model) / 2


@pytest.mark.parametrize("importance", ["l1", "l2", "taylor", "random"])
def test_neuron_removal_equals_zeroing_the_removed_units(importance):
    model = make_ffn()
    calibration = (torch.randn(32, FEATURES), torch.randint(0, CLASSES, (32,)))
    pruned, plan = prune_structured(model, "neurons", 0.25, importance, include_next=True, example=X_FFN,
                                    calibration=calibration)
    x = torch.randn(7, FEATURES)
    torch.testing.assert_close(pruned(x), zero_removed(model, plan)(x), rtol=1e-5, atol=1e-6)
    assert pruned is not model and model.layers[0].out_features == 32    # the input model is untouched


def test_l1_and_l2_rank_units_differently_when_norms_disagree():
    model = make_ffn()
    with torch.no_grad():
        model.layers[0].weight[0] = 0
        model.layers[0].weight[0, 0] = 10.0                 # one big weight: large L2, moderate L1
        model.layers[0].weight[1] = 0.7                     # many medium weights: large L1, small L2
    keep = {n: plan_structured(model, "neurons", 1.0, n, example=X_FFN)["groups"][0]["keep"] for n in ("l1", "l2")}
    assert keep == {"l1": [1], "l2": [0]}


def test_taylor_scores_are_weight_times_gradient_of_the_group():
    from harness.structured import group_scores

    model = make_ffn()
    x, y = torch.randn(32, FEATURES), torch.randint(0, CLASSES, (32,))
    nn.functional.cross_entropy(model(x), y).backward()
    group = find_groups(model, X_FFN, "neurons")[0][0]
    w0, w1 = model.layers[0].weight, model.layers[1].weight
    want = (w0 * w0.grad).abs().sum(1) + (w1 * w1.grad).abs().sum(0)
    torch.testing.assert_close(group_scores(model, group, "taylor").float(), want.detach(), rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="labelled calibration batch"):
        plan_structured(make_ffn(), "neurons", 0.5, "taylor", example=X_FFN)


def test_random_importance_is_seeded():
    keeps = [plan_structured(make_ffn(), "neurons", 0.5, "random", example=X_FFN, seed=s)["groups"][0]["keep"]
             for s in (0, 0, 1)]
    assert keeps[0] == keeps[1] != keeps[2]


@pytest.mark.parametrize("ratio, round_to, kept", [(0.5, 0, 16), (0.6, 0, 13), (0.6, 8, 16), (0.75, 16, 16),
                                                   (0.99, 8, 8), (1.0, 0, 1), (0.0, 8, 32)])
def test_kept_widths_and_round_to(ratio, round_to, kept):
    assert kept_count(32, ratio, round_to) == kept
    pruned, plan = prune_structured(make_ffn(), "neurons", ratio, round_to=round_to, example=X_FFN)
    assert [m.out_features for m in pruned.layers] == [kept, kept]
    assert structure_ratio(plan) == pytest.approx(1 - kept / 32)
    assert pruned(torch.randn(2, FEATURES)).shape == (2, CLASSES)


def test_global_scope_ranks_across_groups_and_the_floor_keeps_every_layer():
    model = make_ffn()
    with torch.no_grad():
        model.layers[1].weight[:, :] = 0.0
        model.layers[1].weight[0, 0] = 1e-3    # one nearly empty layer: a global ranking takes almost all of it
    plan = plan_structured(model, "neurons", 0.5, example=X_FFN, scope="global")
    kept = [len(g["keep"]) for g in plan["groups"]]
    assert sum(kept) == 32 and kept[1] < 16
    floored = plan_structured(model, "neurons", 0.5, example=X_FFN, scope="global", floor=0.4)
    assert all(len(g["keep"]) >= 13 for g in floored["groups"])      # ceil(0.4 * 32)
    assert sum(len(g["keep"]) for g in floored["groups"]) == 32


def test_untouchable_layers_are_left_whole_with_the_reason():
    plan = plan_structured(make_ffn(), "neurons", 0.5, example=X_FFN, untouchable=("layers.1",))
    # layers.0's units are read by layers.1, so that group contains the untouchable layer too
    assert plan["groups"] == []
    assert {s["root"]: s["reason"] for s in plan["skipped"]}["layers.1"] == \
        "it contains layers.1, which is marked untouchable"


# --- CNN with BatchNorm and a residual block ------------------------------------------------------------------

def test_cnn_groups_couple_bn_flatten_and_the_residual_add():
    groups, _ = find_groups(make_cnn(), X_CNN, "channels")
    by = {g.root: g for g in groups}
    residual = next(g for g in groups if "conv1" in g.producers)        # rooted at conv1 or conv3
    assert set(by) == {"conv2", "conv4", "fc1", "fc2", residual.root}
    assert [(m.module, m.dim) for m in by["conv2"].members] == [("conv2", "out"), ("bn2", "out"), ("conv3", "in")]
    assert residual.coupled and sorted(residual.producers) == ["conv1", "conv3"]   # the residual pair
    assert {(m.module, m.dim) for m in residual.members} >= {("bn1", "out"), ("conv2", "in"), ("conv4", "in")}
    assert by["conv4"].members[-1].module == "fc1" and by["conv4"].members[-1].width == 54   # 6 channels x 3x3


@pytest.mark.parametrize("coupled", [False, True])
def test_cnn_channel_removal_equals_zeroed_channels(coupled):
    model = make_cnn()
    pruned, plan = prune_structured(model, "channels", 0.5, "l1", example=X_CNN, coupled=coupled)
    producers = sorted(p for g in plan["groups"] for p, dim in g["members"] if dim == "out" and p.startswith(("c", "f")))
    assert producers == (["conv1", "conv2", "conv3", "conv4", "fc1"] if coupled else ["conv2", "conv4", "fc1"])
    assert (pruned.conv2.out_channels, pruned.bn2.num_features, pruned.conv3.in_channels) == (6, 6, 6)
    assert (pruned.conv4.out_channels, pruned.fc1.in_features) == (3, 27)
    assert (pruned.conv1.out_channels, pruned.conv3.out_channels) == ((4, 4) if coupled else (8, 8))
    skipped = {s["root"]: s for s in plan["skipped"]}
    assert skipped["fc2"]["asked"] is False
    assert coupled or any("residual add" in s["reason"] for s in plan["skipped"])
    # the pruned model computes what the unpruned one does with the removed channels' input columns zeroed
    zeroed = copy.deepcopy(model)
    with torch.no_grad():
        for g in plan["groups"]:
            drop = [i for i in range(g["size"]) if i not in g["keep"]]
            for name, dim in g["members"]:
                m = zeroed.get_submodule(name)
                if dim == "in":
                    factor = m.weight.shape[1] // g["size"]
                    for i in drop:
                        m.weight[:, i * factor:(i + 1) * factor] = 0
    torch.testing.assert_close(pruned(X_CNN), zeroed(X_CNN), rtol=1e-5, atol=1e-5)


def test_small_cnn_example_matches_torch_pruning_at_half_the_channels():
    """The worked example at 50%: edgeprune's plan gives the same architecture as Torch-Pruning's own pruner
    (2,626 of 9,850 parameters, as measured in issue 12), and the classifier keeps its 10 classes."""
    import torch_pruning as tp

    cnn = load_example("small_cnn")
    torch.manual_seed(0)
    model, x = cnn.SmallCNN().eval(), torch.randn(4, 1, 20, 20)
    pruned, plan = prune_structured(model, "channels", 0.5, example=x, coupled=True)
    reference = copy.deepcopy(model)
    tp.pruner.BasePruner(reference, x, importance=tp.importance.GroupMagnitudeImportance(p=1), pruning_ratio=0.5,
                         ignored_layers=[reference.fc]).step()
    assert params(model) == 9850 and params(pruned) == params(reference) == 2626
    assert [str(m) for m in pruned.modules()] == [str(m) for m in reference.modules()]
    assert pruned(x).shape == (4, 10) and structure_ratio(plan) == 0.5


# --- graphs Torch-Pruning must couple: depthwise, concat; and an operation it cannot see into ------------------

class InvertedResidual(nn.Module):
    """MobileNetV2's block: expand 1x1, depthwise 3x3, project 1x1, residual add."""

    def __init__(self, c=8, expand=3):
        super().__init__()
        h = c * expand
        self.expand, self.bn1 = nn.Conv2d(c, h, 1, bias=False), nn.BatchNorm2d(h)
        self.dw, self.bn2 = nn.Conv2d(h, h, 3, padding=1, groups=h, bias=False), nn.BatchNorm2d(h)
        self.project, self.bn3 = nn.Conv2d(h, c, 1, bias=False), nn.BatchNorm2d(c)

    def forward(self, x):
        y = nn.functional.relu6(self.bn1(self.expand(x)))
        return x + self.bn3(self.project(nn.functional.relu6(self.bn2(self.dw(y)))))


class Branches(nn.Module):
    """Two convolutions concatenated, one custom channel-mixing operation, a classifier."""

    def __init__(self, mix=""):
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 3, padding=1)
        self.block = InvertedResidual(8)
        self.a, self.b = nn.Conv2d(8, 6, 3, padding=1), nn.Conv2d(8, 4, 1)
        self.merge = nn.Conv2d(10, 12, 1)
        self.mix_kind = mix
        self.mix = nn.Parameter(torch.randn(12, 12) / 4) if mix == "einsum" else None
        self.fc = nn.Linear(12, 3)

    def forward(self, x):
        x = self.block(torch.relu(self.stem(x)))
        y = torch.relu(self.merge(torch.cat([torch.relu(self.a(x)), torch.relu(self.b(x))], 1)))
        if self.mix_kind == "einsum":       # channels mixed by a raw parameter: no layer the graph knows
            y = torch.einsum("bchw,cd->bdhw", y, self.mix)
        elif self.mix_kind == "flip":       # channels reordered: runs after pruning, but pairs the wrong columns
            y = y.flip(1)
        return self.fc(y.mean((2, 3)))


def make_branches(mix=""):
    torch.manual_seed(0)
    model = Branches(mix).eval()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.3, 0.3)
            m.running_var.uniform_(0.5, 1.5)
    return model


X_IMG = torch.randn(6, 1, 8, 8, generator=torch.Generator().manual_seed(1))


def test_depthwise_groups_follow_and_concat_maps_channels():
    model = make_branches()
    pruned, plan = prune_structured(model, "channels", 0.5, example=X_IMG, coupled=True)
    dw = pruned.block.dw
    assert (pruned.block.expand.out_channels, dw.in_channels, dw.out_channels, dw.groups) == (12, 12, 12, 12)
    assert (pruned.a.out_channels, pruned.b.out_channels, pruned.merge.in_channels) == (3, 2, 5)
    assert pruned.stem.out_channels == pruned.block.project.out_channels == 4     # the residual pair together
    assert pruned(X_IMG).shape == (6, 3) and not [s for s in plan["skipped"] if s["asked"]]


@pytest.mark.parametrize("mix, words", [("einsum", "fails its forward pass"), ("flip", "does not model")])
def test_an_operation_the_graph_cannot_see_into_leaves_its_group_whole_with_the_reason(mix, words):
    model = make_branches(mix)
    pruned, plan = prune_structured(model, "channels", 0.5, example=X_IMG, coupled=True)
    skipped = {s["root"]: s for s in plan["skipped"]}
    assert skipped["merge"]["asked"] is True and words in skipped["merge"]["reason"]
    assert pruned.merge.out_channels == 12 and pruned.fc.in_features == 12      # left whole
    assert pruned.a.out_channels == 3 and pruned.block.dw.groups == 12            # the others are pruned
    assert pruned(X_IMG).shape == (6, 3)
    assert 0 < structure_ratio(plan) < 0.5      # the asked-for group counts as removing nothing


def test_old_plans_of_single_producers_replay_through_the_graph():
    """Run folders written before the dependency graph hold {"units": [...]}: they rebuild the same model."""
    model = make_ffn()
    pruned, plan = prune_structured(model, "neurons", 0.5, example=X_FFN)
    old = {"kind": "neurons", "heads": [], "layers": [],
           "units": [{"producer": g["root"], "size": g["size"], "norms": [], "consumers": [], "keep": g["keep"]}
                     for g in plan["groups"]]}
    fresh = apply_plan(make_ffn(seed=1), old, example=X_FFN)
    fresh.load_state_dict(pruned.state_dict())
    torch.testing.assert_close(fresh(X_FFN), pruned(X_FFN), rtol=0, atol=0)


# --- Transformer: heads and layers ----------------------------------------------------------------------------

def test_transformer_discovery():
    model = make_transformer()
    assert [h.module for h in find_heads(model)] == [f"layers.{i}.attn" for i in range(3)]
    assert [(lg.module, lg.size) for lg in find_layers(model)] == [("layers", 3)]
    plan = plan_structured(model, "neurons", 0.5, example=tokens())
    assert [g["root"] for g in plan["groups"]] == [f"layers.{i}.fc1" for i in range(3)]


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
    pruned, plan = prune_structured(model, "neurons", 0.5, round_to=8, example=tokens())
    assert all(layer.fc1.out_features == 16 and layer.fc2.in_features == 16 for layer in pruned.layers)
    fresh = apply_plan(make_transformer(seed=1), plan, example=tokens())
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
    pruned, _ = prune_structured(model, "neurons", 0.5, example=tiny_task.eval_x[:4])
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
