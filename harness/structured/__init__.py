"""Structured pruning that physically removes structure (Torch-Pruning's split):

- `dependency`: which tensors must shrink together (neuron/channel groups, attention heads, removable layers),
- `importance`: how much each unit of a group matters (L1/L2 norms of its weights),
- `pruner`: a plan (kept indices per group, dropped layers) and the slicing that applies it.

A plan is JSON, so a pruned variant is rebuilt from its run folder as base model + plan + weights_only state.
"""

from harness.structured.dependency import Group, HeadGroup, LayerGroup, find_groups, find_heads, find_layers
from harness.structured.importance import IMPORTANCE, group_scores, head_scores, layer_scores
from harness.structured.pruner import KINDS, apply_plan, plan_structured, prune_structured, structure_ratio

__all__ = ["Group", "HeadGroup", "LayerGroup", "find_groups", "find_heads", "find_layers", "IMPORTANCE",
           "group_scores", "head_scores", "layer_scores", "KINDS", "apply_plan", "plan_structured",
           "prune_structured", "structure_ratio"]
