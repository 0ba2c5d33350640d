"""exporters.sparse_onnx: the sparse-initializer twin is smaller than the dense file, or not written at all."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper
import onnxruntime as ort
import pytest

from exporters.onnx_export import export_onnx
from exporters.sparse_onnx import saves_bytes, write_sparse_onnx
from harness.pruning import global_prune

from conftest import make_ffn, make_task


def test_sparse_storage_pays_only_below_half_density():
    tensor = np.zeros(1000, dtype=np.float32)
    tensor[:500] = 1.0      # 500 nonzeros x (4-byte value + 4-byte index) = 4000 bytes, as many as dense
    assert not saves_bytes(tensor)
    tensor[499] = 0.0
    assert saves_bytes(tensor)


@pytest.fixture(scope="module")
def task():
    return make_task()


def pruned_onnx(folder, task, amount: float):
    model = make_ffn(hidden=64)     # 16x64 and 64x64 weights reach the 1024-element floor, 64x3 does not
    global_prune(model, amount)
    path = folder / "model.onnx"
    export_onnx(model, task.eval_x[:1], path)
    return path


def run(path, x):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def test_a_75_percent_pruned_model_gets_a_smaller_twin_with_identical_outputs(tmp_path, task):
    dense = pruned_onnx(tmp_path, task, 0.75)
    sparse = tmp_path / "model.sparse.onnx"
    count = write_sparse_onnx(dense, sparse)
    proto = onnx.load(str(sparse))
    assert count == len(proto.graph.sparse_initializer) >= 1
    assert sparse.stat().st_size < dense.stat().st_size
    for tensor in proto.graph.sparse_initializer:
        assert tensor.indices.data_type == onnx.TensorProto.INT32
        assert np.prod(tensor.dims) > 2 * len(numpy_helper.to_array(tensor.values))
    np.testing.assert_array_equal(run(sparse, task.eval_x), run(dense, task.eval_x))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx", "model.sparse.onnx"]


def test_a_33_percent_pruned_model_gets_no_twin(tmp_path, task):
    """Values plus indices would take more bytes than the dense tensors: no file, and the count says so."""
    dense = pruned_onnx(tmp_path, task, 0.33)
    sparse = tmp_path / "model.sparse.onnx"
    assert write_sparse_onnx(dense, sparse) == 0
    assert not sparse.exists()


def test_export_variant_rebuilds_a_twin_that_went_missing(tmp_path, train_settings, tiny_task):
    """The cached check says 'a twin with N sparse tensors': a deleted twin is written again, not listed missing."""
    import dataclasses

    from exporters.bundle import export_variant
    from harness.experiments.repeated import repeated_pruning
    from harness.experiments.settings import PruneSettings

    ts = dataclasses.replace(train_settings, model_kwargs=(("hidden", 64),))
    variant = repeated_pruning(tmp_path, ts, PruneSettings(amount=0.6), 2, tiny_task, quiet=True)[-1]  # 84%
    first = export_variant(variant, tiny_task)
    twin = next(f.path for f in first.files if f.format == "onnx-sparse")
    assert first.checks["onnx_sparse_tensors"] >= 1 and first.checks["onnx_sparse_same_predictions"]
    twin.unlink()
    again = export_variant(variant, tiny_task)
    assert [f.format for f in again.files] == ["onnx", "onnx-sparse"] and twin.is_file()
