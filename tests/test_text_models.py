"""harness.models.text: the SST-2 FFN and the Transformer classifier (shapes, padding, 0 heads, ONNX export)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from exporters.onnx_export import export_onnx, max_abs_diff
from harness.data import TaskData
from harness.metrics import prunable_names
from harness.models import build_model
from harness.models.text import EmbeddingBagFFN, TransformerClassifier

VOCAB, LEN = 50, 12


def tokens(seed: int = 0, rows: int = 5) -> np.ndarray:
    """Rows of 1-12 real tokens (ids >= 1) followed by padding; one row is all padding."""
    rng = np.random.default_rng(seed)
    x = np.zeros((rows, LEN), dtype=np.int64)
    for i in range(rows - 1):
        n = rng.integers(1, LEN + 1)
        x[i, :n] = rng.integers(1, VOCAB, n)
    return x


def models():
    torch.manual_seed(0)
    return [EmbeddingBagFFN(VOCAB, embed_dim=16, hidden=8).eval(),
            TransformerClassifier(VOCAB, d_model=16, n_heads=2, head_dim=8, d_ff=24, max_len=LEN + 4).eval()]


@pytest.mark.parametrize("model", models(), ids=["ffn", "transformer"])
def test_logits_shape_and_finite_for_an_all_padding_row(model):
    out = model(torch.from_numpy(tokens()))
    assert out.shape == (5, 2) and torch.isfinite(out).all()


@pytest.mark.parametrize("model", models(), ids=["ffn", "transformer"])
def test_trailing_padding_does_not_change_the_output(model):
    x = torch.from_numpy(tokens())
    longer = torch.cat([x, torch.zeros(len(x), 4, dtype=torch.int64)], dim=1)
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(longer), rtol=1e-5, atol=1e-6)


def test_embedding_of_padding_gets_no_gradient_and_ffn_keeps_lab_names():
    model = models()[0]
    model(torch.from_numpy(tokens())).sum().backward()
    assert model.embedding.weight.grad[0].abs().sum() == 0
    assert prunable_names(model) == ["layers.0.weight", "layers.1.weight", "layers.2.weight", "out.weight"]
    narrow = EmbeddingBagFFN(VOCAB, embed_dim=16, hidden_sizes=[8, 4, 2])
    assert [layer.out_features for layer in narrow.layers] == [8, 4, 2] and narrow.out.in_features == 2


def test_transformer_structure_other_code_relies_on():
    model = TransformerClassifier(VOCAB, d_model=16, n_layers=2, n_heads=2, head_dim=8, d_ff=24, max_len=LEN)
    layer = model.layers[0]
    assert layer.attn.q.weight.shape == (16, 16) and layer.attn.o.weight.shape == (16, 16)
    assert (layer.attn.n_heads, layer.attn.head_dim) == (2, 8)
    assert layer.fc1.weight.shape == (24, 16) and layer.fc2.weight.shape == (16, 24)
    assert model.tok_emb.padding_idx == 0 and model.pos_emb.num_embeddings == LEN
    assert model.head.weight.shape == (2, 16)


def test_zero_heads_and_zero_layers_still_classify():
    x = torch.from_numpy(tokens())
    torch.manual_seed(0)
    pruned = TransformerClassifier(VOCAB, d_model=16, n_layers=2, head_dim=8, max_len=LEN,
                                   heads_per_layer=[0, 1], ff_per_layer=[24, 5]).eval()
    assert pruned.layers[0].attn.q.weight.shape == (0, 16) and pruned.layers[1].fc1.out_features == 5
    assert pruned(x).shape == (5, 2)
    # 0 heads: the attention branch adds nothing, whatever its (empty) projections hold
    attn = pruned.layers[0].attn
    assert torch.equal(attn(torch.randn(5, LEN, 16), x == 0), torch.zeros(5, LEN, 16))
    empty = TransformerClassifier(VOCAB, d_model=16, n_layers=0, max_len=LEN).eval()
    assert empty(x).shape == (5, 2) and len(empty.layers) == 0
    with pytest.raises(ValueError):
        TransformerClassifier(VOCAB, n_layers=2, heads_per_layer=[1])


def test_registry_builds_the_sst2_models_from_the_task_description():
    task = TaskData("sst2", tokens(), np.zeros(5, np.int64), tokens(1), np.zeros(5, np.int64), 2, "toy",
                    extra={"vocab_size": VOCAB, "max_len": LEN})
    ffn = build_model("sst2-ffn", task, hidden_sizes=[8, 8, 8], embed_dim=16)
    assert ffn.embedding.num_embeddings == VOCAB and len(ffn.layers) == 3
    transformer = build_model("transformer", task, heads_per_layer=[4, 2])
    assert transformer.pos_emb.num_embeddings == LEN and transformer.layers[1].attn.n_heads == 2


@pytest.mark.parametrize("index", [0, 1], ids=["ffn", "transformer"])
def test_onnx_export_with_dynamic_batch_matches_torch(tmp_path, index):
    model = models()[index]
    x = tokens(rows=9)
    path = tmp_path / "model.onnx"
    export_onnx(model, x[:1], path)
    assert max_abs_diff(path, model, x) < 1e-5          # 9 rows through a file exported with batch 1


def test_onnx_export_of_a_transformer_with_a_zero_head_layer(tmp_path):
    torch.manual_seed(0)
    model = TransformerClassifier(VOCAB, d_model=16, n_layers=2, head_dim=8, max_len=LEN,
                                  heads_per_layer=[0, 2], ff_per_layer=[24, 24]).eval()
    path = tmp_path / "model.onnx"
    export_onnx(model, tokens()[:1], path)
    assert max_abs_diff(path, model, tokens(rows=7)) < 1e-5
