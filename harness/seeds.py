"""The seeded random streams of one run: initialisation, data order, dropout, calibration sampling and pruning's own
randomness, each from its own seed derived from the run's seed.

Why separate streams: torch's generators are mt19937, and two of them seeded with the same value draw the same
numbers. Before streams were split the initial weights, the batch order and dropout were all seeded with the run
seed itself, so changing the seed moved every source of variation at once and the first permutation of the data
reused the numbers of the first weight draws. `split` gives each source its own seed (numpy's SeedSequence with one
spawn key per stream, the library's documented way to derive independent streams from one seed), so a study can
vary one source and keep the others (OpenLTH keeps its data-order seed apart from the model seed the same way).

`shared` is how runs were seeded before: it stays the default of `TrainSettings.seed_streams` so that the run
folders made then (named by their non-default settings) keep their meaning, and every export asks for `split`
(DEFAULT_SEED_STREAMS), which names new folders.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

SHARED = "shared"
SPLIT = "split"
SEED_STREAM_MODES = (SHARED, SPLIT)
DEFAULT_SEED_STREAMS = SPLIT       # what `harness export` and the make targets use
# The spawn key of each stream: fixed forever, since it decides every split run's numbers.
STREAMS = ("init", "data_order", "dropout", "calibration", "pruning")


def derived_seed(seed: int, *key: int) -> int:
    """A 32-bit seed for the stream `key` of `seed`: SeedSequence(seed, spawn_key=key), so different keys give
    statistically independent streams and the same key always the same one."""
    return int(np.random.SeedSequence(int(seed), spawn_key=tuple(int(k) for k in key)).generate_state(1)[0])


@dataclass(frozen=True)
class SeedStreams:
    """The seed of every random source of one run. `calibration` None: the first rows of the training split
    (shared streams did not sample the calibration batch)."""

    mode: str
    seed: int
    init: int
    data_order: int
    dropout: int
    calibration: int | None
    pruning: int

    @classmethod
    def derive(cls, seed: int, mode: str = DEFAULT_SEED_STREAMS, overrides: Any = ()) -> "SeedStreams":
        """The streams of run seed `seed`; `overrides` ((stream, seed) pairs) replaces single streams, e.g. to vary
        only the data order."""
        if mode not in SEED_STREAM_MODES:
            raise ValueError(f"unknown seed streams {mode!r}; choose one of {', '.join(SEED_STREAM_MODES)}")
        if mode == SHARED:
            values: dict[str, Any] = dict(init=seed, data_order=seed, dropout=seed, calibration=None,
                                          pruning=seed * 1000)
        else:
            values = {name: derived_seed(seed, index) for index, name in enumerate(STREAMS)}
        for name, value in dict(overrides).items():
            if name not in STREAMS:
                raise ValueError(f"unknown seed stream {name!r}; the streams are {', '.join(STREAMS)}")
            values[name] = int(value)
        return cls(mode=mode, seed=int(seed), **values)

    def seed_init(self) -> None:
        """Seed every global generator before a model is built (its initial weights draw from torch's)."""
        from harness.training import seed_everything

        seed_everything(self.init)

    def seed_training(self, after_init: bool = False) -> None:
        """Seed torch's global generator, which dropout draws from, right before a training run.

        Shared streams keep what runs did before: the baseline's training went on with the generator the
        initialisation had used (`after_init`), retraining and fine-tuning reseeded everything with the run seed."""
        import torch

        if self.mode == SHARED:
            if not after_init:
                SeedStreams.derive(self.seed, SHARED).seed_init()
            return
        torch.manual_seed(self.dropout)

    def pruning_seed(self, iteration: int) -> int:
        """The seed of a pruning step's own randomness (random pruning, movement's scratch fine-tune)."""
        if self.mode == SHARED:
            return self.pruning + iteration
        return derived_seed(self.pruning, iteration)

    def structured_seed(self) -> int:
        """The seed of a structured pruning step's own randomness (random importance): the run seed itself for
        shared streams, as before, which torch's data-order generator also drew from; the pruning stream's for
        split ones (round 0: no round of repeated pruning or IMP uses it)."""
        return self.seed if self.mode == SHARED else derived_seed(self.pruning, 0)

    def calibration_rows(self, n_rows: int, samples: int) -> np.ndarray:
        """Indices of the training rows in the calibration batch: the first `samples` rows for shared streams, a
        sample without replacement (in ascending order) drawn by the calibration stream for split ones."""
        count = min(int(samples), int(n_rows))
        if self.calibration is None:
            return np.arange(count)
        return np.sort(np.random.default_rng(self.calibration).choice(n_rows, size=count, replace=False))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
