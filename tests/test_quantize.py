"""exporters.quantize (int8 ONNX twins) and the lossy int8 storage formats."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from exporters.onnx_export import export_onnx
from exporters.quantize import export_int8, int8_selection, quantize_dynamic_int8, quantize_static_int8
from harness import metrics
from harness.experiments.variant import Variant
from harness.pruning import PruneContext, get_method
from runners.contract import format_key
from harness.storage import compact_bytes, load_compact, storage_sizes
from harness.training import TrainConfig, train

from conftest import make_ffn


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_task):
    model = make_ffn()
    train(model, tiny_task.train_x, tiny_task.train_y, TrainConfig(epochs=3, batch_size=64, lr=0.01), seed=0,
          label="quantize test", quiet=True)
    get_method("l1")(model, 0.5, PruneContext())
    path = tmp_path_factory.mktemp("q") / "model.onnx"
    export_onnx(model, tiny_task.eval_x[:1], path)
    return model, path


def logits(path, x):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def test_dynamic_and_static_int8_load_and_agree_with_fp32(trained, tiny_task, tmp_path):
    model, src = trained
    dynamic, static = tmp_path / "d.onnx", tmp_path / "s.onnx"
    quantize_dynamic_int8(src, dynamic)
    quantize_static_int8(src, static, tiny_task.train_x)
    reference = logits(src, tiny_task.eval_x).argmax(1)
    for path in (dynamic, static):
        onnx.checker.check_model(str(path), full_check=True)
        ops = {n.op_type for n in onnx.load(str(path)).graph.node}
        assert ops & {"DynamicQuantizeLinear", "MatMulInteger", "QuantizeLinear", "DequantizeLinear"}, ops
        assert (logits(path, tiny_task.eval_x).argmax(1) == reference).mean() >= 0.9, path.name
        assert path.stat().st_size < src.stat().st_size


def test_export_int8_caches_files_and_checks(trained, tiny_task, tmp_path):
    _, src = trained
    local = tmp_path / "model.onnx"
    local.write_bytes(src.read_bytes())
    files, checks = export_int8(local, tiny_task.train_x, tiny_task.eval_x, tiny_task.eval_y)
    assert [fmt for _, fmt in files] == ["onnx-int8-dynamic", "onnx-int8-static"]
    assert checks["onnx_int8_static_agreement"] >= 0.9 and checks["onnx_int8_dynamic_agreement"] >= 0.9
    for path, fmt in files:      # the int8 file's own accuracy, which a device measuring that file must match
        want = (logits(path, tiny_task.eval_x).argmax(1) == tiny_task.eval_y).mean()
        assert checks[f"{format_key(fmt)}_accuracy"] == pytest.approx(want)
    stamp = files[1][0].stat().st_mtime_ns
    assert export_int8(local, tiny_task.train_x, tiny_task.eval_x, tiny_task.eval_y)[1] == checks
    assert files[1][0].stat().st_mtime_ns == stamp                # cached: not quantized again


def test_int8_weights_are_7_bit_so_every_isa_computes_the_same(trained, tiny_task, tmp_path):
    """reduce_range (docs/methods.md): the int8 weights of both files stay in [-64, 64], so the 16-bit sums of two
    u8 x s8 products that AVX2's vpmaddubsw makes (at most 2 x 255 x 64 = 32640) cannot saturate, and a CPU without
    VNNI computes what a VNNI one does."""
    from onnx import numpy_helper

    from exporters.quantize import INT8

    assert INT8.reduce_range
    _, src = trained
    files, checks = export_int8(_local_copy(src, tmp_path), tiny_task.train_x, tiny_task.eval_x, tiny_task.eval_y)
    assert checks["onnx_int8_settings"] == INT8.to_json()
    for path, _ in files:
        weights = [numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer
                   if t.data_type == onnx.TensorProto.INT8 and numpy_helper.to_array(t).size > 16]
        assert weights and all(w.min() >= -64 and w.max() <= 64 for w in weights), path.name


def test_int8_files_of_other_settings_are_made_again(trained, tiny_task, tmp_path, monkeypatch):
    import exporters.quantize as quantize

    _, src = trained
    local = _local_copy(src, tmp_path)
    monkeypatch.setattr(quantize, "INT8", quantize.CANDIDATES["full-range"])
    files, checks = export_int8(local, tiny_task.train_x, tiny_task.eval_x, tiny_task.eval_y)
    assert checks["onnx_int8_settings"]["reduce_range"] is False
    monkeypatch.setattr(quantize, "INT8", quantize.CANDIDATES["reduce-range"])
    _, again = export_int8(local, tiny_task.train_x, tiny_task.eval_x, tiny_task.eval_y)
    assert again["onnx_int8_settings"]["reduce_range"] is True


def _local_copy(src, tmp_path):
    local = tmp_path / "model.onnx"
    local.write_bytes(src.read_bytes())
    return local


def test_host_int8_accuracy_is_what_the_runner_measures_on_the_same_file(trained, tiny_task, tmp_path):
    """Dynamic int8 scales activations per call, so the host check batches the eval set as the runner does."""
    from runners.session import eval_accuracy
    from runners.settings import BenchSettings

    _, src = trained
    local = tmp_path / "model.onnx"
    local.write_bytes(src.read_bytes())
    rng = np.random.default_rng(3)
    eval_x = rng.standard_normal((1000, tiny_task.eval_x.shape[1])).astype(np.float32) * 3
    eval_y = rng.integers(0, 3, 1000)
    files, checks = export_int8(local, tiny_task.train_x, eval_x, eval_y)
    assert checks["onnx_int8_eval_batch"] == BenchSettings().eval_batch_size
    for path, fmt in files:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        runner = eval_accuracy(session, session.get_inputs()[0].name, session.get_outputs()[0].name, eval_x, eval_y,
                           BenchSettings().eval_batch_size, None, np.float32)
        assert checks[f"{format_key(fmt)}_accuracy"] == runner


def test_int8_selection_takes_baseline_structured_and_sparsest_imp():
    def v(name, experiment, method, sparsity):
        return Variant(name=name, task="t", experiment=experiment, method=method, iteration=0, seed=0, model={},
                       metrics={"sparsity": sparsity})
    variants = [v("base", "baseline", "", 0), v("s", "structured", "neurons", 0.5), v("r", "repeated", "l1", 0.9),
                v("i1", "imp", "l1", 0.3), v("i2", "imp", "l1", 0.6), v("w1", "imp", "wanda", 0.3)]
    assert int8_selection(variants) == {"base", "s", "i2", "w1"}


def test_bitmask_int8_round_trip_keeps_mask_and_accuracy(trained, tiny_task):
    model, _ = trained
    plain = metrics.without_reparametrization(model)
    state = load_compact(compact_bytes(model, "bitmask_int8"))
    restored = make_ffn(seed=1)
    restored.load_state_dict(state)
    for name, tensor in plain.state_dict().items():
        if name.endswith("weight"):
            assert bool(((state[name] == 0) >= (tensor == 0)).all()), name     # pruned weights stay zero
            step = tensor.abs().reshape(tensor.shape[0], -1).amax(1) / 127
            assert bool(((state[name] - tensor).abs().reshape(tensor.shape[0], -1) <= step[:, None] / 2 + 1e-7)
                        .all()), name
    acc = metrics.accuracy(plain, tiny_task.eval_x, tiny_task.eval_y)
    assert abs(metrics.accuracy(restored, tiny_task.eval_x, tiny_task.eval_y) - acc) <= 0.02


def test_int8_storage_sizes_are_smaller_than_fp32(trained):
    model, _ = trained
    sizes = storage_sizes(model)
    assert sizes["bitmask_int8"] < sizes["bitmask"]
    assert sizes["torch_dynamic_int8"] < sizes["dense"]
