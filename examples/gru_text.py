"""A GRU text classifier for `harness export --model examples/gru_text.py:build`: SST-2 token ids -> embedding ->
GRU -> mean of its outputs over the non-padding tokens -> logits.

It opts its recurrent weights into pruning (`prunable`): by default edgeprune prunes Linear and Conv weights only,
which here would be the classifier's 256 weights out of some 1.5 million parameters. With the opt-in, the GRU's
weight_ih/weight_hh matrices are pruned too and every sparsity edgeprune prints is a fraction of those weights plus
the classifier's (the whole-model figure beside it). `build_synthetic()` needs no data files.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

PAD = 0


class GRUClassifier(nn.Module):
    def __init__(self, vocab_size: int, embed_dim: int = 64, hidden: int = 128, num_classes: int = 2):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=PAD)
        self.gru = nn.GRU(embed_dim, hidden, batch_first=True)
        self.fc = nn.Linear(hidden, num_classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        out, _ = self.gru(self.embedding(tokens))
        mask = (tokens != PAD).unsqueeze(-1).to(out.dtype)
        return self.fc((out * mask).sum(1) / mask.sum(1).clamp(min=1.0))


def _result(name: str, train, eval_, vocab_size: int, description: str, **model_kwargs) -> dict:
    torch.manual_seed(0)
    return {"name": name, "model": GRUClassifier(vocab_size, **model_kwargs), "train": train, "eval": eval_,
            "num_classes": 2, "description": description, "prunable": ("linear", "conv", "recurrent"),
            "training": {"lr": 0.003}}


def build(data_dir=None) -> dict:
    from harness.data import load_task, resolve_data_dir

    sst2 = load_task("sst2", data_dir or resolve_data_dir(None))
    return _result("sst2-gru", (sst2.train_x, sst2.train_y), (sst2.eval_x, sst2.eval_y), sst2.extra["vocab_size"],
                   sst2.description)


def build_synthetic(n_train: int = 600, n_eval: int = 200, length: int = 12, vocab: int = 40) -> dict:
    """Sequences of random tokens (1..vocab-1) padded at the end; class 1 when token 3 appears more often than
    token 4: the model has to count along the sequence."""
    rng = np.random.default_rng(0)
    n = n_train + n_eval
    tokens = rng.integers(1, vocab, (n, length))
    tokens[np.arange(length)[None, :] >= rng.integers(length // 2, length + 1, n)[:, None]] = PAD
    labels = ((tokens == 3).sum(1) > (tokens == 4).sum(1)).astype(np.int64)
    return _result("synthetic-gru", (tokens[:n_train], labels[:n_train]), (tokens[n_train:], labels[n_train:]),
                   vocab, "synthetic token sequences: is token 3 more frequent than token 4", embed_dim=16,
                   hidden=32)
