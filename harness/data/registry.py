"""Task registry: a task name maps to a loader that returns preprocessed train and eval arrays."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from harness.data import mnist, sst2
from harness.errors import EdgepruneError


@dataclass
class TaskData:
    name: str
    train_x: np.ndarray
    train_y: np.ndarray
    eval_x: np.ndarray
    eval_y: np.ndarray
    num_classes: int
    description: str
    extra: dict = field(default_factory=dict)
    # A user's task brings its own model (harness.plugins): a fresh, untrained copy on every call.
    model_factory: Callable[[], Any] | None = field(default=None, repr=False, compare=False)

    @property
    def input_shape(self) -> list:
        return [None, *self.eval_x.shape[1:]]


def resolve_data_dir(cli_value: str | Path | None = None) -> Path | None:
    """--data-dir wins over EDGEPRUNE_DATA; None means 'use the user cache'."""
    value = cli_value or os.environ.get("EDGEPRUNE_DATA")
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.is_dir():
        raise EdgepruneError(f"data folder {path} does not exist (from --data-dir or EDGEPRUNE_DATA).")
    return path


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "edgeprune"


def subset(x: np.ndarray, y: np.ndarray, limit: int | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    if not limit or limit >= len(x):
        return x, y
    idx = np.random.default_rng(seed).permutation(len(x))[:limit]
    idx.sort()
    return x[idx], y[idx]


def load_mnist(data_dir: Path | None, train_limit: int | None, eval_limit: int | None) -> TaskData:
    folder = mnist.locate(data_dir, cache_dir())
    train_x, train_y = mnist.load_split(folder, "train")
    eval_x, eval_y = mnist.load_split(folder, "test")
    train_x, train_y = subset(train_x, train_y, train_limit, seed=0)
    eval_x, eval_y = subset(eval_x, eval_y, eval_limit, seed=1)
    sample = f" (a fixed random sample of {len(eval_x)})" if eval_limit and eval_limit < 10000 else ""
    return TaskData(
        name="mnist", train_x=train_x, train_y=train_y, eval_x=eval_x, eval_y=eval_y, num_classes=10,
        description=f"MNIST test split{sample}, 20x20 centre crop, pixels scaled to [0, 1], flattened to 400",
    )


def load_sst2(data_dir: Path | None, train_limit: int | None, eval_limit: int | None) -> TaskData:
    folder = sst2.locate(data_dir, cache_dir())
    train_text, train_y = sst2.read_tsv(folder / "train.tsv")
    eval_text, eval_y = sst2.read_tsv(folder / "dev.tsv")
    vocab = sst2.build_vocab(train_text)          # from the whole training split, whatever the limit
    train_x, train_y = subset(sst2.encode(train_text, vocab), train_y, train_limit, seed=0)
    eval_x, eval_y = subset(sst2.encode(eval_text, vocab), eval_y, eval_limit, seed=1)
    sample = f" (a fixed random sample of {len(eval_x)})" if eval_limit and eval_limit < len(eval_text) else ""
    return TaskData(
        name="sst2", train_x=train_x, train_y=train_y, eval_x=eval_x, eval_y=eval_y, num_classes=2,
        description=f"SST-2 (GLUE) dev split{sample}, lower-cased whitespace tokens as int64 ids "
                    f"(0 pad, 1 unknown, vocabulary of {len(vocab)} from the training split), "
                    f"padded or truncated to {sst2.MAX_LEN}",
        extra={"vocab_size": len(vocab), "max_len": sst2.MAX_LEN},
    )


TASKS: dict[str, Callable[..., TaskData]] = {"mnist": load_mnist, "sst2": load_sst2}


def load_task(name: str, data_dir: Path | None, train_limit: int | None = None,
              eval_limit: int | None = None) -> TaskData:
    if name not in TASKS:
        raise EdgepruneError(f"unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))}.")
    return TASKS[name](data_dir, train_limit, eval_limit)
