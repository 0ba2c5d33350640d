"""ONNX with sparse initializers: pruned weight tensors stored as values + flat indices, loaded by onnxruntime.

Index type: the ONNX checker insists on INT64 indices (8 bytes per nonzero), which makes the file only ~2.5x
smaller than dense at 86.5% sparsity. onnxruntime also loads INT32 indices, so tensors with fewer than 2**31
elements get INT32 indices; the file is validated with onnx.checker on its INT64 twin and by onnxruntime's outputs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from harness.io import atomic_path

MIN_SPARSITY = 0.10     # below this a sparse tensor is not smaller than the dense one
MIN_ELEMENTS = 1024     # leave small tensors (biases, norms) dense


def sparsify_initializers(model: onnx.ModelProto, index_dtype=np.int32) -> onnx.ModelProto:
    """A copy of `model` whose mostly-zero float initializers become graph.sparse_initializer entries."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    keep, sparse = [], []
    for init in graph.initializer:
        array = numpy_helper.to_array(init)
        if (array.dtype == np.float32 and array.size >= MIN_ELEMENTS
                and (array == 0).mean() >= MIN_SPARSITY and array.size < 2**31):
            flat = array.ravel()
            idx = np.flatnonzero(flat)
            values = numpy_helper.from_array(flat[idx], init.name)
            indices = numpy_helper.from_array(idx.astype(index_dtype), f"{init.name}__indices")
            sparse.append(helper.make_sparse_tensor(values, indices, list(array.shape)))
        else:
            keep.append(init)
    del graph.initializer[:]
    graph.initializer.extend(keep)
    graph.sparse_initializer.extend(sparse)
    # The exporter records initializers' dense types in value_info; they would contradict the sparse type.
    sparse_names = {s.values.name for s in sparse}
    kept_info = [v for v in graph.value_info if v.name not in sparse_names]
    del graph.value_info[:]
    graph.value_info.extend(kept_info)
    return out


def write_sparse_onnx(dense_path: Path, sparse_path: Path) -> int:
    """Write the sparse-initializer twin of `dense_path`; returns how many tensors became sparse."""
    dense = onnx.load(str(dense_path))
    # Structural check only: ONNX shape inference types sparse initializers as sparse_tensor, which Gemm/MatMul
    # reject, although runtimes densify them at load (and onnxruntime's outputs are compared by the caller).
    onnx.checker.check_model(sparsify_initializers(dense, np.int64), full_check=False)
    model = sparsify_initializers(dense, np.int32)
    with atomic_path(Path(sparse_path)) as tmp:
        onnx.save(model, str(tmp))
    return len(model.graph.sparse_initializer)
