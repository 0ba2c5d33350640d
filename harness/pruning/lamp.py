"""LAMP (Lee et al. 2021, "Layer-adaptive sparsity for the magnitude-based pruning"): a global threshold over
scores w_u^2 / sum_{|w_v| >= |w_u|} w_v^2 computed within each layer. The score normalises each layer's
magnitudes so one threshold picks layer-wise sparsities adaptively, and every layer keeps its largest weight."""

from __future__ import annotations

import torch
from torch import nn

from harness.pruning.local import effective_weights
from harness.pruning.masks import global_prune


def lamp_scores(weight: torch.Tensor) -> torch.Tensor:
    squared = weight.detach().double().flatten() ** 2
    order = squared.argsort(stable=True)
    ascending = squared[order]
    tail_sums = ascending.flip(0).cumsum(0).flip(0)            # sum of this and every larger weight
    scores = torch.zeros_like(squared)
    scores[order] = torch.where(tail_sums > 0, ascending / tail_sums, torch.zeros_like(ascending))
    return scores.reshape(weight.shape)


def lamp(model: nn.Module, amount: float, ctx) -> None:
    """Prune `amount` of the remaining weights globally, lowest LAMP score first."""
    global_prune(model, amount, scores={name: lamp_scores(w) for name, w in effective_weights(model).items()})
