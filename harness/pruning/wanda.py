"""Wanda (Sun et al. 2023, "A Simple and Effective Pruning Approach for LLMs"): |W_ij| * ||X_j||_2.

The activation norm of input feature j is collected with forward hooks on the calibration batch (training
inputs). As in the paper, weights compete within their output row: each row loses `amount` of its remaining
weights, so every row (and therefore every layer) has exactly the claimed sparsity.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from harness.device import model_on
from harness.errors import EdgepruneError
from harness.metrics import prunable_names, prunable_parameters
from harness.pruning.local import effective_weights, prune_per_group

WANDA_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d)     # layers whose input columns a forward hook can read


def _input_columns(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The layer's input as [tokens, fan_in] in the column order of weight.reshape(out, -1)."""
    if isinstance(module, nn.Linear):
        return x.reshape(-1, x.shape[-1])
    if isinstance(module, nn.Conv2d):
        cols = F.unfold(x, module.kernel_size, dilation=module.dilation, padding=module.padding,
                        stride=module.stride)                          # [N, in*kh*kw, L]
        return cols.transpose(1, 2).reshape(-1, cols.shape[1])
    if isinstance(module, nn.Conv1d):
        cols = F.unfold(x.unsqueeze(2), (1, module.kernel_size[0]), dilation=(1, module.dilation[0]),
                        padding=(0, module.padding[0]), stride=(1, module.stride[0]))
        return cols.transpose(1, 2).reshape(-1, cols.shape[1])
    raise EdgepruneError(f"wanda does not know how to read the inputs of a {type(module).__name__} layer.")


@torch.no_grad()
def input_feature_norms(model: nn.Module, calibration: np.ndarray) -> dict[str, torch.Tensor]:
    """||X_j||_2 over every calibration token, per input feature of each prunable layer."""
    sums: dict[str, torch.Tensor] = {}
    handles = []
    for name, (module, _) in zip(prunable_names(model), prunable_parameters(model)):
        if not isinstance(module, WANDA_TYPES):
            continue
        def hook(mod, inputs, output, name=name):
            cols = _input_columns(mod, inputs[0].detach().double())
            sums[name] = sums.get(name, 0) + (cols ** 2).sum(dim=0)
        handles.append(module.register_forward_hook(hook))
    was_training = model.training
    try:
        model.eval()
        with model_on(model) as device:        # the calibration pass runs on --device
            model(torch.from_numpy(np.ascontiguousarray(calibration)).to(device))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return {name: s.sqrt().cpu() for name, s in sums.items()}


def wanda(model: nn.Module, amount: float, ctx) -> None:
    if ctx.calibration is None or len(ctx.calibration) == 0:
        raise EdgepruneError("wanda needs a calibration batch of training inputs (PruneContext.calibration).")
    norms = input_feature_norms(model, ctx.calibration)
    weights = effective_weights(model)
    # Recurrent and embedding weights (prunable when the user opts in) have no input a hook outside the layer sees
    # (a GRU's hidden state, a token's one-hot row): they are ranked by |w| within the row, Wanda without X.
    scores = {name: w.abs().reshape(w.shape[0], -1).double() * (norms[name][None, :] if name in norms else 1.0)
              for name, w in weights.items()}
    prune_per_group(model, amount, scores, per_row=True)
