"""Repeated pruning: prune `amount` of the remaining weights each round, no retraining, no reset."""

from __future__ import annotations

from harness.data import TaskData
from harness.experiments.rounds import pruning_rounds
from harness.experiments.settings import PruneSettings, TrainSettings
from harness.experiments.variant import Variant


def repeated_pruning(root, ts: TrainSettings, ps: PruneSettings, rounds: int, task: TaskData,
                     quiet: bool = False) -> list[Variant]:
    """Iterations 0..rounds; iteration k has 1 - (1 - amount)^k of the prunable weights removed."""
    return pruning_rounds(root, ts, ps, rounds, task, "repeated", quiet=quiet)
