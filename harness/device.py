"""Where torch computes: `--device auto|cpu|cuda|mps` for training, fine-tuning, calibration and sensitivity
evaluation. Export, int8 calibration and every number the manifest carries (accuracy, sparsity, sizes) stay on the
CPU, so the device's accuracy is always compared with a CPU number.

The device is scoped like OpenLTH's platform: the export (or a graph task on a worker) enters `using_device(...)`
once, and `train`, the data-aware pruning scores and the sensitivity analysis ask `current_device()`; the experiment
functions between them stay device-free. The device does not name a run folder (docs/methods.md says why); each
run records the device it trained on.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from typing import Callable, Iterator

import torch
from torch import nn

from harness.errors import EdgepruneError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")
_CPU = torch.device("cpu")
_CURRENT: contextvars.ContextVar[torch.device] = contextvars.ContextVar("edgeprune_device", default=_CPU)


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def available_devices(cuda: Callable[[], bool] = torch.cuda.is_available,
                      mps: Callable[[], bool] = _mps_available) -> tuple[str, ...]:
    """The device kinds this process can use, best first ("cpu" always last)."""
    return (*(("cuda",) if cuda() else ()), *(("mps",) if mps() else ()), "cpu")


def resolve_device(name: str, available: tuple[str, ...] | None = None) -> torch.device:
    """auto: CUDA, then MPS, then CPU; a named device this process lacks is one sentence (never a silent CPU run)."""
    available = available_devices() if available is None else available
    if name not in DEVICE_CHOICES:
        raise EdgepruneError(f"--device {name!r} is not one of {', '.join(DEVICE_CHOICES)}.")
    if name == "auto":
        return torch.device(available[0])
    if name not in available:
        raise EdgepruneError(f"--device {name} was asked for, but this torch ({torch.__version__}) sees no {name} "
                             f"device; use --device auto or cpu, or install a torch build with {name} support.")
    return torch.device(name)


def current_device() -> torch.device:
    return _CURRENT.get()


@contextlib.contextmanager
def using_device(device: torch.device) -> Iterator[torch.device]:
    token = _CURRENT.set(torch.device(device))
    try:
        yield torch.device(device)
    finally:
        _CURRENT.reset(token)


@contextlib.contextmanager
def model_on(model: nn.Module, device: torch.device | None = None) -> Iterator[torch.device]:
    """Move `model` (in place) to the device for the block and back to the CPU after it, masks included; on the CPU
    nothing moves. The masked `weight` a forward pass leaves is recomputed on the CPU afterwards (a stale CUDA
    tensor there would break deepcopy and the metrics)."""
    device = current_device() if device is None else torch.device(device)
    if device.type == "cpu":
        yield device
        return
    model.to(device)
    try:
        yield device
    finally:
        model.to(_CPU)
        from harness.metrics import refresh_masked_weights
        refresh_masked_weights(model)


def torch_threads(threads: int | None) -> int:
    """Set torch's intra-op threads when given (a worker's share of the cores); the count in force either way."""
    if threads is not None:
        torch.set_num_threads(max(1, int(threads)))
    return torch.get_num_threads()


def usable_cores() -> int:
    """Cores this process may run on (cgroup/affinity aware where the OS says), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:          # macOS, Windows
        return max(1, os.cpu_count() or 1)


def compute_facts(device: torch.device | None = None) -> dict:
    """What a run records about where it computed: device, its name, torch's version and thread count."""
    device = current_device() if device is None else torch.device(device)
    name = "cpu"
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    elif device.type == "mps":
        name = "Apple MPS"
    return {"device": device.type, "device_name": name, "torch": torch.__version__,
            "torch_threads": torch.get_num_threads()}
