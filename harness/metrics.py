"""One definition of each host number: accuracy, parameter counts, sparsity, state_dict size, torch latency."""

from __future__ import annotations

import copy
import io
import time
from typing import Iterator

import numpy as np
import torch
from torch import nn
from torch.nn.utils import prune

PRUNABLE_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d)
# Weights a user may add to the prunable set (harness.pruning.targets.opt_in marks a model): the recurrent weight
# matrices of GRU/LSTM/RNN layers, and embedding tables.
OPT_IN_TYPES = {"recurrent": (nn.RNNBase,), "embedding": (nn.Embedding, nn.EmbeddingBag)}
OPT_IN_ATTRIBUTE = "edgeprune_prunable"     # a model attribute: the OPT_IN_TYPES keys the user opted into


def _weights(module: nn.Module) -> list[str]:
    if isinstance(module, nn.RNNBase):      # weight_ih_l0, weight_hh_l0, ... (biases excluded, as everywhere)
        return [name for name in module._flat_weights_names if name.startswith("weight_")]   # also once masked
    return ["weight"]


def prunable_parameters(model: nn.Module) -> list[tuple[nn.Module, str]]:
    """Weights of Linear and Conv layers: the lab's pruning targets (biases excluded); plus the recurrent or
    embedding weights the model is marked to include (`edgeprune_prunable`)."""
    types = PRUNABLE_TYPES + tuple(t for kind in getattr(model, OPT_IN_ATTRIBUTE, ()) for t in OPT_IN_TYPES[kind])
    return [(m, name) for m in model.modules() if isinstance(m, types) for name in _weights(m)]


def prunable_names(model: nn.Module) -> list[str]:
    names = {id(m): n for n, m in model.named_modules()}
    return [f"{names[id(m)]}.{p}" if names[id(m)] else p for m, p in prunable_parameters(model)]


def refresh_masked_weights(model: nn.Module) -> None:
    """Recompute `weight = weight_orig * mask`; torch only does so in a forward pass, so after an optimizer
    step, a load_state_dict or a rewind the attribute is stale until then."""
    for module in model.modules():
        for hook in module._forward_pre_hooks.values():
            if isinstance(hook, prune.BasePruningMethod):
                with torch.no_grad():
                    setattr(module, hook._tensor_name, hook.apply_mask(module))


def effective_parameters(model: nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """(name, tensor) of every parameter as the forward pass sees it: `weight`, not `weight_orig` * mask."""
    refresh_masked_weights(model)
    for mod_name, module in model.named_modules():
        for pname in list(module._parameters):
            if module._parameters[pname] is None:
                continue
            name = pname[: -len("_orig")] if pname.endswith("_orig") else pname
            yield (f"{mod_name}.{name}" if mod_name else name), getattr(module, name).detach()


def calculate_sparsity_per_parameter(model: nn.Module) -> dict[str, float]:
    return {name: float((t == 0).sum()) / t.numel() for name, t in effective_parameters(model)}


def calculate_sparsity_pruned(model: nn.Module) -> float:
    """Fraction of zeros across the prunable weights (the lab's 'sparsity'; biases excluded)."""
    targets = set(prunable_names(model))
    zeros = total = 0
    for name, t in effective_parameters(model):
        if name in targets:
            zeros += int((t == 0).sum())
            total += t.numel()
    return zeros / total if total else 0.0


def calculate_sparsity_overall(model: nn.Module) -> float:
    zeros = total = 0
    for _, t in effective_parameters(model):
        zeros += int((t == 0).sum())
        total += t.numel()
    return zeros / total if total else 0.0


def count_macs(model: nn.Module, example: np.ndarray) -> int:
    """Multiply-accumulates of one input row (Torch-Pruning's counter over the layers a forward pass calls);
    unstructured zeros still count: the dense kernels multiply them."""
    import torch_pruning as tp

    x = torch.from_numpy(np.ascontiguousarray(example[:1]))
    macs, _ = tp.utils.count_ops_and_params(without_reparametrization(model).eval(), x)
    return int(macs)


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(all parameters, nonzero parameters) of the effective model."""
    total = nonzero = 0
    for _, t in effective_parameters(model):
        total += t.numel()
        nonzero += int((t != 0).sum())
    return total, nonzero


def without_reparametrization(model: nn.Module) -> nn.Module:
    """A deep copy with prune masks folded into plain weights; the live model keeps its masks."""
    refresh_masked_weights(model)   # also detaches the computed weight, which deepcopy would refuse
    clone = copy.deepcopy(model)
    for module in clone.modules():
        for hook in list(module._forward_pre_hooks.values()):
            if isinstance(hook, prune.BasePruningMethod):
                prune.remove(module, hook._tensor_name)
    return clone


def saved_size(obj) -> int:
    """Bytes of torch.save(obj): the lab measures disk size as the size of the saved file."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getbuffer().nbytes


def state_dict_size(model: nn.Module) -> int:
    """Size of model.state_dict() as saved, on the model as it is (a pruned one carries *_orig and masks)."""
    return saved_size(model.state_dict())


@torch.inference_mode()
def predict(model: nn.Module, inputs: np.ndarray, batch_size: int = 1000,
            device: torch.device | None = None) -> np.ndarray:
    """Argmax class per row; on `device` (a copy of the model goes there) when given, else where the model is."""
    if device is not None and torch.device(device).type != "cpu":
        refresh_masked_weights(model)       # deepcopy refuses the non-leaf `weight` a forward pass leaves
        model = copy.deepcopy(model).to(device)
    model.eval()
    outs = []
    for start in range(0, len(inputs), batch_size):
        batch = torch.from_numpy(inputs[start : start + batch_size])
        outs.append(model(batch.to(device) if device is not None else batch).argmax(1).cpu().numpy())
    return np.concatenate(outs) if outs else np.zeros(0, dtype=np.int64)


def accuracy(model: nn.Module, inputs: np.ndarray, labels: np.ndarray, device: torch.device | None = None) -> float:
    """Fraction of the eval split classified correctly (the lab's 'dev accuracy'); on the CPU unless `device`."""
    return float((predict(model, inputs, device=device) == labels).mean())


@torch.inference_mode()
def host_latency_ms(model: nn.Module, example: np.ndarray, warmup: int = 20, runs: int = 200) -> float:
    """Median torch eager latency of one batch (the lab's host latency), after warm-up."""
    model.eval()
    x = torch.from_numpy(np.ascontiguousarray(example))
    for _ in range(warmup):
        model(x)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        model(x)
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1000)
