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
from harness.experiments.sensitivity import SensitivitySettings, sensitivity_analysis
from harness.experiments.structured import StructuredSettings, structured_pruning
from harness.experiments.settings import PROFILES, PruneSettings, TrainSettings
from harness.experiments.variant import Variant


@dataclass(frozen=True)
class TaskPlan:
    """What `make export` runs for one plan (a key of PLANS): the task it loads, its model, experiments, options."""
    task: str                     # the TaskData loaded (harness.data TASKS); several plans may share one task
    model: str
    model_kwargs: tuple = ()
    experiments: tuple[str, ...] = ("baseline", "repeated", "imp")
    repeated_methods: tuple[str, ...] = ("l1",)
    imp_methods: tuple[str, ...] = ("l1",)
    amount: float = 0.33          # fraction of the remaining weights pruned per round
    structured: tuple[tuple[str, str, float], ...] = ()    # (structure, importance, ratio) per structured variant
    sensitivity_ratios: tuple[float, ...] = (0.25, 0.5, 0.75, 0.9)
    rounds: int | None = None     # pruning rounds; None: the profile's
    method_rounds: tuple[tuple[str, int], ...] = ()        # (method, rounds) capping a method's IMP rounds


def plan_rounds(plan: TaskPlan, profile) -> int:
    return profile.rounds if plan.rounds is None else plan.rounds


def run_baseline(root, ts, task, plan: TaskPlan, profile, quiet) -> list[Variant]:
    return [trained_baseline(root, ts, task, quiet)]


def run_repeated(root, ts, task, plan: TaskPlan, profile, quiet) -> list[Variant]:
    return [v for method in plan.repeated_methods for v in
            repeated_pruning(root, ts, PruneSettings(method=method, amount=plan.amount), plan_rounds(plan, profile),
                             task, quiet)]


def run_imp(root, ts, task, plan: TaskPlan, profile, quiet) -> list[Variant]:
    caps = dict(plan.method_rounds)
    return [v for method in plan.imp_methods for v in
            imp_with_rewinding(root, ts, PruneSettings(method=method, amount=plan.amount),
                               min(plan_rounds(plan, profile), caps.get(method, plan_rounds(plan, profile))),
                               task, quiet)]


def run_structured(root, ts, task, plan: TaskPlan, profile, quiet) -> list[Variant]:
    return [structured_pruning(root, ts, StructuredSettings(kind=kind, importance=importance, ratio=ratio), task,
                               index, quiet) for index, (kind, importance, ratio) in enumerate(plan.structured)]


def run_sensitivity(root, ts, task, plan: TaskPlan, profile, quiet) -> list[dict]:
    """No variants: rows (dicts) for the manifest's "sensitivity", cached in the run folder."""
    return sensitivity_analysis(root, ts, task, SensitivitySettings(ratios=plan.sensitivity_ratios), quiet)


# Experiment name -> runner of that experiment for one task and seed: variants, or rows of an analysis.
# Adding one is a function and a line here.
EXPERIMENTS: dict[str, Callable[..., list[Variant] | list[dict]]] = {
    "baseline": run_baseline,
    "repeated": run_repeated,
    "imp": run_imp,
    "structured": run_structured,
    "sensitivity": run_sensitivity,
}
# The configured plans of `make export`, in order. Adding a task is a loader, a model and a line here.
# harness.plugins adds a plan for a user's model (`harness export --model pkg.mod:build`) at run time.
PLANS: dict[str, TaskPlan] = {
    "mnist": TaskPlan("mnist", "ffn", experiments=("baseline", "repeated", "imp", "structured", "sensitivity"),
                      # each IMP round retrains: the extra methods get 3 rounds, 2:4 one (its mask is fixed)
                      imp_methods=("l1", "random", "wanda", "2:4", "lamp"),
                      method_rounds=(("random", 3), ("wanda", 3), ("2:4", 1), ("lamp", 3)),
                      structured=(("neurons", "l1", 0.25), ("neurons", "l1", 0.5), ("neurons", "l1", 0.75),
                                  ("neurons", "l2", 0.5))),
    "sst2": TaskPlan("sst2", "sst2-ffn", experiments=("baseline", "repeated")),
    "sst2-transformer": TaskPlan("sst2", "transformer",
                                 experiments=("baseline", "repeated", "structured", "sensitivity"),
                                 structured=(("heads", "l1", 0.5), ("layers", "l1", 0.5), ("neurons", "l1", 0.5))),
}
# Measured on 2 idle cores, quick profile from scratch: mnist 67 s, the two SST-2 plans about 90 s more.
DEFAULT_TASKS = ("mnist", "sst2", "sst2-transformer")


@dataclass
class ExportSettings:
    profile: str = "full"
    seeds: int = 1
    tasks: tuple[str, ...] = DEFAULT_TASKS
    experiments: tuple[str, ...] | None = None      # None: each task's planned experiments
    data_dir: Path | None = None
    runs_dir: Path = Path("runs")
    quiet: bool = False


@dataclass
class ExportRun:
    variants: list[tuple[Variant, TaskData]]
    sensitivity: list[dict]


def train_settings(plan: TaskPlan, profile, seed: int) -> TrainSettings:
    return TrainSettings(task=plan.task, model=plan.model, model_kwargs=plan.model_kwargs, epochs=profile.epochs,
                         seed=seed, train_limit=profile.train_limit, eval_limit=profile.eval_limit)


def run_experiments(settings: ExportSettings) -> ExportRun:
    if settings.profile not in PROFILES:
        raise EdgepruneError(f"unknown profile {settings.profile!r}; use one of {', '.join(PROFILES)}.")
    unknown = [e for e in settings.experiments or () if e not in EXPERIMENTS]
    if unknown:
        raise EdgepruneError(f"unknown experiment {unknown[0]!r}; known: {', '.join(EXPERIMENTS)}.")
    unknown = [t for t in settings.tasks if t not in PLANS]
    if unknown:
        raise EdgepruneError(f"unknown task {unknown[0]!r}; known: {', '.join(PLANS)}.")
    profile = PROFILES[settings.profile]
    run = ExportRun(variants=[], sensitivity=[])
    # Every task's data is loaded before any training, so a missing data set stops the export at once;
    # plans sharing a task load it once.
    loaded: dict[str, TaskData] = {}
    for plan_name in settings.tasks:
        task_name = PLANS[plan_name].task
        if task_name not in loaded:
            loaded[task_name] = load_task(task_name, settings.data_dir, profile.train_limit, profile.eval_limit)
    seen: set[str] = set()
    for plan_name in settings.tasks:
        plan = PLANS[plan_name]
        task = loaded[plan.task]
        experiments = [e for e in plan.experiments if settings.experiments is None or e in settings.experiments]
        for seed in range(settings.seeds):
            ts = train_settings(plan, profile, seed)
            for name in experiments:
                if not settings.quiet:
                    print(f"[{plan_name} seed {seed}] {name}", file=sys.stderr)
                for item in EXPERIMENTS[name](settings.runs_dir, ts, task, plan, profile, settings.quiet):
                    if isinstance(item, dict):
                        run.sensitivity.append(item)
                    elif item.name not in seen:
                        seen.add(item.name)
                        run.variants.append((item, task))
    return run
