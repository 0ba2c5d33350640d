"""Which tensors shrink together: found by torch.fx tracing for unknown models, by attributes for attention.

A *group* is one producer (Linear or Conv2d) whose output units can be removed, with everything that must follow:
the BatchNorm on its output, and the input columns/channels of the layers that read it. Its output may pass
through element-wise activations, dropout, pooling and flatten. Anything else on the way (a residual add,
a concat, a reshape, the model's output) couples the units to something we do not slice, so the producer is
left alone: residual-path channels are never pruned (the reason is recorded in `skipped`).
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

# Modules and functions that keep each unit separate (unit i of the output depends only on unit i of the input).
PASSTHROUGH_MODULES = (nn.ReLU, nn.ReLU6, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid, nn.LeakyReLU, nn.ELU, nn.Hardswish,
                       nn.Dropout, nn.Dropout2d, nn.Identity, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d,
                       nn.AdaptiveMaxPool2d, nn.Flatten)
PASSTHROUGH_FUNCTIONS = {torch.relu, F.relu, F.gelu, F.silu, torch.tanh, torch.sigmoid, F.dropout, F.leaky_relu,
                         F.max_pool2d, F.avg_pool2d, F.adaptive_avg_pool2d, torch.flatten}
PASSTHROUGH_METHODS = {"relu", "flatten", "tanh", "sigmoid", "contiguous"}
NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)
RESIDUAL = {operator.add, torch.add, operator.iadd, "add", "add_"}


@dataclass
class Consumer:
    module: str
    factor: int = 1      # input features per unit: > 1 when a flatten spreads a channel over H*W features


@dataclass
class Group:
    """Output units of `producer` (rows of a Linear, filters of a Conv2d) and what must shrink with them."""
    producer: str
    size: int
    norms: list[str] = field(default_factory=list)
    consumers: list[Consumer] = field(default_factory=list)


@dataclass
class HeadGroup:
    """An attention module with q/k/v (d -> n_heads*head_dim) and o (n_heads*head_dim -> d) Linear layers."""
    module: str
    n_heads: int
    head_dim: int


@dataclass
class LayerGroup:
    """A ModuleList of residual blocks (each holding attention): whole blocks can be dropped."""
    module: str
    size: int


def _is_sliceable(module: nn.Module) -> bool:
    return isinstance(module, nn.Linear) or (isinstance(module, nn.Conv2d) and module.groups == 1)


def _is_passthrough(node: torch.fx.Node, modules: dict[str, nn.Module]) -> bool:
    if node.op == "call_module":
        return isinstance(modules[node.target], PASSTHROUGH_MODULES)
    if node.op == "call_function":
        if node.target is torch.flatten:
            return (node.args[1] if len(node.args) > 1 else node.kwargs.get("start_dim", 0)) == 1
        return node.target in PASSTHROUGH_FUNCTIONS
    if node.op == "call_method":
        if node.target == "flatten":
            return (node.args[1] if len(node.args) > 1 else node.kwargs.get("start_dim", 0)) == 1
        return node.target in PASSTHROUGH_METHODS
    return False


def _follow(start: torch.fx.Node, modules: dict[str, nn.Module], size: int) -> tuple[Group | None, str]:
    """Walk every use of `start`'s output; a group when all paths end in sliceable consumers."""
    group = Group(producer=start.target, size=size)
    stack, seen = list(start.users), set()
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        if node.op == "call_module" and isinstance(modules[node.target], NORMS):
            if modules[node.target].num_features != size or len(node.users) == 0:
                return None, "norm width differs"
            group.norms.append(node.target)
            stack.extend(node.users)
        elif node.op == "call_module" and _is_sliceable(modules[node.target]):
            m = modules[node.target]
            width = m.in_features if isinstance(m, nn.Linear) else m.in_channels
            if width % size:
                return None, f"{node.target} reads {width} features from {size} units"
            group.consumers.append(Consumer(node.target, width // size))
        elif _is_passthrough(node, modules):
            stack.extend(node.users)
        elif node.target in RESIDUAL:
            return None, "residual add (coupled with the skip path)"
        elif node.op == "output":
            return None, "model output"
        else:
            return None, f"used by {node.op} {getattr(node.target, '__name__', node.target)}"
    if not group.consumers:
        return None, "no consumer"
    return group, ""


def find_groups(model: nn.Module) -> tuple[list[Group], dict[str, str]]:
    """(groups, skipped producer -> reason), in model order. Needs a model torch.fx can trace."""
    try:
        graph = torch.fx.symbolic_trace(model).graph
    except Exception as exc:   # data-dependent control flow: such models get heads/layers pruning only
        return [], {"<model>": f"not traceable by torch.fx: {type(exc).__name__}"}
    modules = dict(model.named_modules())
    groups, skipped, counted = [], {}, set()
    for node in graph.nodes:
        if node.op != "call_module" or not _is_sliceable(modules[node.target]):
            continue
        if node.target in counted:        # a module called twice shares weights across calls: leave it
            skipped[node.target] = "called more than once"
            groups = [g for g in groups if g.producer != node.target]
            continue
        counted.add(node.target)
        m = modules[node.target]
        group, reason = _follow(node, modules, m.out_features if isinstance(m, nn.Linear) else m.out_channels)
        if group is None:
            skipped[node.target] = reason
        else:
            groups.append(group)
    return groups, skipped


def find_heads(model: nn.Module) -> list[HeadGroup]:
    out = []
    for name, m in model.named_modules():
        if all(hasattr(m, a) for a in ("n_heads", "head_dim", "q", "k", "v", "o")):
            out.append(HeadGroup(name, int(m.n_heads), int(m.head_dim)))
    return out


def find_layers(model: nn.Module) -> list[LayerGroup]:
    heads = [h.module for h in find_heads(model)]
    out = []
    for name, m in model.named_modules():
        if isinstance(m, nn.ModuleList) and len(m) and all(
                any(h.startswith(f"{name}.{i}." if name else f"{i}.") for h in heads) for i in range(len(m))):
            out.append(LayerGroup(name, len(m)))
    return out
