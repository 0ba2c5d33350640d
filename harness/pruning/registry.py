"""Pruning methods by name. A method prunes `amount` of the remaining weights of a model in place."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch.nn.functional as F
from torch import nn

from harness.errors import EdgepruneError
from harness.pruning.masks import global_prune
from harness.pruning.lamp import lamp
from harness.pruning.movement import movement
from harness.pruning.nm import two_four
from harness.pruning.random_prune import random_unstructured
from harness.pruning.snip import snip
from harness.pruning.wanda import wanda
from harness.training import LossFn


@dataclass
class PruneContext:
    """What a data-aware method may need: a calibration batch from the training split (never the eval split), its
    integer labels for methods that take gradients, the loss those gradients are of, and a seed."""
    calibration: Optional[np.ndarray] = None            # inputs, e.g. for wanda's activation norms
    seed: int = 0
    calibration_labels: Optional[np.ndarray] = None     # class index of each calibration row
    loss_fn: LossFn = F.cross_entropy                   # loss(logits, labels)

    def labelled_batch(self, method: str) -> tuple[np.ndarray, np.ndarray]:
        """(inputs, int64 labels) of the calibration batch, or one clear error naming the method that needs it."""
        if self.calibration is None or self.calibration_labels is None or len(self.calibration) == 0:
            raise EdgepruneError(f"{method} needs a labelled calibration batch of training data "
                                 "(PruneContext.calibration and PruneContext.calibration_labels).")
        if len(self.calibration_labels) != len(self.calibration):
            raise EdgepruneError(f"{method}: the calibration batch has {len(self.calibration)} inputs but "
                                 f"{len(self.calibration_labels)} labels.")
        return np.ascontiguousarray(self.calibration), np.ascontiguousarray(self.calibration_labels, dtype=np.int64)


PruneFn = Callable[[nn.Module, float, PruneContext], None]


def l1_magnitude(model: nn.Module, amount: float, ctx: PruneContext) -> None:
    """Global unstructured L1 magnitude pruning of the weights (the lab's method)."""
    global_prune(model, amount)


METHODS: dict[str, PruneFn] = {"l1": l1_magnitude}
METHODS.update({"random": random_unstructured, "wanda": wanda, "2:4": two_four, "lamp": lamp})   # docs/methods.md
METHODS["snip"] = snip
METHODS["movement"] = movement


def get_method(name: str) -> PruneFn:
    if name not in METHODS:
        raise EdgepruneError(f"unknown pruning method {name!r}; known methods: {', '.join(sorted(METHODS))}.")
    return METHODS[name]
