"""How much each unit of a group matters; independent of the pruner, which keeps the highest scores.

Group norms (as in DepGraph, Fang et al. 2023): a unit's score adds up the weights that belong to it in every layer
of its group, so a residual stage's channel is scored by all the convolutions that write it.
- `l1` / `l2`: the L1 norm / L2 norm of the unit's output rows (filters) in every producing layer, and, with
  `include_next`, of its input columns in every layer that reads it. No data needed.
- `taylor` (Molchanov et al. 2019, first order): sum of |w * dL/dw| over the same weights, the loss's first-order
  change when the unit is removed, with gradients from a labelled batch of training rows.
- `random`: uniform scores from a seeded generator, the control a criterion has to beat.

For one group the score of unit i is computed over member slices [units, -1]; heads and layers have their own
scores below (attention modules and residual blocks are found by attributes, not by the graph).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from harness.structured.dependency import CONV, Group, HeadGroup, LayerGroup

IMPORTANCE = ("l1", "l2", "taylor", "random")
NEEDS_GRADIENTS = ("taylor",)


def _norm(name: str) -> Callable[[list[torch.Tensor]], torch.Tensor]:
    if name == "l1":
        return lambda parts: sum(p.abs().sum(1) for p in parts)
    if name == "l2":
        return lambda parts: sum(p.pow(2).sum(1) for p in parts).sqrt()
    raise ValueError(f"unknown importance {name!r}; known: {', '.join(IMPORTANCE)}")


def _unit_slices(module: nn.Module, dim: str, units: int, tensor: torch.Tensor) -> torch.Tensor:
    """`tensor` (the module's weight or its gradient) as [units, -1]: row i holds what unit i owns in this layer.
    For inputs, a layer may read each unit several times: a Linear after flatten reads `factor` features per
    channel (laid out channel-major, as NCHW flattens), a grouped convolution reads its input channels per group."""
    if dim == "out":
        return tensor.reshape(units, -1)
    if isinstance(module, CONV) and module.groups > 1:   # [out, in/groups, k...]: input c = column c % per of group c // per
        g, per = module.groups, tensor.shape[1]
        return tensor.reshape(g, tensor.shape[0] // g, per, -1).transpose(1, 2).reshape(g * per, -1)
    cols = tensor.transpose(0, 1).reshape(tensor.shape[1], -1)
    factor = cols.shape[0] // units
    return cols.reshape(units, factor * cols.shape[1])


def _parts(model: nn.Module, group: Group, include_next: bool, use_grad: bool) -> list[torch.Tensor]:
    parts = []
    for m in group.members:
        wanted = m.dim == "out" and m.type in ("Linear", "Conv", "GroupedConv") or (
            include_next and m.dim == "in" and m.type in ("Linear", "Conv", "GroupedConv"))
        if not wanted:
            continue
        module = model.get_submodule(m.module)
        weight = module.weight.detach()
        if use_grad:
            if module.weight.grad is None:
                raise ValueError(f"taylor importance needs gradients; {m.module}.weight has none")
            weight = weight * module.weight.grad.detach()
        parts.append(_unit_slices(module, m.dim, group.size, weight))
    return parts


@torch.no_grad()
def group_scores(model: nn.Module, group: Group, importance: str = "l1", include_next: bool = False,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """One score per unit of `group` (higher: more important). `taylor` reads the gradients already in `.grad`."""
    if importance == "random":
        return torch.rand(group.size, generator=generator, dtype=torch.float64)
    if importance == "taylor":
        parts = _parts(model, group, True, use_grad=True)
        return sum(p.abs().sum(1) for p in parts).double()
    parts = _parts(model, group, include_next, use_grad=False)
    return _norm(importance)(parts).double()


def _head_parts(attn: nn.Module, h: int, d: int) -> list[torch.Tensor]:
    parts = [getattr(attn, n).weight.detach().reshape(h, -1) for n in ("q", "k", "v")]
    parts.append(attn.o.weight.detach().reshape(-1, h, d).transpose(0, 1).reshape(h, -1))
    return parts


@torch.no_grad()
def head_scores(model: nn.Module, heads: HeadGroup, norm: str = "l1") -> torch.Tensor:
    """Head h: its rows of q, k, v and its columns of o."""
    return _norm(norm)(_head_parts(model.get_submodule(heads.module), heads.n_heads, heads.head_dim))


@torch.no_grad()
def layer_scores(model: nn.Module, layers: LayerGroup, norm: str = "l1") -> torch.Tensor:
    """Layer i: the norm of the weights that write into the residual stream (attention `o` and the block's last
    Linear, e.g. fc2); a small residual-branch output changes the stream least when the layer is dropped."""
    scores = []
    for block in model.get_submodule(layers.module):
        linears = [m for m in block.modules() if isinstance(m, nn.Linear)]
        outputs = {id(m): m for m in [linears[-1]] + [m.o for m in block.modules() if hasattr(m, "n_heads")]}
        parts = [m.weight.detach().reshape(1, -1) for m in outputs.values()]
        scores.append(_norm(norm)(parts)[0])
    return torch.stack(scores)
