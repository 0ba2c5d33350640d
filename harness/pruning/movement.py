"""Movement pruning (Sanh et al. 2020, "Movement Pruning: Adaptive Sparsity by Fine-Tuning"): S = -sum_t dL/dw * w.

A weight that fine-tuning pushes towards zero (gradient and weight of the same sign) collects a negative score and
goes first; one pushed away from zero is kept, whatever its magnitude. The scores come from a short fine-tune of a
scratch copy on the labelled calibration batch (training rows), recorded by a `train` callback after every backward
pass; the model itself only gains the mask. See docs/methods.md for the choices and the data-free alternative.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from harness.metrics import prunable_names, prunable_parameters, refresh_masked_weights
from harness.pruning.masks import global_prune
from harness.training import LossFn, TrainCallback, TrainConfig, train

# A few Adam steps: 2 epochs of the calibration batch (256 rows -> 8 steps; 64 rows -> 2 steps).
FINETUNE = TrainConfig(epochs=2, batch_size=64, lr=0.001)


def trainable_weight(module: nn.Module, pname: str) -> torch.Tensor:
    """The parameter under the mask (`weight_orig` once pruned): the one the optimizer updates and .grad lands on."""
    orig = getattr(module, f"{pname}_orig", None)
    return orig if orig is not None else getattr(module, pname)


class MovementScores(TrainCallback):
    """Accumulates -dL/dw * w over the training steps, by prunable name (a masked weight's gradient is 0)."""

    def __init__(self, model: nn.Module):
        self.scores = {name: torch.zeros_like(getattr(m, p)) for name, (m, p) in
                       zip(prunable_names(model), prunable_parameters(model))}

    def after_backward(self, model: nn.Module, step: int, loss: torch.Tensor) -> None:
        for name, (module, pname) in zip(self.scores, prunable_parameters(model)):
            w = trainable_weight(module, pname)
            if w.grad is not None:
                if self.scores[name].device != w.device:       # train() moved the model to its device
                    self.scores[name] = self.scores[name].to(w.device)
                self.scores[name] -= w.grad * w.detach()


def movement_scores(model: nn.Module, x: np.ndarray, y: np.ndarray, loss_fn: LossFn, seed: int,
                    cfg: TrainConfig = FINETUNE) -> dict[str, torch.Tensor]:
    """Movement scores from fine-tuning a copy of `model` on (x, y); `model` is left as it was."""
    refresh_masked_weights(model)               # deepcopy refuses the non-leaf `weight` a forward pass leaves
    scratch = copy.deepcopy(model)
    for module, pname in prunable_parameters(scratch):
        trainable_weight(module, pname).requires_grad_(True)
    recorder = MovementScores(scratch)
    with torch.random.fork_rng():               # dropout draws from the global generator: seed it, then restore it
        torch.manual_seed(seed)
        train(scratch, x, y, cfg, seed=seed, quiet=True, callbacks=[recorder], loss_fn=loss_fn)
    return {name: score.cpu() for name, score in recorder.scores.items()}


def movement(model: nn.Module, amount: float, ctx) -> None:
    """Prune `amount` of the remaining weights globally, lowest movement score first."""
    x, y = ctx.labelled_batch("movement")
    global_prune(model, amount, scores=movement_scores(model, x, y, ctx.loss_fn, ctx.seed))
