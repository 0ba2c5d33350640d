"""Pruning methods by name. A method prunes `amount` of the remaining weights of a model in place."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
from torch import nn

from harness.errors import EdgepruneError
from harness.pruning.masks import global_prune
from harness.pruning.lamp import lamp
from harness.pruning.nm import two_four
from harness.pruning.random_prune import random_unstructured
from harness.pruning.wanda import wanda


@dataclass
class PruneContext:
    """What a data-aware method may need: a calibration batch of training inputs and a seed."""
    calibration: Optional[np.ndarray] = None
    seed: int = 0


PruneFn = Callable[[nn.Module, float, PruneContext], None]


def l1_magnitude(model: nn.Module, amount: float, ctx: PruneContext) -> None:
    """Global unstructured L1 magnitude pruning of the weights (the lab's method)."""
    global_prune(model, amount)


METHODS: dict[str, PruneFn] = {"l1": l1_magnitude}
METHODS.update({"random": random_unstructured, "wanda": wanda, "2:4": two_four, "lamp": lamp})   # docs/methods.md


def get_method(name: str) -> PruneFn:
    if name not in METHODS:
        raise EdgepruneError(f"unknown pruning method {name!r}; known methods: {', '.join(sorted(METHODS))}.")
    return METHODS[name]
