"""Structured pruning that physically removes structure (Torch-Pruning's split, with Torch-Pruning as the engine):

- `dependency`: which tensors must shrink together (Torch-Pruning's dependency graph for widths; attention heads
  and removable layers by module attributes),
- `importance`: how much each unit of a group matters (L1/L2 group norms, first-order Taylor, random),
- `pruner`: a plan (kept units per group, skipped groups with reasons, dropped layers), its checks, and applying it.

A plan is JSON, so a pruned variant is rebuilt from its run folder as base model + plan + weights_only state.
"""

from harness.structured.dependency import (Group, HeadGroup, LayerGroup, as_example, dependency_graph, find_groups,
                                           find_heads, find_layers)
from harness.structured.importance import IMPORTANCE, group_scores, head_scores, layer_scores
from harness.structured.pruner import (KINDS, SCOPES, apply_plan, check_group, plan_structured, prune_structured,
                                       structure_ratio)

__all__ = ["Group", "HeadGroup", "LayerGroup", "as_example", "dependency_graph", "find_groups", "find_heads",
           "find_layers", "IMPORTANCE", "group_scores", "head_scores", "layer_scores", "KINDS", "SCOPES",
           "apply_plan", "check_group", "plan_structured", "prune_structured", "structure_ratio"]
