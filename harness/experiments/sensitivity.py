"""Sensitivity analysis: prune one component group at a time, at several ratios, and measure accuracy without
fine-tuning. Unstructured (L1 within the group) and structured (neurons/heads of the group) side by side.

Rows are cached in the baseline's run folder, in a folder named by the settings (content-addressed).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
from torch import nn
from torch.nn.utils import prune

from harness import metrics
from harness.data import TaskData
from harness.device import compute_facts, current_device
from harness.experiments.baseline import trained_baseline
from harness.experiments.settings import TrainSettings
from harness.experiments.store import ensure_config, experiment_folder, read_json
from harness.io import write_json
from harness.structured import find_heads, find_layers, plan_structured, prune_structured
from runners.progress import Progress

SCHEMA = "edgeprune.sensitivity/1"


@dataclass(frozen=True)
class SensitivitySettings:
    ratios: tuple[float, ...] = (0.25, 0.5, 0.75, 0.9)
    kinds: tuple[str, ...] = ("unstructured", "structured")
    importance: str = "l1"


@dataclass
class ComponentGroup:
    """Weights pruned together, and the structures (kind, module names) removed in its structured form."""
    name: str
    weights: list[str]                                # Linear/Conv/Embedding module names
    structures: list[tuple[str, set[str]]] = field(default_factory=list)
    scope: str = "component"                         # component | layer (one layer alone) | depth (a half)
    layer_index: int | None = None


def component_groups(model: nn.Module) -> list[ComponentGroup]:
    """Transformer: embeddings, attention, feed-forward, each layer alone, earlier and later half of the layers.
    Other models (FFN, CNN): each Linear/Conv layer alone."""
    modules = dict(model.named_modules())
    lists = find_layers(model)
    if not lists:
        layers = [n for n, m in modules.items() if isinstance(m, (nn.Linear, nn.Conv2d))]
        return [ComponentGroup(n, [n], [("neurons" if isinstance(modules[n], nn.Linear) else "channels", {n})],
                               scope="layer", layer_index=i) for i, n in enumerate(layers)]
    blocks = lists[0].module
    attention = {h.module for h in find_heads(model)}
    in_attention = lambda n: any(n.startswith(a + ".") for a in attention)   # noqa: E731
    linear = [n for n, m in modules.items() if isinstance(m, nn.Linear) and n.startswith(blocks + ".")]
    ff = [n for n in linear if not in_attention(n)]
    groups = [ComponentGroup("embeddings", [n for n, m in modules.items() if isinstance(m, nn.Embedding)]),
              ComponentGroup("attention", [n for n in linear if in_attention(n)], [("heads", attention)]),
              ComponentGroup("feed-forward", ff, [("neurons", set(ff))])]

    def of_layers(name, idx, scope, layer_index=None):
        prefixes = tuple(f"{blocks}.{i}." for i in idx)
        return ComponentGroup(name, [n for n in linear if n.startswith(prefixes)],
                              [("heads", {a for a in attention if a.startswith(prefixes)}),
                               ("neurons", {n for n in ff if n.startswith(prefixes)})], scope, layer_index)

    n_layers = lists[0].size
    groups += [of_layers(f"layer {i}", [i], "layer", i) for i in range(n_layers)]
    # A half of one layer is that layer's group again (a 2-layer model's heat map repeated its rows), so a half
    # becomes a group only when it spans two layers or more.
    half = n_layers // 2
    groups += [of_layers(name, idx, "depth") for name, idx in (("earlier layers", range(half)),
                                                                ("later layers", range(half, n_layers)))
               if len(idx) >= 2]
    return groups


def _prune_unstructured(model: nn.Module, group: ComponentGroup, ratio: float) -> tuple[nn.Module, int]:
    pruned = copy.deepcopy(model)
    targets = [(pruned.get_submodule(n), "weight") for n in group.weights]
    prune.global_unstructured(targets, pruning_method=prune.L1Unstructured, amount=ratio)
    removed = sum(int((m.weight_mask == 0).sum()) for m, _ in targets)
    for m, p in targets:
        prune.remove(m, p)
    return pruned, removed


def _prune_structured(model: nn.Module, group: ComponentGroup, ratio: float, importance: str,
                      example: np.ndarray) -> nn.Module:
    pruned = model
    for kind, names in group.structures:   # heads first, then neurons: names refer to the unpruned model
        if names:
            pruned, _ = prune_structured(pruned, kind, ratio, importance, select=names.__contains__, example=example)
    return pruned if pruned is not model else copy.deepcopy(model)


def _structurable(model: nn.Module, group: ComponentGroup, example: np.ndarray) -> bool:
    """Whether the group has units the pruner may remove (a model's output layer, e.g., has none)."""
    for kind, names in group.structures:
        plan = plan_structured(model, kind, 0.5, select=names.__contains__, example=example) if names else {}
        if plan.get("groups") or plan.get("heads"):
            return True
    return False


def sensitivity_rows(model: nn.Module, task: TaskData, model_name: str, ss: SensitivitySettings,
                     quiet: bool = True) -> list[dict]:
    device = current_device()           # every accuracy of the analysis on one device, the baseline's too
    baseline = metrics.accuracy(model, task.eval_x, task.eval_y, device)
    total = metrics.count_parameters(model)[0]
    example = task.train_x[:16]
    groups = component_groups(model)
    rows = []
    with Progress(f"sensitivity {model_name}", total=len(groups), unit="group", quiet=quiet) as progress:
        for group in groups:
            group_params = sum(model.get_submodule(n).weight.numel() for n in group.weights)
            for kind in ss.kinds:
                if not group.weights or kind == "structured" and not _structurable(model, group, example):
                    continue
                for ratio in ss.ratios:
                    if kind == "unstructured":
                        pruned, removed = _prune_unstructured(model, group, ratio)
                    else:
                        pruned = _prune_structured(model, group, ratio, ss.importance, example)
                        removed = total - metrics.count_parameters(pruned)[0]
                    rows.append({"task": task.name, "model": model_name, "group": group.name, "kind": kind,
                                 "ratio": ratio,
                                 "accuracy": metrics.accuracy(pruned, task.eval_x, task.eval_y, device),
                                 "baseline_accuracy": baseline, "params_removed": removed,
                                 "group_params": group_params, "scope": group.scope,
                                 "layer_index": group.layer_index})
            progress.update(1)
            progress.finished(f"  sensitivity {model_name}: {group.name}")
    return rows


def sensitivity_path(root, ts: TrainSettings, ss: SensitivitySettings):
    """The rows' file; it is written last and at once, so its presence marks the analysis finished."""
    return experiment_folder(root, ts, "sensitivity", ss) / "sensitivity.json"


def sensitivity_analysis(root, ts: TrainSettings, task: TaskData, ss: SensitivitySettings = SensitivitySettings(),
                         quiet: bool = False) -> list[dict]:
    """Rows for the trained baseline of `ts`, computed once per settings and read back afterwards."""
    path = sensitivity_path(root, ts, ss)
    folder = path.parent
    if path.exists():
        return read_json(path)["rows"]
    base = trained_baseline(root, ts, task, quiet)
    ensure_config(folder, ss)
    rows = sensitivity_rows(base.build(task), task, ts.model, ss, quiet)
    for row in rows:
        row["seed"] = ts.seed
    write_json(path, {"schema": SCHEMA, "rows": rows, "compute": compute_facts()})
    return rows
