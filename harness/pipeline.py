"""`make export`: the configured experiments for each seed, ONNX export of every variant, the bundle."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from harness.data import TaskData, load_task
from harness.errors import EdgepruneError
from harness.experiments.baseline import trained_baseline
from harness.experiments.imp import imp_with_rewinding
from harness.experiments.repeated import repeated_pruning
from harness.experiments.sensitivity import sensitivity_analysis
from harness.experiments.structured import structured_pruning
from harness.experiments.settings import PROFILES, PruneSettings, TrainSettings
from harness.experiments.variant import Variant
from harness.plans import DEFAULT_TASKS, PLANS, TaskPlan
from harness.seeds import DEFAULT_SEED_STREAMS
from runners.progress import Progress


def run_baseline(root, ts, task, plan: TaskPlan, profile, quiet) -> list[Variant]:
    return [trained_baseline(root, ts, task, quiet)]


def run_repeated(root, ts, task, plan: TaskPlan, profile, quiet) -> list[Variant]:
    return [v for s in plan.repeated for v in
            repeated_pruning(root, ts, PruneSettings(method=s.method, amount=plan.amount),
                             plan.rounds_for(s, profile), task, quiet)]


def run_imp(root, ts, task, plan: TaskPlan, profile, quiet) -> list[Variant]:
    return [v for s in plan.imp for v in
            imp_with_rewinding(root, ts, PruneSettings(method=s.method, amount=plan.amount),
                               plan.rounds_for(s, profile), task, quiet)]


def run_structured(root, ts, task, plan: TaskPlan, profile, quiet) -> list[Variant]:
    return [structured_pruning(root, ts, ss, task, plan_index, quiet)
            for plan_index, ss in enumerate(plan.structured)]


def run_sensitivity(root, ts, task, plan: TaskPlan, profile, quiet) -> list[dict]:
    """No variants: rows (dicts) for the manifest's "sensitivity", cached in the run folder."""
    return sensitivity_analysis(root, ts, task, plan.sensitivity, quiet)


# Experiment name -> runner of that experiment for one task and seed: variants, or rows of an analysis.
# Adding one is a function and a line here.
EXPERIMENTS: dict[str, Callable[..., list[Variant] | list[dict]]] = {
    "baseline": run_baseline,
    "repeated": run_repeated,
    "imp": run_imp,
    "structured": run_structured,
    "sensitivity": run_sensitivity,
}


@dataclass
class ExportSettings:
    profile: str = "full"
    seeds: int = 1
    plans: tuple[TaskPlan, ...] = tuple(PLANS[name] for name in DEFAULT_TASKS)
    experiments: tuple[str, ...] | None = None      # None: each task's planned experiments
    data_dir: Path | None = None
    runs_dir: Path = Path("runs")
    quiet: bool = False
    seed_streams: str = DEFAULT_SEED_STREAMS      # harness.seeds: one stream per source of randomness


@dataclass
class ExportRun:
    variants: list[tuple[Variant, TaskData]]
    sensitivity: list[dict]


def train_settings(plan: TaskPlan, profile, seed: int, seed_streams: str = DEFAULT_SEED_STREAMS) -> TrainSettings:
    epochs = profile.epochs if plan.epochs is None else plan.epochs
    if profile.name == "quick":
        epochs = min(epochs, profile.epochs)
    defaults = TrainSettings()
    return TrainSettings(task=plan.task, model=plan.model, model_kwargs=plan.model_kwargs, epochs=epochs,
                         batch_size=plan.batch_size or defaults.batch_size, lr=plan.lr or defaults.lr,
                         optimizer=plan.optimizer, loss=plan.loss, seed=seed, train_limit=profile.train_limit,
                         eval_limit=profile.eval_limit, seed_streams=seed_streams)


def check_experiments_exist(settings: ExportSettings) -> None:
    """An experiment asked for with --experiments that no plan of this export runs is one sentence, before any
    training: an export must never end in a bundle without the models it was asked for."""
    for name in settings.experiments or ():
        if not any(name in plan.experiments for plan in settings.plans):
            planned = {e for plan in settings.plans for e in plan.experiments}
            raise EdgepruneError(f"no task of this export runs the {name!r} experiment (its plans run "
                                 f"{', '.join(e for e in EXPERIMENTS if e in planned)}), so it would produce "
                                 f"nothing.")


def plans_named(names, extra: tuple[TaskPlan, ...] = ()) -> tuple[TaskPlan, ...]:
    """The built-in plans of these names, then `extra` (a user's plan); an unknown name is one sentence."""
    unknown = [n for n in names if n not in PLANS]
    if unknown:
        raise EdgepruneError(f"unknown task {unknown[0]!r}; known: {', '.join(PLANS)}.")
    return (*(PLANS[n] for n in names), *extra)


def _load(plan: TaskPlan, settings: ExportSettings, profile) -> TaskData:
    if plan.load is not None:
        return plan.load(settings.data_dir, profile.train_limit, profile.eval_limit)
    return load_task(plan.task, settings.data_dir, profile.train_limit, profile.eval_limit)


def run_experiments(settings: ExportSettings) -> ExportRun:
    if settings.profile not in PROFILES:
        raise EdgepruneError(f"unknown profile {settings.profile!r}; use one of {', '.join(PROFILES)}.")
    unknown = [e for e in settings.experiments or () if e not in EXPERIMENTS]
    if unknown:
        raise EdgepruneError(f"unknown experiment {unknown[0]!r}; known: {', '.join(EXPERIMENTS)}.")
    check_experiments_exist(settings)
    profile = PROFILES[settings.profile]
    run = ExportRun(variants=[], sensitivity=[])
    # Every task's data is loaded before any training, so a missing data set stops the export at once;
    # plans sharing a task load it once.
    loaded: dict[str, TaskData] = {}
    for plan in settings.plans:
        if plan.task not in loaded:
            loaded[plan.task] = _load(plan, settings, profile)
    seen: set[str] = set()
    steps = [(plan, seed, name) for plan in settings.plans for seed in range(settings.seeds)
             for name in plan.experiments if settings.experiments is None or name in settings.experiments]
    with Progress("experiments", total=len(steps), unit="experiment", quiet=settings.quiet) as progress:
        for plan, seed, name in steps:
            task = loaded[plan.task]
            progress.finished(f"[{plan.name} seed {seed}] {name}")
            ts = train_settings(plan, profile, seed, settings.seed_streams)
            for item in EXPERIMENTS[name](settings.runs_dir, ts, task, plan, profile, settings.quiet):
                if isinstance(item, dict):
                    run.sensitivity.append(item)
                elif item.name not in seen:
                    seen.add(item.name)
                    run.variants.append((item, task))
            progress.update(1)
    if not run.variants:
        raise EdgepruneError(f"the experiments {', '.join(settings.experiments or ('planned',))} produced no model "
                             f"to export (only analyses), so no bundle was written; add baseline or a pruning "
                             f"experiment.")
    return run
