"""Which tensors shrink together: Torch-Pruning's dependency graph (DepGraph) for channels and hidden units, module
attributes for attention heads and removable layers.

A *group* is every tensor dimension that loses the same units when one layer (the root) loses output units: the
BatchNorm/LayerNorm on that output, the input columns or channels of every layer that reads it, and, through residual
adds, concatenations, depthwise convolutions, flatten, pooling and `.mean`, every other layer tied to it (all of a
residual stage's convolutions form one group). Torch-Pruning finds groups by tracing autograd on an example batch;
edgeprune names their members (a plan is JSON), says which layers produce the units, and leaves the decision of
whether a group may be pruned to the pruner (harness.structured.pruner).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
import torch_pruning as tp
from torch import nn

CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
# Output units of which layers a structure kind removes (each is the root of one group).
ROOT_TYPES = {"neurons": (nn.Linear,), "channels": (*CONV, nn.Linear)}


@dataclass
class Member:
    """One pruned dimension of a named module: its output units ("out") or its inputs ("in")."""
    module: str
    dim: str
    type: str
    width: int                      # the dimension's size before pruning


@dataclass
class Group:
    """The output units of `root` and every named dimension that must lose the same units."""
    root: str
    size: int                        # units of the root's output
    members: list[Member] = field(default_factory=list)
    channel_groups: int = 1          # a grouped convolution in the group: units repeat once per conv group
    reaches_output: bool = False     # the units are (part of) the model's output

    @property
    def producers(self) -> list[str]:
        """Layers that compute these units from all of their inputs (Conv with groups=1 or grouped, Linear):
        more than one means the units are shared through a residual add (or another element-wise join)."""
        return [m.module for m in self.members if m.dim == "out" and m.type in ("Linear", "Conv")]

    @property
    def coupled(self) -> bool:
        return len(self.producers) > 1


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


def as_example(example) -> torch.Tensor:
    """A torch batch from numpy rows (at least two, so no size-1 batch dimension is special-cased while tracing)."""
    x = torch.from_numpy(np.ascontiguousarray(example)) if isinstance(example, np.ndarray) else example
    return x if len(x) >= 2 else torch.cat([x, x])


def dependency_graph(model: nn.Module, example) -> tp.DependencyGraph:
    """Torch-Pruning's graph of `model` traced on `example` (autograd must be on; the model is put in eval mode)."""
    with torch.enable_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")      # unknown ops and unwrapped parameters: the pruner checks groups itself
        return tp.DependencyGraph().build_dependency(model, example_inputs=as_example(example), verbose=False)


def _member(dg: tp.DependencyGraph, dep, idxs) -> Member | None:
    module = dep.target.module
    name = dg._module2name.get(module)
    if name is None or not isinstance(module, nn.Module):
        return None                          # an operation (add, relu, reshape), not a layer with weights
    dim = "out" if dg.is_out_channel_pruning_fn(dep.handler) else "in"
    kind = ("Conv" if module.groups == 1 else "GroupedConv" if module.groups < module.in_channels else
            "DepthwiseConv") if isinstance(module, CONV) else type(module).__name__
    width = dg.get_out_channels(module) if dim == "out" else dg.get_in_channels(module)
    return Member(name, dim, kind, int(width) if width is not None else len(idxs))


def describe_group(dg: tp.DependencyGraph, group) -> Group:
    root = group[0].dep.target.module
    out = Group(root=dg._module2name[root], size=len(group[0].idxs))
    seen = set()
    for dep, idxs in group:
        if dep.target.type == tp.ops.OPTYPE.OUTPUT or (dg.is_out_channel_pruning_fn(dep.handler)
                                                       and not dep.target.outputs):
            out.reaches_output = True        # nothing reads these units: they are what the model returns
        member = _member(dg, dep, idxs)
        if member is not None and (member.module, member.dim) not in seen:
            seen.add((member.module, member.dim))
            out.members.append(member)
        module = dep.target.module
        if isinstance(module, CONV) and 1 < module.groups < module.in_channels:
            out.channel_groups = max(out.channel_groups, module.groups)
    return out


def find_groups(model: nn.Module, example, kind: str = "channels") -> tuple[list[Group], tp.DependencyGraph]:
    """Every group whose root is a layer of `kind` (ROOT_TYPES), in the model's order, and the graph they come from.
    Groups include those the pruner will refuse (the classifier, coupled groups): it says why."""
    dg = dependency_graph(model, example)
    groups = [describe_group(dg, g) for g in dg.get_all_groups(root_module_types=ROOT_TYPES[kind])]
    order = {name: i for i, (name, _) in enumerate(model.named_modules())}
    return sorted(groups, key=lambda g: order.get(g.root, len(order))), dg


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
