"""Settings that change results; their non-default fields name the run folders."""

from __future__ import annotations

from dataclasses import dataclass

from harness.seeds import SHARED, SeedStreams
from harness.training import TrainConfig


@dataclass(frozen=True)
class TrainSettings:
    task: str = "mnist"
    model: str = "ffn"
    model_kwargs: tuple = ()          # sorted (key, value) pairs, hashable
    epochs: int = 2
    batch_size: int = 64
    lr: float = 0.001
    seed: int = 0
    train_limit: int | None = None    # None: the whole training split
    eval_limit: int | None = None     # None: the whole eval split
    optimizer: str = "adam"           # harness.training.OPTIMIZERS
    schedule: str = "constant"        # harness.training.SCHEDULES
    loss: str = ""                    # "": cross-entropy; else the name of the task's own loss (TaskData.extra)
    # How `seed` seeds init, data order, dropout and calibration (harness.seeds). The default is the old, shared
    # seeding, so folders named before the setting existed keep their meaning; exports ask for "split".
    seed_streams: str = SHARED
    seed_overrides: tuple = ()       # sorted (stream, seed) pairs replacing single derived streams

    def __post_init__(self):
        object.__setattr__(self, "model_kwargs", tuple(sorted(dict(self.model_kwargs).items())))
        object.__setattr__(self, "seed_overrides", tuple(sorted(dict(self.seed_overrides).items())))
        SeedStreams.derive(self.seed, self.seed_streams, self.seed_overrides)   # a bad name fails before any folder

    @property
    def streams(self) -> SeedStreams:
        return SeedStreams.derive(self.seed, self.seed_streams, self.seed_overrides)

    @property
    def train_config(self) -> TrainConfig:
        return TrainConfig(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, optimizer=self.optimizer,
                           schedule=self.schedule)

    @property
    def kwargs(self) -> dict:
        return dict(self.model_kwargs)


@dataclass(frozen=True)
class PruneSettings:
    """One pruning schedule: `amount` of the remaining weights per round, by `method`."""
    method: str = "l1"
    amount: float = 0.33
    calibration_samples: int = 256


@dataclass(frozen=True)
class Profile:
    name: str
    epochs: int
    train_limit: int | None
    eval_limit: int | None
    rounds: int = 5


PROFILES = {
    "full": Profile("full", epochs=2, train_limit=None, eval_limit=None),
    # Same pipeline on a small subset with one epoch: the whole export in about two minutes on 2 cores.
    "quick": Profile("quick", epochs=1, train_limit=6000, eval_limit=2000),
}


def task_loss(task):
    """The loss a task trains with: its own (a user's plugin may bring one, in `extra["loss_fn"]`) or None, which
    harness.training.train reads as cross-entropy."""
    return task.extra.get("loss_fn")
