"""SNIP (Lee et al. 2019, "SNIP: Single-shot Network Pruning based on Connection Sensitivity"): |w * dL/dw|.

The first-order estimate of how much the loss changes when a weight is removed, on the labelled calibration batch
(training rows). The gradient is taken through the masked model, with respect to the effective weights the forward
pass uses, on a scratch copy, so the model keeps its weights, `.grad` and `requires_grad` flags as they were.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from harness.device import model_on
from harness.metrics import prunable_names, prunable_parameters, refresh_masked_weights
from harness.pruning.masks import global_prune


def snip_scores(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, loss_fn) -> dict[str, torch.Tensor]:
    """|w * dL/dw| of every prunable weight as the forward pass sees it (pruned weights score 0), by name."""
    refresh_masked_weights(model)               # deepcopy refuses the non-leaf `weight` a forward pass leaves
    scratch = copy.deepcopy(model).eval()       # eval: dropout and batch-norm statistics stay put
    for module, pname in prunable_parameters(scratch):
        getattr(module, f"{pname}_orig", getattr(module, pname)).requires_grad_(True)
    with model_on(scratch) as device:            # the calibration gradient runs on --device
        loss = loss_fn(scratch(inputs.to(device)), labels.to(device))
        weights = [getattr(module, pname) for module, pname in prunable_parameters(scratch)]  # this forward's
        grads = torch.autograd.grad(loss, weights)
        return {name: (w.detach() * g).abs().cpu() for name, w, g in zip(prunable_names(scratch), weights, grads)}


def snip(model: nn.Module, amount: float, ctx) -> None:
    """Prune `amount` of the remaining weights globally, lowest |w * dL/dw| first."""
    x, y = ctx.labelled_batch("snip")
    global_prune(model, amount, scores=snip_scores(model, torch.from_numpy(x), torch.from_numpy(y), ctx.loss_fn))
