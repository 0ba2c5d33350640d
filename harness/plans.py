"""What `make export` runs: a plan per task, as typed settings. The built-in plans are fixed when this module is
imported; a user's plan (harness.plugins) is a value passed down through the export settings, never added here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from harness.data import TaskData
from harness.experiments.sensitivity import SensitivitySettings
from harness.experiments.settings import Profile
from harness.experiments.structured import StructuredSettings


@dataclass(frozen=True)
class Schedule:
    """One pruning method's rounds in a plan; `rounds` caps the plan's rounds (None: the plan's)."""
    method: str
    rounds: int | None = None


@dataclass(frozen=True)
class TaskPlan:
    """The experiments of one plan: the task it loads, its model and each experiment's settings."""
    name: str                     # the plan's name (`--tasks NAME`)
    task: str                     # the TaskData it trains on (harness.data); several plans may share one task
    model: str
    model_kwargs: tuple = ()
    experiments: tuple[str, ...] = ("baseline", "repeated", "imp")
    repeated: tuple[Schedule, ...] = (Schedule("l1"),)
    imp: tuple[Schedule, ...] = (Schedule("l1"),)
    amount: float = 0.33          # fraction of the remaining weights pruned per round
    structured: tuple[StructuredSettings, ...] = ()
    sensitivity: SensitivitySettings = SensitivitySettings()
    rounds: int | None = None     # pruning rounds; None: the profile's
    # Training, when the plan's model wants other settings than the lab's (a user's plugin may say so):
    # epochs (None: the profile's; the quick profile never trains longer than its own), batch size, learning rate,
    # optimizer (harness.training.OPTIMIZERS), learning-rate schedule (harness.training.SCHEDULES) and the name of
    # the task's own loss ("": cross-entropy).
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    optimizer: str = "adam"
    schedule: str = "constant"
    loss: str = ""
    # A user's task comes with its own loader (data_dir, train_limit, eval_limit) -> TaskData; None: harness.data.
    load: Callable[..., TaskData] | None = None

    def rounds_for(self, schedule: Schedule, profile: Profile) -> int:
        rounds = profile.rounds if self.rounds is None else self.rounds
        return rounds if schedule.rounds is None else min(rounds, schedule.rounds)


def _neurons(*ratios_and_importance: tuple[str, float]) -> tuple[StructuredSettings, ...]:
    return tuple(StructuredSettings(kind="neurons", importance=imp, ratio=r) for imp, r in ratios_and_importance)


_BUILT_IN = (
    TaskPlan("mnist", "mnist", "ffn", experiments=("baseline", "repeated", "imp", "structured", "sensitivity"),
             # each IMP round retrains: the extra methods get 3 rounds, 2:4 one (its mask is fixed)
             imp=(Schedule("l1"), Schedule("random", 3), Schedule("wanda", 3), Schedule("2:4", 1),
                  Schedule("lamp", 3), Schedule("snip", 3), Schedule("movement", 3)),
             structured=_neurons(("l1", 0.25), ("l1", 0.5), ("l1", 0.75), ("l2", 0.5))),
    TaskPlan("sst2", "sst2", "sst2-ffn", experiments=("baseline", "repeated")),
    TaskPlan("sst2-transformer", "sst2", "transformer",
             experiments=("baseline", "repeated", "structured", "sensitivity"),
             structured=(StructuredSettings(kind="heads", ratio=0.5), StructuredSettings(kind="layers", ratio=0.5),
                         StructuredSettings(kind="neurons", ratio=0.5))),
)
PLANS: dict[str, TaskPlan] = {plan.name: plan for plan in _BUILT_IN}
# Measured on 2 idle cores, quick profile from scratch: mnist 67 s, the two SST-2 plans about 90 s more.
DEFAULT_TASKS = ("mnist", "sst2", "sst2-transformer")
