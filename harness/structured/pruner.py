"""The pruner: turn importance scores into a plan (kept indices), and slice a model by a plan.

A plan is plain JSON, stored in the variant's `model` entry; applying it to a freshly built base model gives the
architecture of the pruned model, so its state_dict loads with weights_only:
    {"kind": "neurons",
     "units":  [{"producer": "layers.0", "size": 1024, "norms": [], "consumers": [["layers.1", 1]], "keep": [...]}],
     "heads":  [{"module": "layers.0.attn", "size": 4, "head_dim": 32, "keep": [0, 2, 3]}],
     "layers": [{"module": "layers", "size": 4, "drop": [1]}]}
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from harness.structured.dependency import find_groups, find_heads, find_layers
from harness.structured.importance import group_scores, head_scores, layer_scores

KINDS = ("neurons", "channels", "heads", "layers")


def kept_count(n: int, ratio: float, round_to: int = 0) -> int:
    """Units kept when `ratio` of n are removed: at least one, rounded up to a multiple of round_to (at most n)."""
    keep = max(1, n - int(round(ratio * n)))
    if round_to and round_to > 1:
        keep = min(n, math.ceil(keep / round_to) * round_to)
    return keep


def _top(scores: torch.Tensor, keep: int) -> list[int]:
    # stable order: ties broken by index, kept indices in their original order
    order = sorted(range(len(scores)), key=lambda i: (-float(scores[i]), i))
    return sorted(order[:keep])


def plan_structured(model: nn.Module, kind: str, ratio: float, importance: str = "l1", round_to: int = 0,
                    include_next: bool = False, select=None) -> dict:
    """Which units to keep: `ratio` of every group of `kind` removed, lowest importance first.

    `select(name)` limits pruning to some groups (the producer, attention module or layer list name).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown structure {kind!r}; known: {', '.join(KINDS)}")
    select = select or (lambda name: True)
    plan = {"kind": kind, "units": [], "heads": [], "layers": []}
    if kind in ("neurons", "channels"):
        wanted = nn.Linear if kind == "neurons" else nn.Conv2d
        groups, _ = find_groups(model)
        for g in groups:
            if isinstance(model.get_submodule(g.producer), wanted) and select(g.producer):
                scores = group_scores(model, g, importance, include_next)
                plan["units"].append({"producer": g.producer, "size": g.size, "norms": g.norms,
                                      "consumers": [[c.module, c.factor] for c in g.consumers],
                                      "keep": _top(scores, kept_count(g.size, ratio, round_to))})
    elif kind == "heads":
        for h in find_heads(model):
            if select(h.module):
                keep = _top(head_scores(model, h, importance), kept_count(h.n_heads, ratio))
                plan["heads"].append({"module": h.module, "size": h.n_heads, "head_dim": h.head_dim, "keep": keep})
    else:
        for lg in find_layers(model):
            if select(lg.module):
                keep = _top(layer_scores(model, lg, importance), kept_count(lg.size, ratio))
                plan["layers"].append({"module": lg.module, "size": lg.size,
                                       "drop": [i for i in range(lg.size) if i not in keep]})
    return plan


def structure_ratio(plan: dict) -> float:
    """Fraction of the plan's units (neurons, channels, heads or layers) that were removed."""
    total = removed = 0
    for e in plan.get("units", []) + plan.get("heads", []):
        total, removed = total + e["size"], removed + e["size"] - len(e["keep"])
    for e in plan.get("layers", []):
        total, removed = total + e["size"], removed + len(e["drop"])
    return removed / total if total else 0.0


def _set(module: nn.Module, name: str, value: torch.Tensor) -> None:
    old = getattr(module, name)
    if isinstance(old, nn.Parameter):
        setattr(module, name, nn.Parameter(value.clone(), requires_grad=old.requires_grad))
    else:
        setattr(module, name, value.clone())


@torch.no_grad()
def slice_outputs(module: nn.Module, keep: torch.Tensor) -> None:
    """Keep output units `keep` of a Linear/Conv2d (rows, bias) or the features of a BatchNorm."""
    if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        for name in ("weight", "bias", "running_mean", "running_var"):
            if getattr(module, name, None) is not None:
                _set(module, name, getattr(module, name)[keep])
        module.num_features = len(keep)
        return
    _set(module, "weight", module.weight[keep])
    if module.bias is not None:
        _set(module, "bias", module.bias[keep])
    if isinstance(module, nn.Linear):
        module.out_features = len(keep)
    else:
        module.out_channels = len(keep)


@torch.no_grad()
def slice_inputs(module: nn.Module, keep: torch.Tensor, factor: int = 1) -> None:
    """Keep the input columns (Linear) or channels (Conv2d) read from units `keep`, `factor` features per unit."""
    idx = (keep[:, None] * factor + torch.arange(factor)).reshape(-1)
    _set(module, "weight", module.weight[:, idx])
    if isinstance(module, nn.Linear):
        module.in_features = len(idx)
    else:
        module.in_channels = len(idx)


@torch.no_grad()
def slice_heads(attn: nn.Module, keep: list[int], head_dim: int) -> None:
    rows = torch.tensor([h * head_dim + j for h in keep for j in range(head_dim)], dtype=torch.long)
    for name in ("q", "k", "v"):
        slice_outputs(getattr(attn, name), rows)
    slice_inputs(attn.o, rows)
    attn.n_heads = len(keep)


def apply_plan(model: nn.Module, plan: dict) -> nn.Module:
    """Slice `model` in place by `plan` (names refer to the unpruned model); returns it."""
    for e in plan.get("units", []):
        keep = torch.tensor(e["keep"], dtype=torch.long)
        slice_outputs(model.get_submodule(e["producer"]), keep)
        for norm in e["norms"]:
            slice_outputs(model.get_submodule(norm), keep)
        for name, factor in e["consumers"]:
            slice_inputs(model.get_submodule(name), keep, factor)
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
                     include_next: bool = False, select=None) -> tuple[nn.Module, dict]:
    """(a smaller dense copy of `model`, its plan); the input model is left as it is."""
    plan = plan_structured(model, kind, ratio, importance, round_to, include_next, select)
    return apply_plan(copy.deepcopy(model), plan), plan
