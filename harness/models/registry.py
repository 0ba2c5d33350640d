"""Model names -> builders. Adding a model is one file plus one line here."""

from __future__ import annotations

from typing import Callable

from torch import nn

from harness.errors import EdgepruneError
from harness.models.ffn import FFN
from harness.models.text import EmbeddingBagFFN, TransformerClassifier


def _mnist_ffn(task, **kw) -> nn.Module:
    return FFN(in_features=int(task.eval_x.shape[1]), hidden=kw.get("hidden", 1024),
               hidden_layers=kw.get("hidden_layers", 2), num_classes=task.num_classes)


def _sst2_ffn(task, **kw) -> nn.Module:
    return EmbeddingBagFFN(vocab_size=task.extra["vocab_size"], num_classes=task.num_classes, **kw)


def _transformer(task, **kw) -> nn.Module:
    return TransformerClassifier(vocab_size=task.extra["vocab_size"], num_classes=task.num_classes,
                                 max_len=task.extra.get("max_len", 48), **kw)


MODELS: dict[str, Callable[..., nn.Module]] = {"ffn": _mnist_ffn, "sst2-ffn": _sst2_ffn, "transformer": _transformer}


def build_model(name: str, task, **kw) -> nn.Module:
    if name not in MODELS:
        raise EdgepruneError(f"unknown model {name!r}; known models: {', '.join(sorted(MODELS))}.")
    return MODELS[name](task, **kw)
