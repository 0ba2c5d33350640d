"""`make export`: the configured experiments for each seed, ONNX export of every variant, the bundle."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from harness.data import TaskData, load_task
from harness.errors import EdgepruneError
from harness.experiments.baseline import trained_baseline
from harness.experiments.imp import imp_with_rewinding
from harness.experiments.repeated import repeated_pruning
from harness.experiments.settings import PROFILES, PruneSettings, TrainSettings
from harness.experiments.variant import Variant


def run_baseline(root, ts, task, profile, quiet) -> list[Variant]:
    return [trained_baseline(root, ts, task, quiet)]


def run_repeated(root, ts, task, profile, quiet) -> list[Variant]:
    return repeated_pruning(root, ts, PruneSettings(method="l1"), profile.rounds, task, quiet)


def run_imp(root, ts, task, profile, quiet) -> list[Variant]:
    return imp_with_rewinding(root, ts, PruneSettings(method="l1"), profile.rounds, task, quiet)


# Experiment name -> runner of that experiment for one task and seed. Adding one is a function and a line here.
EXPERIMENTS: dict[str, Callable[..., list[Variant]]] = {
    "baseline": run_baseline,
    "repeated": run_repeated,
    "imp": run_imp,
}
DEFAULT_EXPERIMENTS = ("baseline", "repeated", "imp")
TASK_MODELS = {"mnist": "ffn"}


@dataclass
class ExportSettings:
    profile: str = "full"
    seeds: int = 1
    tasks: tuple[str, ...] = ("mnist",)
    experiments: tuple[str, ...] = DEFAULT_EXPERIMENTS
    data_dir: Path | None = None
    runs_dir: Path = Path("runs")
    quiet: bool = False


def run_experiments(settings: ExportSettings) -> list[tuple[Variant, TaskData]]:
    if settings.profile not in PROFILES:
        raise EdgepruneError(f"unknown profile {settings.profile!r}; use one of {', '.join(PROFILES)}.")
    unknown = [e for e in settings.experiments if e not in EXPERIMENTS]
    if unknown:
        raise EdgepruneError(f"unknown experiment {unknown[0]!r}; known: {', '.join(EXPERIMENTS)}.")
    profile = PROFILES[settings.profile]
    out: list[tuple[Variant, TaskData]] = []
    for task_name in settings.tasks:
        task = load_task(task_name, settings.data_dir, profile.train_limit, profile.eval_limit)
        for seed in range(settings.seeds):
            ts = TrainSettings(task=task_name, model=TASK_MODELS[task_name], epochs=profile.epochs, seed=seed,
                               train_limit=profile.train_limit, eval_limit=profile.eval_limit)
            seen = set()
            for name in settings.experiments:
                if not settings.quiet:
                    print(f"[{task_name} seed {seed}] {name}", file=sys.stderr)
                for variant in EXPERIMENTS[name](settings.runs_dir, ts, task, profile, settings.quiet):
                    if variant.name not in seen:
                        seen.add(variant.name)
                        out.append((variant, task))
    return out
