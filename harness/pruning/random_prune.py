"""Random unstructured pruning: the control every importance score must beat."""

from __future__ import annotations

import torch
from torch import nn

from harness.pruning.local import effective_weights, prune_per_group


def random_unstructured(model: nn.Module, amount: float, ctx) -> None:
    """Prune `amount` of each layer's remaining weights, chosen uniformly at random (seeded by ctx.seed).

    Stratified per layer: a global random draw removes the same fraction of every layer in expectation; drawing
    per layer makes that exact (each layer loses round(amount * remaining)), so the sparsity is as claimed.
    """
    generator = torch.Generator().manual_seed(int(ctx.seed))
    scores = {name: torch.rand(w.shape, generator=generator) for name, w in effective_weights(model).items()}
    prune_per_group(model, amount, scores, per_row=False)
