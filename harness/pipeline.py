"""`make export`: the configured experiments for each seed as steps of the experiment graph (harness.graph runs
them, in this process or on a Dask cluster), ONNX export of every variant, the bundle."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable, Iterator

from harness.data import TaskData, load_task
from harness.errors import EdgepruneError
from harness.experiments.baseline import trained_baseline
from harness.experiments.imp import imp_with_rewinding
from harness.experiments.repeated import repeated_pruning
from harness.experiments.rounds import round_folders
from harness.experiments.sensitivity import sensitivity_analysis, sensitivity_path
from harness.experiments.store import experiment_folder, train_folder
from harness.experiments.structured import structured_pruning
from harness.experiments.settings import PROFILES, Profile, PruneSettings, TrainSettings
from harness.experiments.variant import Variant, is_finished
from harness.plans import DEFAULT_TASKS, PLANS, TaskPlan
from harness.seeds import DEFAULT_SEED_STREAMS


@dataclass(frozen=True)
class Step:
    """One schedulable piece of an experiment for one plan and seed: the baseline, one method's rounds, one
    structured pruning, the sensitivity analysis. A method's rounds are one step, not one per round: round k needs
    round k-1, so splitting the chain gains no parallelism, and `pruning_rounds` already resumes at the last
    finished round when a killed step is retried.

    `run(task, quiet)` returns the step's variants (or an analysis' rows); it writes only below `folder` (the run
    folder it claims), and makes the variants in `variant_folders`, in order. `marker` is the file that finishes a
    step without variants."""
    experiment: str
    label: str                                   # what it is within its plan and seed: "imp l1", "baseline"
    folder: Path
    variant_folders: tuple[Path, ...]
    run: Callable[[TaskData, bool], list]
    marker: Path | None = None

    def finished(self) -> bool:
        if self.marker is not None:
            return self.marker.exists()
        return all(is_finished(f) for f in self.variant_folders)

    def unfinished_folders(self) -> list[Path]:
        """Its own folder and its variant folders that hold no finished variant: where a killed run of this step
        may have left temporary files (a finished variant's folder may be written by its export meanwhile)."""
        return [self.folder, *(f for f in self.variant_folders if f != self.folder and not is_finished(f))]


def _one(make: Callable[..., Variant], *args, task: TaskData, quiet: bool, **kwargs) -> list[Variant]:
    return [make(*args, task=task, quiet=quiet, **kwargs)]


def _step_call(fn: Callable, *args, **kwargs) -> Callable[[TaskData, bool], list]:
    """`fn(*args, task=..., quiet=..., **kwargs)` as run(task, quiet); a partial of module-level functions, so a
    Dask worker unpickles it by reference."""
    return partial(_call_with_task, fn, args, kwargs)


def _call_with_task(fn, args, kwargs, task: TaskData, quiet: bool) -> list:
    return fn(*args, task=task, quiet=quiet, **kwargs)


def baseline_steps(root, ts, plan: TaskPlan, profile) -> list[Step]:
    folder = train_folder(root, ts)
    return [Step("baseline", "baseline", folder, (folder,), _step_call(_one, trained_baseline, root, ts))]


def _rounds_steps(experiment: str, function, schedules, root, ts, plan: TaskPlan, profile) -> list[Step]:
    steps = []
    for s in schedules:
        ps, rounds = PruneSettings(method=s.method, amount=plan.amount), plan.rounds_for(s, profile)
        steps.append(Step(experiment, f"{experiment} {s.method}", experiment_folder(root, ts, experiment, ps),
                          tuple(round_folders(root, ts, ps, rounds, experiment)),
                          _step_call(function, root, ts, ps, rounds)))
    return steps


def repeated_steps(root, ts, plan: TaskPlan, profile) -> list[Step]:
    return _rounds_steps("repeated", repeated_pruning, plan.repeated, root, ts, plan, profile)


def imp_steps(root, ts, plan: TaskPlan, profile) -> list[Step]:
    return _rounds_steps("imp", imp_with_rewinding, plan.imp, root, ts, plan, profile)


def structured_steps(root, ts, plan: TaskPlan, profile) -> list[Step]:
    steps = []
    for plan_index, ss in enumerate(plan.structured):
        folder = experiment_folder(root, ts, "structured", ss)
        steps.append(Step("structured", f"structured {ss.method} {ss.ratio:g}", folder, (folder,),
                          _step_call(_one, structured_pruning, root, ts, ss, plan_index=plan_index)))
    return steps


def sensitivity_steps(root, ts, plan: TaskPlan, profile) -> list[Step]:
    """No variants: rows (dicts) for the manifest's "sensitivity", cached in the run folder."""
    path = sensitivity_path(root, ts, plan.sensitivity)
    return [Step("sensitivity", "sensitivity", path.parent, (), _step_call(sensitivity_analysis, root, ts,
                                                                          ss=plan.sensitivity), marker=path)]


# Experiment name -> the steps of that experiment for one plan and seed (root, TrainSettings, plan, profile).
# Adding one is a function and a line here.
EXPERIMENTS: dict[str, Callable[..., list[Step]]] = {
    "baseline": baseline_steps,
    "repeated": repeated_steps,
    "imp": imp_steps,
    "structured": structured_steps,
    "sensitivity": sensitivity_steps,
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


def train_settings(plan: TaskPlan, profile, seed: int, seed_streams: str = DEFAULT_SEED_STREAMS) -> TrainSettings:
    epochs = profile.epochs if plan.epochs is None else plan.epochs
    if profile.name == "quick":
        epochs = min(epochs, profile.epochs)
    defaults = TrainSettings()
    return TrainSettings(task=plan.task, model=plan.model, model_kwargs=plan.model_kwargs, epochs=epochs,
                         batch_size=plan.batch_size or defaults.batch_size, lr=plan.lr or defaults.lr,
                         optimizer=plan.optimizer, schedule=plan.schedule, loss=plan.loss, seed=seed,
                         train_limit=profile.train_limit, eval_limit=profile.eval_limit, seed_streams=seed_streams)


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


def export_profile(settings: ExportSettings) -> Profile:
    """The settings' profile, after checking the names a user typed (one sentence for an unknown one)."""
    if settings.profile not in PROFILES:
        raise EdgepruneError(f"unknown profile {settings.profile!r}; use one of {', '.join(PROFILES)}.")
    unknown = [e for e in settings.experiments or () if e not in EXPERIMENTS]
    if unknown:
        raise EdgepruneError(f"unknown experiment {unknown[0]!r}; known: {', '.join(EXPERIMENTS)}.")
    check_experiments_exist(settings)
    return PROFILES[settings.profile]


def load_tasks(settings: ExportSettings, profile: Profile) -> dict[str, TaskData]:
    """Every task's data before any training, so a missing data set stops the export at once; plans sharing a task
    load it once."""
    loaded: dict[str, TaskData] = {}
    for plan in settings.plans:
        if plan.task not in loaded:
            loaded[plan.task] = _load(plan, settings, profile)
    return loaded


@dataclass(frozen=True)
class PlannedStep:
    plan: TaskPlan
    seed: int
    step: Step
    baseline: Step          # the step this one needs (itself for a baseline)
    selected: bool          # its experiment was asked for (a baseline may run only because others need it)


def export_steps(settings: ExportSettings, profile: Profile) -> Iterator[PlannedStep]:
    """Every step of the export, in the order the sequential export has always run them (plan, seed, experiment),
    each with the baseline it needs; that baseline comes first even when `--experiments` leaves it out."""
    for plan in settings.plans:
        experiments = [e for e in plan.experiments if settings.experiments is None or e in settings.experiments]
        for seed in range(settings.seeds):
            ts = train_settings(plan, profile, seed, settings.seed_streams)
            (baseline,) = baseline_steps(settings.runs_dir, ts, plan, profile)
            if "baseline" not in experiments:
                yield PlannedStep(plan, seed, baseline, baseline, selected=False)
            for name in experiments:
                for step in EXPERIMENTS[name](settings.runs_dir, ts, plan, profile):
                    yield PlannedStep(plan, seed, step, baseline, selected=True)
