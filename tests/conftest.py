"""Shared fixtures for the host-side tests: a tiny separable task, small FFNs, settings that train in milliseconds.

torch and harness are imported inside the fixtures only: the runner tests must collect in an environment
without torch, and this conftest is loaded for them too.
"""

from __future__ import annotations

import os
import signal
import sys

import numpy as np
import pytest

# One OpenMP thread in every test process and in every `harness export` a test starts: `make test` runs a test file
# per core (pytest-xdist), and torch's spinning intra-op threads on an oversubscribed machine made the end-to-end
# export take 1,041 s instead of 139 s. Set before torch is imported; a setting the user gave is kept.
for _variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

FEATURES, CLASSES = 16, 3
N_TRAIN, N_EVAL = 512, 128


def sigint_as_on_a_terminal() -> None:
    """Popen's preexec_fn for a child the test stops with Ctrl-C (SIGINT): a shell runs a background job with SIGINT
    ignored, and the child inherits that (`nohup bash .ci/run &` made the Ctrl-C tests fail: the export never saw
    the signal), so the child gets the default disposition, as a program started from a terminal has it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def make_task(seed: int = 0):
    """512 train x 16 features, 128 eval rows, 3 classes from a fixed linear rule (separable, deterministic)."""
    from harness.data import TaskData

    rng = np.random.default_rng(seed)
    rule = rng.standard_normal((FEATURES, CLASSES))
    x = rng.standard_normal((N_TRAIN + N_EVAL, FEATURES)).astype(np.float32)
    y = (x @ rule).argmax(1).astype(np.int64)
    return TaskData(name="toy", train_x=x[:N_TRAIN], train_y=y[:N_TRAIN], eval_x=x[N_TRAIN:], eval_y=y[N_TRAIN:],
                    num_classes=CLASSES, description="toy: argmax of a fixed linear map of 16 gaussian features")


def make_ffn(seed: int = 0, hidden: int = 32, hidden_layers: int = 2):
    """FFN 16 -> 32 -> 32 -> 3 with seeded initial weights (1632 prunable weights, 67 biases)."""
    import torch

    from harness.models.ffn import FFN

    torch.manual_seed(seed)
    return FFN(in_features=FEATURES, hidden=hidden, hidden_layers=hidden_layers, num_classes=CLASSES).eval()


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """The models here are tiny: several intra-op threads only contend for the 2 CI cores (80 ms per backward
    instead of 1 ms on a busy machine). Applied only when a collected test module imported torch."""
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)
    yield


@pytest.fixture(scope="session")
def tiny_task():
    """Shared read-only: tests must not modify its arrays."""
    return make_task()


@pytest.fixture
def ffn():
    return make_ffn()


@pytest.fixture
def train_settings():
    from harness.experiments.settings import TrainSettings

    return TrainSettings(task="toy", model="ffn", model_kwargs=(("hidden", 32),), epochs=2, batch_size=64,
                         lr=0.01, seed=0)


@pytest.fixture
def prune_settings():
    from harness.experiments.settings import PruneSettings

    return PruneSettings(method="l1", amount=0.33, calibration_samples=32)

