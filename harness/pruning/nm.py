"""N:M semi-structured sparsity (2:4 by default): the pattern sparse tensor cores accelerate.

Along the input dimension of every row (a Conv row is flattened to [in * kh * kw]) each group of M consecutive
weights keeps its M - N largest |w|. A row whose length is not a multiple of M ends in a tail of r < M weights;
the tail gets floor(r * N / M) zeros (1 of 2 or 3, none of 1), so its density never drops below the pattern's.
The pattern is fixed, so `amount` is ignored: a second round ranks already-pruned weights first and keeps the
same mask (50% per full group, exactly).
"""

from __future__ import annotations

import torch
from torch import nn

from harness.pruning.local import effective_weights
from harness.pruning.masks import apply_masks, masks_of


def nm_mask(weight: torch.Tensor, mask: torch.Tensor, n: int = 2, m: int = 4) -> torch.Tensor:
    """Mask with the n smallest |w| of every m consecutive inputs of a row zeroed (pruned ones count first)."""
    rows = weight.reshape(weight.shape[0], -1)
    keep = mask.reshape(rows.shape).clone()
    score = torch.where(keep, rows.abs().double(), torch.tensor(-1.0, dtype=torch.float64))
    k = rows.shape[1]
    full = k - k % m
    if full:
        groups = score[:, :full].reshape(rows.shape[0], full // m, m)
        lowest = groups.argsort(dim=2, stable=True)[..., :n]
        group_keep = keep[:, :full].reshape(groups.shape).clone()
        group_keep.scatter_(2, lowest, False)
        keep[:, :full] = group_keep.reshape(rows.shape[0], full)
    tail_zeros = (k - full) * n // m
    if tail_zeros:
        lowest = score[:, full:].argsort(dim=1, stable=True)[:, :tail_zeros]
        tail_keep = keep[:, full:].clone()
        tail_keep.scatter_(1, lowest, False)
        keep[:, full:] = tail_keep
    return keep.reshape(weight.shape)


def two_four(model: nn.Module, amount: float, ctx) -> None:
    """2:4 semi-structured pruning of every prunable weight; `amount` does not apply to a fixed pattern."""
    masks = masks_of(model)
    apply_masks(model, {name: nm_mask(w, masks[name]) for name, w in effective_weights(model).items()})
