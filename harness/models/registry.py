"""Model names -> builders. Adding a model is one file plus one line here."""

from __future__ import annotations

from typing import Callable

from torch import nn

from harness.errors import EdgepruneError
from harness.models.ffn import FFN


def _mnist_ffn(task, **kw) -> nn.Module:
    return FFN(in_features=int(task.eval_x.shape[1]), hidden=kw.get("hidden", 1024),
               hidden_layers=kw.get("hidden_layers", 2), num_classes=task.num_classes)


MODELS: dict[str, Callable[..., nn.Module]] = {"ffn": _mnist_ffn}


def build_model(name: str, task, **kw) -> nn.Module:
    if name not in MODELS:
        raise EdgepruneError(f"unknown model {name!r}; known models: {', '.join(sorted(MODELS))}.")
    return MODELS[name](task, **kw)
