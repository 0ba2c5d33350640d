"""Training loop shared by every experiment: Adam, shuffled mini-batches, fixed seeds, progress on stderr."""

from __future__ import annotations

import random
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 2
    batch_size: int = 64
    lr: float = 0.001


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def train(model: nn.Module, x: np.ndarray, y: np.ndarray, cfg: TrainConfig, seed: int,
          label: str = "train", quiet: bool = False) -> dict:
    """Train in place; returns {'steps', 'seconds', 'final_loss'}. Same seed + data -> same weights."""
    generator = torch.Generator().manual_seed(seed)
    inputs, targets = torch.from_numpy(x), torch.from_numpy(y)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.lr)
    loss_fn = nn.CrossEntropyLoss()
    n = len(inputs)
    steps_per_epoch = (n + cfg.batch_size - 1) // cfg.batch_size
    start, steps, loss_value = time.perf_counter(), 0, float("nan")
    model.train()
    for epoch in range(cfg.epochs):
        order = torch.randperm(n, generator=generator)
        running = 0.0
        for i in range(steps_per_epoch):
            idx = order[i * cfg.batch_size : (i + 1) * cfg.batch_size]
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(inputs[idx]), targets[idx])
            loss.backward()
            optimizer.step()
            running += loss.item()
            steps += 1
            if not quiet and (i % 200 == 0 or i == steps_per_epoch - 1):
                print(f"\r  {label}: epoch {epoch + 1}/{cfg.epochs} step {i + 1}/{steps_per_epoch} "
                      f"loss {running / (i + 1):.4f}", end="", file=sys.stderr, flush=True)
        loss_value = running / max(steps_per_epoch, 1)
        if not quiet:
            print(file=sys.stderr)
    model.eval()
    return {"steps": steps, "seconds": time.perf_counter() - start, "final_loss": loss_value}
