"""A model variant on disk: weights (masks folded in), masks, and the metrics every table reads."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from harness import metrics
from harness.data import TaskData
from harness.errors import EdgepruneError
from harness.experiments.store import load_tensors, read_json, save_tensors
from harness.io import write_json
from harness.models import build_model
from harness.pruning import apply_masks, masks_of
from harness.storage import storage_sizes


@dataclass
class Variant:
    name: str
    task: str
    experiment: str
    method: str
    iteration: int
    seed: int
    model: dict                      # {"name": "ffn", "kwargs": {...}, "plan"?: structured plan}: the architecture
    metrics: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)   # experiment-specific keys copied into the manifest
    folder: Path | None = None

    def to_json(self) -> dict:
        data = dataclasses.asdict(self)
        data.pop("folder")
        return data

    def build(self, task: TaskData, with_masks: bool = False) -> nn.Module:
        """Rebuild the model with its trained weights; `with_masks` re-attaches the pruning masks."""
        model = build_architecture(self.model, task)
        if self.model.get("plan"):   # structured pruning: slice the base architecture before loading weights
            from harness.structured import apply_plan
            apply_plan(model, self.model["plan"], example=task.train_x[:2])
        model.load_state_dict(load_tensors(self.folder / "state.pt"))
        if with_masks and (self.folder / "masks.pt").exists():
            apply_masks(model, load_tensors(self.folder / "masks.pt"))
        return model.eval()


def build_architecture(model: dict, task: TaskData) -> nn.Module:
    """The untrained architecture a run names: a built-in model from harness.models, or a user's own model, which
    its task brings (harness.plugins makes that task from the module the run's `spec` names)."""
    if task.model_factory is not None:
        return task.model_factory()
    if "spec" in model.get("kwargs", {}):
        raise EdgepruneError(f"model {model['name']!r} comes from the user module {model['kwargs']['spec']!r}; "
                             f"build it with the task harness.plugins.load_plugin makes from that module.")
    return build_model(model["name"], task, **model.get("kwargs", {}))


def is_finished(folder: Path) -> bool:
    return (folder / "variant.json").exists()


def load_variant(folder: Path) -> Variant:
    data = read_json(folder / "variant.json")
    return Variant(**data, folder=folder)


def describe(model: nn.Module, task: TaskData) -> dict:
    """Every host metric of a (possibly masked) model, each computed by its one function in harness.metrics."""
    params, nonzero = metrics.count_parameters(model)
    plain = metrics.without_reparametrization(model)
    return {
        "accuracy": metrics.accuracy(model, task.eval_x, task.eval_y),
        "params": params,
        "nonzero_params": nonzero,
        "sparsity": metrics.calculate_sparsity_pruned(model),
        "sparsity_overall": metrics.calculate_sparsity_overall(model),
        "sparsity_per_parameter": metrics.calculate_sparsity_per_parameter(model),
        "host_latency_ms": metrics.host_latency_ms(plain, task.eval_x[:1]),
        "state_dict_bytes": metrics.state_dict_size(plain),
        "state_dict_bytes_with_masks": metrics.state_dict_size(model),
        "storage": storage_sizes(model),
    }


def save_variant(variant: Variant, model: nn.Module, task: TaskData, folder: Path, **extra_metrics) -> Variant:
    """Write weights, masks and metrics; variant.json goes last so its presence marks the folder finished."""
    folder.mkdir(parents=True, exist_ok=True)
    save_tensors(folder / "state.pt", metrics.without_reparametrization(model).state_dict())
    save_tensors(folder / "masks.pt", masks_of(model))
    variant.metrics = {**describe(model, task), **extra_metrics}
    variant.folder = folder
    write_json(folder / "variant.json", variant.to_json())
    return variant
