"""Training loop shared by every experiment: Adam, shuffled mini-batches, fixed seeds, progress on stderr (a bar
per run on a terminal, a line per epoch in a log; runners.progress).

Callbacks (OpenLTH's training hooks) let a caller watch or record training without a loop of its own: e.g. movement
pruning accumulates -grad * w after every backward pass. Without callbacks the loop runs exactly as before.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Callable, Sequence, Union

import numpy as np
import torch
from torch import nn

from harness.device import model_on
from runners.progress import Progress


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 2
    batch_size: int = 64
    lr: float = 0.001
    optimizer: str = "adam"       # a key of OPTIMIZERS
    schedule: str = "constant"    # a key of SCHEDULES: the learning rate over the run's steps


# Optimizer name -> (parameters, lr) -> optimizer. Adam is the lab's; SGD with momentum 0.9 is the CNN classic.
OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "adam": lambda params, lr: torch.optim.Adam(params, lr=lr),
    "adamw": lambda params, lr: torch.optim.AdamW(params, lr=lr),
    "sgd": lambda params, lr: torch.optim.SGD(params, lr=lr, momentum=0.9),
}


# Schedule name -> (optimizer, total steps) -> a per-step scheduler, or None for a constant learning rate (the lab's).
# Cosine decays the rate to zero over the run's steps: a small net that keeps a high rate to its last step ends on a
# noisy point (examples/small_cnn.py: dense 96.89% constant, 98.40% cosine, full profile, seed 0).
SCHEDULES: dict[str, Callable[[torch.optim.Optimizer, int], torch.optim.lr_scheduler.LRScheduler | None]] = {
    "constant": lambda optimizer, steps: None,
    "cosine": lambda optimizer, steps: torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(steps, 1)),
}


class TrainCallback:
    """Hooks called by `train` at fixed points; override the ones you need (each default does nothing).

    A callback must not change the model, the gradients or any random state unless it means to change the run.
    """

    def after_backward(self, model: nn.Module, step: int, loss: torch.Tensor) -> None:
        """This mini-batch's gradients are in `.grad`, the optimizer has not stepped yet; `step` counts from 0 over
        the whole run and `loss` is the batch's loss (detached)."""

    def end_of_epoch(self, model: nn.Module, epoch: int, steps: int) -> None:
        """After the last step of `epoch` (from 0); `steps` done so far."""

    def end_of_training(self, model: nn.Module, steps: int) -> None:
        """After the last epoch, with the model already in eval mode, as `train` returns it."""


@dataclass(frozen=True)
class AfterBackward(TrainCallback):
    """A plain function `fn(model, step, loss)` as a callback; `train` wraps functions it is given in this."""
    fn: Callable[[nn.Module, int, torch.Tensor], None]

    def after_backward(self, model: nn.Module, step: int, loss: torch.Tensor) -> None:
        self.fn(model, step, loss)


Callback = Union[TrainCallback, Callable[[nn.Module, int, torch.Tensor], None]]
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def train(model: nn.Module, x: np.ndarray, y: np.ndarray, cfg: TrainConfig, seed: int,
          label: str = "train", quiet: bool = False, callbacks: Sequence[Callback] = (),
          loss_fn: LossFn | None = None) -> dict:
    """Train in place on `current_device()` (the model comes back on the CPU); returns {'steps', 'seconds',
    'final_loss', 'device', 'torch_threads'}. Same seed + data + device + threads -> same weights, with or without
    callbacks that only observe (see `TrainCallback`; a plain function is called after each backward; callbacks
    see the model on the training device). `loss_fn(logits, labels)` defaults to cross-entropy."""
    hooks = [c if isinstance(c, TrainCallback) else AfterBackward(c) for c in callbacks]
    generator = torch.Generator().manual_seed(seed)     # the batch order is drawn on the CPU on every device
    inputs, targets = torch.from_numpy(x), torch.from_numpy(y)
    loss_fn = loss_fn if loss_fn is not None else nn.CrossEntropyLoss()
    n = len(inputs)
    steps_per_epoch = (n + cfg.batch_size - 1) // cfg.batch_size
    start, steps, loss_value = time.perf_counter(), 0, float("nan")
    # leave=False: a training run is often a sub-step (an IMP round, a fine-tune) whose own line says how it ended.
    with model_on(model) as device, Progress(label, total=cfg.epochs * steps_per_epoch, unit="step", quiet=quiet,
                                              leave=False) as progress:
        optimizer = OPTIMIZERS[cfg.optimizer]([p for p in model.parameters() if p.requires_grad], cfg.lr)
        scheduler = SCHEDULES[cfg.schedule](optimizer, cfg.epochs * steps_per_epoch)
        model.train()
        for epoch in range(cfg.epochs):
            order = torch.randperm(n, generator=generator)
            running = 0.0
            for i in range(steps_per_epoch):
                idx = order[i * cfg.batch_size : (i + 1) * cfg.batch_size]
                optimizer.zero_grad(set_to_none=True)
                loss = loss_fn(model(inputs[idx].to(device)), targets[idx].to(device))
                loss.backward()
                for hook in hooks:
                    hook.after_backward(model, steps, loss.detach())
                optimizer.step()
                if scheduler is not None:
                    scheduler.step()
                running += loss.item()
                steps += 1
                progress.update(1, status=f"epoch {epoch + 1}/{cfg.epochs} loss {running / (i + 1):.4f}")
            loss_value = running / max(steps_per_epoch, 1)
            progress.finished(f"  {label}: epoch {epoch + 1}/{cfg.epochs} loss {loss_value:.4f}")
            for hook in hooks:
                hook.end_of_epoch(model, epoch, steps)
    model.eval()
    for hook in hooks:
        hook.end_of_training(model, steps)
    return {"steps": steps, "seconds": time.perf_counter() - start, "final_loss": loss_value,
            "device": device.type, "torch_threads": torch.get_num_threads()}
