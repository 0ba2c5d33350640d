"""A ResNet-style network for `harness export --model examples/resnet_mnist.py:build`, in plain torch.

Basic blocks (conv3x3-bn-relu, conv3x3-bn, plus the shortcut, relu) in three stages of two blocks, 32/64/128
channels; the first block of stages 2 and 3 halves the resolution and widens the channels, so its shortcut is a
projection (conv1x1-bn), as in He et al. 2016. Written without torchvision, whose wheels do not install beside
edgeprune's pinned CPU torch.

Structured pruning goes through the dependency graph: each stage's block outputs and shortcuts share their channels
(the residual adds tie them), so a stage's width is one group, and every block's inner width is another.
`build_small()` is the same network on a fixed MNIST subset (CI); `build_synthetic()` needs no data files.
"""

from __future__ import annotations

import torch
from torch import nn


def conv_bn(cin: int, cout: int, kernel: int = 3, stride: int = 1, relu: bool = True) -> nn.Sequential:
    layers = [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False), nn.BatchNorm2d(cout)]
    return nn.Sequential(*layers, nn.ReLU()) if relu else nn.Sequential(*layers)


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = conv_bn(cin, cout, 3, stride)
        self.conv2 = conv_bn(cout, cout, 3, 1, relu=False)
        projection = stride != 1 or cin != cout
        self.shortcut = conv_bn(cin, cout, 1, stride, relu=False) if projection else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv2(self.conv1(x)) + self.shortcut(x))


class ResNet(nn.Module):
    def __init__(self, widths: tuple[int, ...] = (32, 64, 128), blocks_per_stage: int = 2, num_classes: int = 10):
        super().__init__()
        self.stem = conv_bn(1, widths[0])
        blocks, cin = [], widths[0]
        for stage, width in enumerate(widths):
            for i in range(blocks_per_stage):
                blocks.append(BasicBlock(cin, width, 2 if stage > 0 and i == 0 else 1))
                cin = width
        self.stages = nn.Sequential(*blocks)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.stages(self.stem(x)).mean(dim=(2, 3)))      # global average pooling


def _result(name: str, data: dict, plan: dict | None = None, **model_kwargs) -> dict:
    torch.manual_seed(0)
    return {"name": name, "model": ResNet(num_classes=data["num_classes"], **model_kwargs), **data,
            # SGD with momentum is the usual ResNet optimizer; a higher rate than Adam's suits it. Batches of 32
            # give the quick profile's one epoch twice the lab's steps.
            "training": {"optimizer": "sgd", "lr": 0.05, "batch_size": 32}, **({"plan": plan} if plan else {})}


def build(data_dir=None) -> dict:
    from harness.plugins import mnist_images

    return _result("mnist-resnet", mnist_images(data_dir))


def build_small(data_dir=None) -> dict:
    """CI's run on real MNIST: 1,000 training and 300 eval images, one structured ratio (50%, the one the issue's
    speed and MACs criteria name); the other ratios go through the same code, which the small CNN's test covers."""
    from harness.plugins import mnist_images

    return _result("mnist-resnet-small", mnist_images(data_dir, 1000, 300), plan={"structured_ratios": (0.5,)})


def build_synthetic() -> dict:
    from harness.plugins import synthetic_images

    return _result("synthetic-resnet", synthetic_images(), widths=(8, 16))
