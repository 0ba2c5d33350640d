"""Shared masking machinery: every unstructured method is an importance score fed to these helpers."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import prune

from harness.metrics import prunable_names, prunable_parameters, refresh_masked_weights


def masks_of(model: nn.Module) -> dict[str, torch.Tensor]:
    """Current masks by parameter name (`layers.0.weight`); all-ones for a prunable weight never pruned."""
    out = {}
    for name, (module, pname) in zip(prunable_names(model), prunable_parameters(model)):
        mask = getattr(module, f"{pname}_mask", None)
        out[name] = (mask if mask is not None else torch.ones_like(getattr(module, pname))).detach().bool().clone()
    return out


def apply_masks(model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
    """Attach masks through torch's pruning reparametrization (combined with any mask already there)."""
    for name, (module, pname) in zip(prunable_names(model), prunable_parameters(model)):
        if name in masks:
            prune.custom_from_mask(module, pname, mask=masks[name].to(getattr(module, pname).dtype))


def global_prune(model: nn.Module, amount: float, scores: dict[str, torch.Tensor] | None = None,
                 method=prune.L1Unstructured) -> None:
    """Prune `amount` of the remaining prunable weights globally, lowest score first.

    `scores` (by parameter name) replaces |w| as importance and may be signed; None keeps torch's L1 magnitude.
    """
    refresh_masked_weights(model)   # torch scores `module.weight`, which may be stale
    params, names = prunable_parameters(model), prunable_names(model)
    importance = None
    if scores is not None:
        lowest = min(float(scores[n].min()) for n in names)
        if lowest < 0:              # torch ranks |score|: one shift for all layers keeps the signed order
            scores = {n: scores[n].double() - lowest for n in names}
        importance = {(m, p): scores[n] for n, (m, p) in zip(names, params)}
    prune.global_unstructured(params, pruning_method=method, importance_scores=importance, amount=amount)
