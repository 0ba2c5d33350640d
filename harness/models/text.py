"""Text classifiers over int64 token ids (0 = padding): the lab's SST-2 FFN and a small Transformer encoder.

Both pool with a masked mean over the non-padding tokens, written with plain tensor ops so that the ONNX export
has one int64 input and needs no EmbeddingBag or fused attention kernel.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from harness.models.ffn import FFN

PAD = 0


def masked_mean(h: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Mean of h [B, L, D] over positions whose token is not padding; an all-padding row gives zeros."""
    mask = (tokens != PAD).unsqueeze(-1).to(h.dtype)
    return (h * mask).sum(1) / mask.sum(1).clamp(min=1.0)


class EmbeddingBagFFN(FFN):
    """Token embedding mean-pooled over the sentence (an "embedding bag"), then the FFN: layers.*, out."""

    def __init__(self, vocab_size: int, embed_dim: int = 128, hidden: int = 256, hidden_layers: int = 3,
                 num_classes: int = 2, hidden_sizes: list[int] | None = None):
        super().__init__(in_features=embed_dim, hidden=hidden, hidden_layers=hidden_layers,
                         num_classes=num_classes, hidden_sizes=hidden_sizes)
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=PAD)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return super().forward(masked_mean(self.embedding(tokens), tokens))


class MultiHeadSelfAttention(nn.Module):
    """q, k, v: d_model -> n_heads*head_dim; o: n_heads*head_dim -> d_model. Zero heads contribute zero."""

    def __init__(self, d_model: int, n_heads: int, head_dim: int, dropout: float = 0.0):
        super().__init__()
        self.n_heads, self.head_dim = n_heads, head_dim
        inner = n_heads * head_dim
        self.q = nn.Linear(d_model, inner)
        self.k = nn.Linear(d_model, inner)
        self.v = nn.Linear(d_model, inner)
        self.o = nn.Linear(inner, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, pad_mask: torch.Tensor) -> torch.Tensor:
        """x [B, L, D]; pad_mask [B, L] True at padding (those keys get no attention)."""
        if self.n_heads == 0:
            return torch.zeros_like(x)
        b, length, _ = x.shape

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(b, length, self.n_heads, self.head_dim).transpose(1, 2)

        q, k, v = heads(self.q(x)), heads(self.k(x)), heads(self.v(x))
        scores = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(self.head_dim)
        # A large finite penalty, not -inf: an all-padding row then stays finite instead of NaN.
        scores = scores + pad_mask[:, None, None, :].to(scores.dtype) * -1e9
        weights = self.dropout(torch.softmax(scores, dim=-1))
        ctx = torch.matmul(weights, v).transpose(1, 2).reshape(b, length, self.n_heads * self.head_dim)
        return self.o(ctx)


class EncoderLayer(nn.Module):
    """Pre-norm: x + attn(norm1(x)), then x + fc2(relu(fc1(norm2(x))))."""

    def __init__(self, d_model: int, n_heads: int, head_dim: int, d_ff: int, dropout: float = 0.1):
        super().__init__()
        self.norm1 = nn.LayerNorm(d_model)
        self.attn = MultiHeadSelfAttention(d_model, n_heads, head_dim, dropout)
        self.norm2 = nn.LayerNorm(d_model)
        self.fc1 = nn.Linear(d_model, d_ff)
        self.fc2 = nn.Linear(d_ff, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, pad_mask: torch.Tensor) -> torch.Tensor:
        if self.attn.n_heads > 0:
            x = x + self.dropout(self.attn(self.norm1(x), pad_mask))
        return x + self.dropout(self.fc2(torch.relu(self.fc1(self.norm2(x)))))


class TransformerClassifier(nn.Module):
    """Token + learned position embeddings, pre-norm encoder layers, final LayerNorm, masked mean, Linear head.

    `heads_per_layer` and `ff_per_layer` rebuild a structurally pruned model (fewer heads or fc1 neurons per
    layer); a layer with 0 heads skips attention, and n_layers may be 0.
    """

    def __init__(self, vocab_size: int, num_classes: int = 2, d_model: int = 128, n_layers: int = 2,
                 n_heads: int = 4, head_dim: int = 32, d_ff: int = 256, max_len: int = 48,
                 heads_per_layer: list[int] | None = None, ff_per_layer: list[int] | None = None,
                 dropout: float = 0.1):
        super().__init__()
        heads = list(heads_per_layer) if heads_per_layer is not None else [n_heads] * n_layers
        ffs = list(ff_per_layer) if ff_per_layer is not None else [d_ff] * n_layers
        if len(heads) != n_layers or len(ffs) != n_layers:
            raise ValueError(f"heads_per_layer and ff_per_layer need {n_layers} entries, got {heads} and {ffs}")
        self.max_len = max_len
        self.tok_emb = nn.Embedding(vocab_size, d_model, padding_idx=PAD)
        self.pos_emb = nn.Embedding(max_len, d_model)
        self.dropout = nn.Dropout(dropout)
        self.layers = nn.ModuleList(EncoderLayer(d_model, h, head_dim, f, dropout) for h, f in zip(heads, ffs))
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, num_classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        x = self.dropout(self.tok_emb(tokens) + self.pos_emb(positions)[None])
        pad_mask = tokens == PAD
        for layer in self.layers:
            x = layer(x, pad_mask)
        return self.head(masked_mean(self.norm(x), tokens))
