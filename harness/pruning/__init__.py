"""Unstructured pruning: masks as values over torch.nn.utils.prune, and a registry of methods."""

from harness.pruning.masks import apply_masks, masks_of, global_prune
from harness.pruning.registry import METHODS, get_method, PruneContext

__all__ = ["apply_masks", "masks_of", "global_prune", "METHODS", "get_method", "PruneContext"]
