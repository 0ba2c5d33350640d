"""exporters.onnx_export: a masked model exports to a checked ONNX file with a dynamic batch that matches torch."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import numpy_helper

from exporters.onnx_export import INPUT_NAME, OUTPUT_NAME, export_onnx, max_abs_diff
from harness import metrics
from harness.pruning import global_prune, masks_of

from conftest import make_ffn, make_task


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """One export per module (the dynamo exporter takes seconds): a 50%-pruned FFN, from a 1-row example
    as the bundle builder passes it."""
    task = make_task()
    model = make_ffn()
    global_prune(model, 0.5)
    state_before = {k: v.clone() for k, v in model.state_dict().items()}
    path = tmp_path_factory.mktemp("onnx") / "model.onnx"
    export_onnx(model, task.eval_x[:1], path)
    return model, path, task, state_before


def test_export_writes_a_checked_model(exported):
    model, path, task, _ = exported
    assert path.is_file() and path.stat().st_size > 0
    onnx.checker.check_model(str(path), full_check=True)
    proto = onnx.load(str(path))
    assert [i.name for i in proto.graph.input] == [INPUT_NAME]
    assert [o.name for o in proto.graph.output] == [OUTPUT_NAME]
    assert [p.name for p in path.parent.iterdir()] == ["model.onnx"], "no temporary file left beside it"


def test_export_matches_torch_within_tolerance(exported):
    model, path, task, _ = exported
    assert max_abs_diff(path, model, task.eval_x[:64]) < 1e-4


@pytest.mark.parametrize("batch", [1, 7])
def test_export_has_a_dynamic_batch(exported, batch):
    model, path, task, _ = exported
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = task.eval_x[:batch]
    (logits,) = session.run([OUTPUT_NAME], {INPUT_NAME: x})
    assert logits.shape == (batch, 3)
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(logits, want, atol=1e-5, rtol=1e-5)


def test_export_folds_the_masks_into_the_weights(exported):
    model, path, _, _ = exported
    proto = onnx.load(str(path))
    zeros = sum(int((numpy_helper.to_array(t) == 0).sum()) for t in proto.graph.initializer)
    pruned = sum(int((~m).sum()) for m in masks_of(model).values())
    assert zeros >= pruned
    sizes = sorted(numpy_helper.to_array(t).size for t in proto.graph.initializer)
    assert sizes.count(1024) == 1 and 512 in sizes and 96 in sizes     # plain weights only, no mask tensors


def test_export_leaves_the_live_model_masked(exported):
    model, _, task, state_before = exported
    state = model.state_dict()
    assert list(state) == list(state_before)
    assert all(torch.equal(state[k], v) for k, v in state_before.items())
    assert len(model.layers[0]._forward_pre_hooks) == 1
    assert metrics.calculate_sparsity_pruned(model) == pytest.approx(0.5, abs=1e-3)


def test_max_abs_diff_detects_a_model_that_drifted(exported, tmp_path):
    model, path, task, _ = exported
    drifted = make_ffn()
    global_prune(drifted, 0.5)
    with torch.no_grad():
        drifted.out.bias.add_(0.5)
    assert max_abs_diff(path, drifted, task.eval_x[:8]) == pytest.approx(0.5, abs=1e-4)


def test_onnx_files_name_no_source_path(tmp_path):
    """Two checkouts export the same bytes: the exporter's stack traces (absolute paths) are not kept."""
    from pathlib import Path

    from exporters.onnx_export import STACK_TRACE_KEY

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    path = tmp_path / "m.onnx"
    export_onnx(model, np.zeros((2, 4), np.float32), path)
    keys = {p.key for n in onnx.load(str(path)).graph.node for p in n.metadata_props}
    assert STACK_TRACE_KEY not in keys and keys            # other metadata (scopes, class names) stays
    assert str(Path(__file__).resolve().parents[1]) not in path.read_bytes().decode("latin-1")


class GRUClassifier(torch.nn.Module):
    """Token ids -> embedding -> GRU -> last hidden state -> logits: traced with one row, the exporter used to
    bake batch 1 into the recurrent graph."""

    def __init__(self):
        super().__init__()
        self.emb, self.gru, self.fc = torch.nn.Embedding(50, 8), torch.nn.GRU(8, 16, batch_first=True), \
            torch.nn.Linear(16, 2)

    def forward(self, tokens):
        _, h = self.gru(self.emb(tokens))
        return self.fc(h[-1])


class BatchOfTwo(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(x) + torch.zeros(2, 3)     # only a batch of exactly 2 broadcasts


def test_a_recurrent_model_traced_from_one_row_runs_any_batch(tmp_path):
    torch.manual_seed(0)
    model = GRUClassifier().eval()
    tokens = np.random.default_rng(0).integers(1, 50, (300, 7)).astype(np.int64)
    export_onnx(model, tokens[:1], tmp_path / "gru.onnx")
    assert max_abs_diff(tmp_path / "gru.onnx", model, tokens[:256]) < 1e-5


def test_a_graph_bound_to_its_traced_batch_is_one_sentence_naming_the_model(tmp_path):
    from exporters.onnx_export import ExportCheckError

    with pytest.raises(ExportCheckError) as info:
        export_onnx(BatchOfTwo().eval(), np.zeros((1, 4), np.float32), tmp_path / "m.onnx", name="user-x-s0")
    assert "user-x-s0" in str(info.value) and "\n" not in str(info.value)
    assert list(tmp_path.iterdir()) == []
