"""Mask rules that rank weights inside a group (a layer or a row) instead of across the whole model.

torch.nn.utils.prune has no "prune `amount` of every row's remaining weights", so the ranking is written here
(one argsort) and the result goes through the shared machinery (`apply_masks` -> prune.custom_from_mask).
"""

from __future__ import annotations

import torch
from torch import nn

from harness.metrics import prunable_names, prunable_parameters, refresh_masked_weights
from harness.pruning.masks import apply_masks, masks_of


def effective_weights(model: nn.Module) -> dict[str, torch.Tensor]:
    """Prunable weights as the forward pass sees them (mask applied), by parameter name."""
    refresh_masked_weights(model)
    return {name: getattr(module, pname).detach()
            for name, (module, pname) in zip(prunable_names(model), prunable_parameters(model))}


def prune_lowest_per_group(scores: torch.Tensor, mask: torch.Tensor, amount: float) -> torch.Tensor:
    """New mask: in each row of `scores` ([groups, k]), `round(amount * remaining)` more of the remaining
    (mask == True) entries are pruned, lowest score first; already-pruned entries stay pruned."""
    kept = mask.sum(dim=1)
    to_prune = torch.round(amount * kept.double()).long()          # same rounding as torch.nn.utils.prune
    pruned_before = mask.shape[1] - kept
    # already-pruned entries rank first, so the first pruned_before + to_prune ranks of each row are zero
    ranked = torch.where(mask, scores.double(), torch.tensor(float("-inf"), dtype=torch.float64))
    ranks = ranked.argsort(dim=1, stable=True).argsort(dim=1)
    return ranks >= (pruned_before + to_prune)[:, None]


def prune_per_group(model: nn.Module, amount: float, scores: dict[str, torch.Tensor], per_row: bool) -> None:
    """Prune `amount` of the remaining weights of every layer (per_row=False) or every output row (per_row=True)
    by lowest score. Rows are dim 0 of the weight (output units / channels); a Conv row is [in * kh * kw]."""
    masks = masks_of(model)
    new = {}
    for name, mask in masks.items():
        shape = mask.shape
        groups = shape[0] if per_row else 1
        flat_mask = mask.reshape(groups, -1)
        flat_scores = scores[name].reshape(groups, -1)
        new[name] = prune_lowest_per_group(flat_scores, flat_mask, amount).reshape(shape)
    apply_masks(model, new)
