"""Datasets: each task returns a `TaskData` of preprocessed tensors (see registry)."""

from harness.data.registry import TaskData, load_task, resolve_data_dir

__all__ = ["TaskData", "load_task", "resolve_data_dir"]
