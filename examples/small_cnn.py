"""A user module for `harness export --model examples/small_cnn.py:build`: a small CNN on 1x20x20 MNIST images.

Nothing in edgeprune is edited for it: `build()` returns the model and the data, edgeprune trains, prunes
(repeated global magnitude pruning of the Conv and Linear weights), exports ONNX and bundles it.
`build_synthetic()` returns the same model on generated images (no data files), for tests and demos.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class ResidualBlock(nn.Module):
    """conv-bn-relu-conv-bn, plus the input (the add that structured pruning must keep aligned)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(x + self.bn2(self.conv2(y)))


class SmallCNN(nn.Module):
    def __init__(self, num_classes: int = 10, channels: int = 16):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels),
                                  nn.ReLU())
        self.block = ResidualBlock(channels)
        self.down = nn.Sequential(nn.Conv2d(channels, 2 * channels, 3, stride=2, padding=1, bias=False),
                                  nn.BatchNorm2d(2 * channels), nn.ReLU())
        self.fc = nn.Linear(2 * channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.down(self.block(self.stem(x)))
        return self.fc(x.mean(dim=(2, 3)))       # global average pooling


def build(data_dir=None) -> dict:
    """MNIST through edgeprune's loader (EDGEPRUNE_DATA / --data-dir, else the user cache), as 1x20x20 images."""
    from harness.data import load_task, resolve_data_dir

    mnist = load_task("mnist", data_dir or resolve_data_dir(None))
    torch.manual_seed(0)
    return {
        "name": "mnist-cnn",
        "model": SmallCNN(num_classes=10),
        "train": (mnist.train_x.reshape(-1, 1, 20, 20), mnist.train_y),
        "eval": (mnist.eval_x.reshape(-1, 1, 20, 20), mnist.eval_y),
        "num_classes": 10,
        "description": "MNIST test split, 20x20 centre crop as 1x20x20 images, pixels in [0, 1]",
    }


def build_synthetic(n_train: int = 512, n_eval: int = 128) -> dict:
    """Four textures plus noise (flat, horizontal stripes, vertical stripes, checkerboard): no files needed."""
    rng = np.random.default_rng(0)
    rows, cols = np.indices((20, 20))
    templates = np.stack([np.full((20, 20), 0.5), rows % 2, cols % 2, (rows + cols) % 2]).astype(np.float32)

    def sample(n: int):
        y = rng.integers(0, len(templates), n)
        x = templates[y][:, None] + 0.3 * rng.standard_normal((n, 1, 20, 20))
        return x.astype(np.float32), y.astype(np.int64)

    torch.manual_seed(0)
    return {"name": "synthetic-cnn", "model": SmallCNN(num_classes=len(templates), channels=8),
            "train": sample(n_train), "eval": sample(n_eval), "num_classes": len(templates),
            "description": "synthetic 1x20x20 textures (flat, stripes, checkerboard) plus gaussian noise"}
