"""Model registry: a name maps to a builder taking the task's data description."""

from harness.models.registry import build_model, MODELS

__all__ = ["build_model", "MODELS"]
