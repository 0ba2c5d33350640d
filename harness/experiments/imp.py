"""Iterative magnitude pruning with rewinding: prune, rewind the survivors to the initial weights, retrain."""

from __future__ import annotations

import torch
from torch import nn

from harness.data import TaskData
from harness.experiments.rounds import pruning_rounds
from harness.experiments.settings import PruneSettings, TrainSettings, task_loss
from harness.experiments.store import load_tensors, train_folder
from harness.experiments.variant import Variant
from harness.training import seed_everything, train


def rewind(model: nn.Module, init_state: dict[str, torch.Tensor]) -> None:
    """Load the initial weights into a masked model: `layers.0.weight` goes to `layers.0.weight_orig`.

    Masks stay as they are, so pruned weights stay zero while the survivors restart from initialisation.
    """
    own = model.state_dict()
    aligned = {}
    for key, value in init_state.items():
        target = key if key in own else key.replace(".weight", ".weight_orig") if key.endswith(".weight") else key
        if target not in own:
            raise KeyError(f"initial weights have {key!r}, the model has no matching parameter")
        aligned[target] = value
    masks = {k: v for k, v in own.items() if k.endswith("_mask")}
    model.load_state_dict({**aligned, **masks})


def imp_with_rewinding(root, ts: TrainSettings, ps: PruneSettings, rounds: int, task: TaskData,
                       quiet: bool = False) -> list[Variant]:
    """Iterations 0..rounds; each round prunes, rewinds the survivors to init.pt and retrains from there."""
    init_state = None

    def rewind_and_retrain(model: nn.Module, it: int) -> dict:
        nonlocal init_state
        if init_state is None:
            init_state = load_tensors(train_folder(root, ts) / "init.pt")
        rewind(model, init_state)
        seed_everything(ts.seed)
        return {"train": train(model, task.train_x, task.train_y, ts.train_config, seed=ts.seed,
                               label=f"imp {ps.method} round {it}/{rounds}", quiet=quiet,
                               loss_fn=task_loss(task))}

    return pruning_rounds(root, ts, ps, rounds, task, "imp", after_prune=rewind_and_retrain, quiet=quiet)
