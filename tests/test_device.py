"""harness.device: which device `--device` picks, the CPU fallback, and what a run records (no CUDA here: the
selection is tested with stated availability, the training path on the CPU)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from harness import cli
from harness.device import (DEVICE_CHOICES, available_devices, current_device, model_on, resolve_device,
                            torch_threads, using_device)
from harness.errors import EdgepruneError
from harness.training import TrainConfig, train

BIN = Path(sys.executable).parent


@pytest.mark.parametrize("available, picked", [(("cuda", "mps", "cpu"), "cuda"), (("cuda", "cpu"), "cuda"),
                                               (("mps", "cpu"), "mps"), (("cpu",), "cpu")])
def test_auto_picks_cuda_then_mps_then_cpu(available, picked):
    assert resolve_device("auto", available) == torch.device(picked)


def test_available_devices_are_ordered_best_first_with_cpu_last():
    assert available_devices(cuda=lambda: True, mps=lambda: True) == ("cuda", "mps", "cpu")
    assert available_devices(cuda=lambda: False, mps=lambda: True) == ("mps", "cpu")
    assert available_devices(cuda=lambda: False, mps=lambda: False) == ("cpu",)


@pytest.mark.parametrize("name", ["cuda", "mps"])
def test_a_named_device_that_is_missing_is_one_sentence_not_a_cpu_run(name):
    with pytest.raises(EdgepruneError, match=f"sees no {name} device"):
        resolve_device(name, ("cpu",))


def test_an_unknown_device_name_is_refused():
    with pytest.raises(EdgepruneError, match="not one of"):
        resolve_device("tpu", ("cpu",))


def test_this_machine_falls_back_to_the_cpu_and_the_scope_is_restored():
    assert resolve_device("auto") == torch.device(available_devices()[0])
    assert current_device() == torch.device("cpu")
    with using_device(torch.device("cpu")) as device:
        assert current_device() == device
    assert current_device() == torch.device("cpu")


def test_training_records_its_device_and_threads_and_returns_the_model_on_the_cpu():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    x = np.random.default_rng(0).standard_normal((64, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    before = torch.get_num_threads()
    try:
        threads = torch_threads(1)
        with using_device(resolve_device("auto")):
            info = train(model, x, y, TrainConfig(epochs=1, batch_size=16), seed=0, quiet=True)
    finally:
        torch.set_num_threads(before)
    assert threads == 1 and info["torch_threads"] == 1 and info["device"] == available_devices()[0]
    assert all(p.device.type == "cpu" for p in model.parameters())


def test_model_on_the_cpu_moves_nothing():
    model = nn.Linear(2, 2)
    weight = model.weight
    with model_on(model, torch.device("cpu")):
        assert model.weight is weight


def test_the_cli_offers_the_devices_harness_device_knows():
    assert cli.DEVICE_CHOICES == DEVICE_CHOICES


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_export_with_a_missing_device_stops_before_any_work(tmp_path):
    done = subprocess.run([str(BIN / "harness"), "export", "--device", "cuda", "--tasks", "mnist",
                           "--runs-dir", str(tmp_path / "runs"), "--out", str(tmp_path / "bundle")],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "sees no cuda device" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "runs").exists() and not (tmp_path / "bundle").exists()
