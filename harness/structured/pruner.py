"""The pruner: turn importance scores into a plan (the units each group keeps), check it, and apply it.

Torch-Pruning (DepGraph) finds the groups and removes units from every tensor of a group; edgeprune chooses the
units (uniform or global ranking, `round_to`, a per-group floor, untouchable layers), refuses groups it cannot
prune correctly (each with a reason), and stores the result as JSON in the variant's `model["plan"]`:
    {"kind": "channels", "engine": "torch-pruning",
     "groups":  [{"root": "stem.0", "size": 16, "channel_groups": 1, "keep": [...],
                  "members": [["stem.0", "out"], ["stem.1", "out"], ["block.conv1", "in"], ...]}],
     "skipped": [{"root": "fc", "size": 10, "asked": false, "reason": "its units are the model's output ..."}],
     "heads":   [{"module": "layers.0.attn", "size": 4, "head_dim": 32, "keep": [0, 2, 3]}],
     "layers":  [{"module": "layers", "size": 4, "drop": [1]}]}
Applying a plan to a freshly built base model replays the removals through Torch-Pruning (its pruning history:
root, output dimension, removed indices), so the pruned architecture is rebuilt exactly and its state_dict loads
with weights_only. Plans written before the dependency graph (`"units"`, one producer each) replay the same way.

Why a group is checked: Torch-Pruning treats every operation it does not know (a custom autograd function, an einsum
with a weight, a channel shuffle) as element-wise, so a group through such an operation can be pruned into a model
that runs but computes something else. Removing units is exact when the removed units' contributions are all that
changes: the pruned model must equal the unpruned one with the removed units' input columns zeroed in every layer
that reads them. A group that fails that check (or breaks the forward pass) is left whole, with the reason.
"""

from __future__ import annotations

import copy
import math
from typing import Callable

import numpy as np
import torch
import torch_pruning as tp
from torch import nn

from harness.structured.dependency import (CONV, Group, as_example, dependency_graph, find_groups, find_heads,
                                           find_layers)
from harness.structured.importance import NEEDS_GRADIENTS, group_scores, head_scores, layer_scores

KINDS = ("neurons", "channels", "heads", "layers")
SCOPES = ("uniform", "global")
# Norms that mix the units they normalise: removing units changes the kept ones, so only the shapes are checked.
CROSS_UNIT = ("LayerNorm", "GroupNorm", "InstanceNorm1d", "InstanceNorm2d", "LSTM", "MultiheadAttention")
CHECK_TOLERANCE = 1e-4          # max |pruned - zeroed| relative to the largest output

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def kept_count(n: int, ratio: float, round_to: int = 0, floor: float = 0.0) -> int:
    """Units kept when `ratio` of n are removed: at least one and at least `floor` of n, rounded up to a multiple
    of round_to (at most n)."""
    keep = max(1, n - int(round(ratio * n)), math.ceil(floor * n))
    if round_to and round_to > 1:
        keep = min(n, math.ceil(keep / round_to) * round_to)
    return keep


def _top(scores: torch.Tensor, keep: int) -> list[int]:
    # stable order: ties broken by index, kept indices in their original order
    order = sorted(range(len(scores)), key=lambda i: (-float(scores[i]), i))
    return sorted(order[:keep])


def _untouchable(group: Group, names: tuple[str, ...]) -> str | None:
    for m in group.members:
        for name in names:
            if m.module == name or m.module.startswith(name + "."):
                return name
    return None


def _refusal(group: Group, coupled: bool, untouchable: tuple[str, ...]) -> str | None:
    """Why a group is not pruned by choice (not by failure), or None."""
    if group.reaches_output:
        return "its units are the model's output (the classifier's classes)"
    hit = _untouchable(group, untouchable)
    if hit is not None:
        return f"it contains {hit}, which is marked untouchable"
    if group.coupled and not coupled:
        return (f"its units are shared by {len(group.producers)} layers ({', '.join(group.producers)}) through a "
                f"residual add or another element-wise join; coupled groups are pruned only when asked (coupled)")
    if not group.producers:
        return "no Linear or Conv layer computes its units"
    return None


def _scored_copy(model: nn.Module, importance: str, calibration, loss_fn: LossFn | None) -> nn.Module:
    """The model importance reads: itself, or for gradient-based importance a copy holding dL/dw in `.grad`."""
    if importance not in NEEDS_GRADIENTS:
        return model
    if calibration is None:
        raise ValueError(f"{importance} importance needs a labelled calibration batch")
    scored = copy.deepcopy(model).eval()
    x, y = (torch.from_numpy(np.ascontiguousarray(a)) if isinstance(a, np.ndarray) else a for a in calibration)
    scored.zero_grad(set_to_none=True)
    with torch.enable_grad():
        (loss_fn or nn.functional.cross_entropy)(scored(x), y).backward()
    return scored


def _per_group(scores: torch.Tensor, channel_groups: int) -> torch.Tensor:
    """A grouped convolution repeats each unit once per conv group: score the position, prune it in every group."""
    return scores.reshape(channel_groups, -1).sum(0) if channel_groups > 1 else scores


def _select(groups: list[Group], scores: list[torch.Tensor], ratio: float, scope: str, round_to: int,
            floor: float) -> list[list[int]]:
    """Kept positions per group (within one conv group when channel_groups > 1)."""
    sizes = [len(s) for s in scores]
    if scope == "uniform":
        return [_top(s, kept_count(n, ratio, round_to, floor)) for s, n in zip(scores, sizes)]
    # global: one ranking over every group, scores divided by their group's mean so layers of different scale
    # compete fairly (Torch-Pruning's default normaliser); each group keeps at least its floor.
    normed = [s / s.mean() if float(s.mean()) > 0 else s for s in scores]
    budget = int(round(ratio * sum(sizes)))
    removable = [n - kept_count(n, 1.0, 0, floor) for n in sizes]
    removed = [0] * len(groups)
    ranking = sorted(((float(v), gi, i) for gi, s in enumerate(normed) for i, v in enumerate(s)))
    for _, gi, _ in ranking:
        if budget <= 0:
            break
        if removed[gi] < removable[gi]:
            removed[gi] += 1
            budget -= 1
    return [_top(s, kept_count(n, removed_i / n, round_to, floor)) for s, n, removed_i in zip(scores, sizes, removed)]


def _expand(kept: list[int], channel_groups: int, size: int) -> list[int]:
    per = size // channel_groups
    return sorted(k + g * per for g in range(channel_groups) for k in kept)


def _run(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return model.eval()(x)


def _zero_inputs(model: nn.Module, items: list[tuple[str, str, list[int]]]) -> nn.Module:
    """A copy of `model` whose layers reading the removed units have those input columns zeroed."""
    zeroed = copy.deepcopy(model)
    with torch.no_grad():
        for name, dim, idxs in items:
            module = zeroed.get_submodule(name)
            if dim == "in" and (isinstance(module, nn.Linear) or isinstance(module, CONV) and module.groups == 1):
                module.weight[:, idxs] = 0
    return zeroed


def check_group(model: nn.Module, x: torch.Tensor, group: Group, prune: list[int]) -> str | None:
    """None when removing `prune` from `group` is exactly zeroing those units for the layers that read them (or,
    for groups through norms that mix units, when the pruned model still runs with the same output shape); else
    the reason, in words."""
    trial = copy.deepcopy(model)
    dg = dependency_graph(trial, x)
    module = trial.get_submodule(group.root)
    pruning = dg.get_pruning_group(module, dg.get_pruner_of_module(module).prune_out_channels, prune)
    if not dg.check_pruning_group(pruning):
        return "removing these units would leave a layer with no units"
    items = [(dg._module2name[dep.target.module], "out" if dg.is_out_channel_pruning_fn(dep.handler) else "in",
              list(idxs)) for dep, idxs in pruning if dep.target.module in dg._module2name]
    pruning.prune(record_history=False)
    want = _run(model, x)
    try:
        got = _run(trial, x)
    except Exception as exc:   # noqa: BLE001 - any failure here is the graph mis-modelling the model
        return f"the pruned model fails its forward pass ({type(exc).__name__}: {' '.join(str(exc).split())[:160]})"
    if got.shape != want.shape:
        return f"the pruned model returns shape {list(got.shape)} instead of {list(want.shape)}"
    if any(m.type in CROSS_UNIT or m.type == "GroupedConv" for m in group.members):
        return None
    zeroed = _run(_zero_inputs(model, items), x)
    diff = float((got - zeroed).abs().max())
    if diff > CHECK_TOLERANCE * max(1.0, float(zeroed.abs().max())):
        return (f"removing its units changes what the kept units compute (max difference {diff:.3g}): an operation "
                f"between its layers mixes units in a way the dependency graph does not model")
    return None


def _width_plan(model: nn.Module, kind: str, ratio: float, importance: str, round_to: int, include_next: bool,
                select, example, scope: str, floor: float, coupled: bool, untouchable: tuple[str, ...],
                calibration, loss_fn: LossFn | None, seed: int) -> dict:
    x = as_example(example)
    groups, _ = find_groups(model, x, kind)
    groups = [g for g in groups if select(g.root)]
    plan = {"kind": kind, "engine": "torch-pruning", "groups": [], "skipped": [], "heads": [], "layers": []}
    candidates = []
    for g in groups:
        reason = _refusal(g, coupled, untouchable)
        if reason is None:
            candidates.append(g)
        else:
            plan["skipped"].append({"root": g.root, "size": g.size, "asked": False, "reason": reason})
    scored = _scored_copy(model, importance, calibration, loss_fn) if candidates else model
    generator = torch.Generator().manual_seed(seed)
    scores = [_per_group(group_scores(scored, g, importance, include_next, generator), g.channel_groups)
              for g in candidates]
    kept = _select(candidates, scores, ratio, scope, round_to, floor)
    for g, keep in zip(candidates, kept):
        keep = _expand(keep, g.channel_groups, g.size)
        prune = [i for i in range(g.size) if i not in set(keep)]
        reason = check_group(model, x, g, prune) if prune else None
        if reason is not None:
            plan["skipped"].append({"root": g.root, "size": g.size, "asked": True, "reason": reason})
            continue
        plan["groups"].append({"root": g.root, "size": g.size, "channel_groups": g.channel_groups, "keep": keep,
                               "members": [[m.module, m.dim] for m in g.members]})
    _drop_conflicting(model, x, plan)
    return plan


def _drop_conflicting(model: nn.Module, x: torch.Tensor, plan: dict) -> None:
    """Groups that pass alone but not together (rare: two groups meeting in an operation the graph does not model)
    are dropped one at a time, last first, until the whole plan runs."""
    def runs(p: dict) -> bool:
        try:
            return _run(apply_plan(copy.deepcopy(model), p, x), x).shape == _run(model, x).shape
        except Exception:   # noqa: BLE001 - a failing combination is what is being looked for
            return False

    while plan["groups"] and not runs(plan):
        dropped = plan["groups"].pop()
        plan["skipped"].append({"root": dropped["root"], "size": dropped["size"], "asked": True,
                                "reason": "pruning it together with the other groups breaks the forward pass"})


def plan_structured(model: nn.Module, kind: str, ratio: float, importance: str = "l1", round_to: int = 0,
                    include_next: bool = False, select=None, *, example=None, scope: str = "uniform",
                    floor: float = 0.0, coupled: bool = False, untouchable: tuple[str, ...] = (),
                    calibration=None, loss_fn: LossFn | None = None, seed: int = 0) -> dict:
    """Which units to keep: `ratio` of the units removed, lowest importance first.

    Widths (`neurons`, `channels`) need `example` (a batch the model accepts) to trace the dependency graph;
    `scope` ranks units within each group ("uniform": every group loses `ratio`) or across all groups ("global");
    `floor` is the fraction of each group always kept; `coupled` also prunes groups shared through residual adds;
    `untouchable` names modules (and their submodules) never pruned; `calibration` ((inputs, labels)) and `loss_fn`
    feed gradient-based importance; `seed` draws random importance. `select(name)` limits pruning to some groups
    (the root, attention module or layer list name).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown structure {kind!r}; known: {', '.join(KINDS)}")
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}; known: {', '.join(SCOPES)}")
    select = select or (lambda name: True)
    if kind in ("neurons", "channels"):
        if example is None:
            raise ValueError(f"pruning {kind} needs an example batch to trace the dependency graph")
        return _width_plan(model, kind, ratio, importance, round_to, include_next, select, example, scope, floor,
                           coupled, tuple(untouchable), calibration, loss_fn, seed)
    plan = {"kind": kind, "heads": [], "layers": []}
    norm = importance if importance in ("l1", "l2") else "l1"
    if kind == "heads":
        for h in find_heads(model):
            if select(h.module):
                keep = _top(head_scores(model, h, norm), kept_count(h.n_heads, ratio))
                plan["heads"].append({"module": h.module, "size": h.n_heads, "head_dim": h.head_dim, "keep": keep})
    else:
        for lg in find_layers(model):
            if select(lg.module):
                keep = _top(layer_scores(model, lg, norm), kept_count(lg.size, ratio))
                plan["layers"].append({"module": lg.module, "size": lg.size,
                                       "drop": [i for i in range(lg.size) if i not in keep]})
    return plan


def structure_ratio(plan: dict) -> float:
    """Fraction of the units (neurons, channels, heads or layers) the plan was asked to remove that it removed:
    groups it refused by choice (the classifier, untouchable or coupled groups) do not count, groups that failed
    their check count as removing nothing."""
    total = removed = 0
    for e in plan.get("units", []) + plan.get("groups", []) + plan.get("heads", []):
        total, removed = total + e["size"], removed + e["size"] - len(e["keep"])
    total += sum(e["size"] for e in plan.get("skipped", []) if e.get("asked"))
    for e in plan.get("layers", []):
        total, removed = total + e["size"], removed + len(e["drop"])
    return removed / total if total else 0.0


def pruning_history(plan: dict) -> list[list]:
    """Torch-Pruning's history of the plan's width removals: [root, True (output units), removed indices]."""
    entries = plan.get("groups", []) or [{"root": e["producer"], **e} for e in plan.get("units", [])]
    return [[e["root"], True, [i for i in range(e["size"]) if i not in set(e["keep"])]] for e in entries]


@torch.no_grad()
def slice_heads(attn: nn.Module, keep: list[int], head_dim: int) -> None:
    drop = [h * head_dim + j for h in range(attn.n_heads) if h not in keep for j in range(head_dim)]
    if not drop:
        return
    for name in ("q", "k", "v"):
        tp.prune_linear_out_channels(getattr(attn, name), drop)
    tp.prune_linear_in_channels(attn.o, drop)
    attn.n_heads = len(keep)


def apply_plan(model: nn.Module, plan: dict, example=None) -> nn.Module:
    """Slice `model` in place by `plan` (names refer to the unpruned model); returns it. Width removals replay
    through Torch-Pruning's dependency graph, traced on `example`."""
    history = [h for h in pruning_history(plan) if h[2]]
    if history:
        if example is None:
            raise ValueError("replaying a width plan needs an example batch to trace the dependency graph")
        dependency_graph(model, example).load_pruning_history(history)
    for e in plan.get("heads", []):
        slice_heads(model.get_submodule(e["module"]), e["keep"], e["head_dim"])
    for e in plan.get("layers", []):   # last: dropping renumbers the list that the names above refer to
        blocks = model.get_submodule(e["module"])
        kept = [b for i, b in enumerate(blocks) if i not in set(e["drop"])]
        parent_name, _, attr = e["module"].rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, attr, nn.ModuleList(kept))
        for attr_name in ("n_layers", "num_layers"):
            if isinstance(getattr(model, attr_name, None), int) and e["module"] == "layers":
                setattr(model, attr_name, len(kept))
    return model


def prune_structured(model: nn.Module, kind: str, ratio: float, importance: str = "l1", round_to: int = 0,
                     include_next: bool = False, select=None, **options) -> tuple[nn.Module, dict]:
    """(a smaller dense copy of `model`, its plan); the input model is left as it is. `options` as in
    plan_structured (`example` is needed for neurons and channels)."""
    plan = plan_structured(model, kind, ratio, importance, round_to, include_next, select, **options)
    return apply_plan(copy.deepcopy(model), plan, options.get("example")), plan
