"""The lab's feed-forward classifier, with the parameter names its examples assume."""

from __future__ import annotations

import torch
from torch import nn


class FFN(nn.Module):
    """input -> [Linear -> ReLU] x hidden_layers -> Linear; names layers.0.weight, ..., out.weight."""

    def __init__(self, in_features: int = 400, hidden: int = 1024, hidden_layers: int = 2, num_classes: int = 10,
                 hidden_sizes: list[int] | None = None):
        super().__init__()
        sizes = list(hidden_sizes) if hidden_sizes is not None else [hidden] * hidden_layers
        widths = [in_features, *sizes]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.out = nn.Linear(widths[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        for layer in self.layers:
            x = torch.relu(layer(x))
        return self.out(x)
