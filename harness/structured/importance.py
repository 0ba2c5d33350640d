"""How much each unit matters: the L1 or L2 norm of the weights that belong to it (no data needed).

Independent of the pruner: each function returns one score per unit, and the pruner keeps the highest.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from harness.structured.dependency import Group, HeadGroup, LayerGroup


def _l1(parts: list[torch.Tensor]) -> torch.Tensor:
    return sum(p.abs().sum(1) for p in parts)


def _l2(parts: list[torch.Tensor]) -> torch.Tensor:
    return sum(p.pow(2).sum(1) for p in parts).sqrt()


# Norm name -> function of per-unit weight slices ([units, -1] each) -> [units] scores.
IMPORTANCE: dict[str, Callable[[list[torch.Tensor]], torch.Tensor]] = {"l1": _l1, "l2": _l2}


def _norm(name: str):
    if name not in IMPORTANCE:
        raise ValueError(f"unknown importance {name!r}; known: {', '.join(IMPORTANCE)}")
    return IMPORTANCE[name]


@torch.no_grad()
def group_scores(model: nn.Module, group: Group, norm: str = "l1", include_next: bool = False) -> torch.Tensor:
    """Unit i: its row (Linear) or filter (Conv2d) of the producer, plus optionally its columns in the consumers."""
    modules = dict(model.named_modules())
    parts = [modules[group.producer].weight.detach().reshape(group.size, -1)]
    if include_next:
        for c in group.consumers:
            w = modules[c.module].weight.detach()
            # the columns of unit i: in_features laid out unit-major (flatten of NCHW), `factor` per unit
            w = w.reshape(w.shape[0], group.size, c.factor, -1).transpose(0, 1)
            parts.append(w.reshape(group.size, -1))
    return _norm(norm)(parts)


@torch.no_grad()
def head_scores(model: nn.Module, heads: HeadGroup, norm: str = "l1") -> torch.Tensor:
    """Head h: its rows of q, k, v and its columns of o."""
    attn = model.get_submodule(heads.module)
    h, d = heads.n_heads, heads.head_dim
    parts = [getattr(attn, n).weight.detach().reshape(h, -1) for n in ("q", "k", "v")]
    parts.append(attn.o.weight.detach().reshape(-1, h, d).transpose(0, 1).reshape(h, -1))
    return _norm(norm)(parts)


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
