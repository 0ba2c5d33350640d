"""ONNX with sparse initializers: pruned weight tensors stored as values + flat indices, loaded by onnxruntime.

Index type: the ONNX checker insists on INT64 indices (8 bytes per nonzero), which makes the file only ~2.5x
smaller than dense at 86.5% sparsity. onnxruntime also loads INT32 indices, so tensors with fewer than 2**31
elements get INT32 indices; the file is validated with onnx.checker on its INT64 twin and by onnxruntime's outputs.
A tensor is stored sparse only where that saves bytes: with 4-byte values and 4-byte indices, below 50% sparsity
the sparse form is larger than the dense one, and a "sparse" file bigger than the dense file helps nobody.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from harness.io import atomic_path

MIN_ELEMENTS = 1024     # leave small tensors (biases, norms) dense
INDEX_DTYPE = np.dtype(np.int32)


def saves_bytes(array: np.ndarray) -> bool:
    """Whether values + INT32 flat indices take fewer bytes than the dense float32 tensor."""
    nonzero = int(np.count_nonzero(array))
    return nonzero * (array.itemsize + INDEX_DTYPE.itemsize) < array.size * array.itemsize


def sparsify_initializers(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of `model` whose float initializers that are smaller sparse become graph.sparse_initializer entries."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    keep, sparse = [], []
    for init in graph.initializer:
        array = numpy_helper.to_array(init)
        if (array.dtype == np.float32 and array.size >= MIN_ELEMENTS and array.size < 2**31
                and saves_bytes(array)):
            flat = array.ravel()
            idx = np.flatnonzero(flat)
            values = numpy_helper.from_array(flat[idx], init.name)
            indices = numpy_helper.from_array(idx.astype(INDEX_DTYPE), f"{init.name}__indices")
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


def with_int64_indices(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy with every sparse initializer's indices widened to INT64, the only index type onnx.checker accepts."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    for sparse in out.graph.sparse_initializer:
        wide = numpy_helper.from_array(numpy_helper.to_array(sparse.indices).astype(np.int64), sparse.indices.name)
        sparse.indices.CopyFrom(wide)
    return out


def write_sparse_onnx(dense_path: Path, sparse_path: Path) -> int:
    """Write the sparse-initializer twin of `dense_path` and return how many tensors became sparse.

    Writes nothing (and returns 0) when no tensor is smaller sparse: the twin would only repeat the dense file.
    """
    model = sparsify_initializers(onnx.load(str(dense_path)))
    count = len(model.graph.sparse_initializer)
    if count == 0:
        return 0
    # Structural check only: ONNX shape inference types sparse initializers as sparse_tensor, which Gemm/MatMul
    # reject, although runtimes densify them at load (and onnxruntime's outputs are compared by the caller).
    onnx.checker.check_model(with_int64_indices(model), full_check=False)
    with atomic_path(Path(sparse_path)) as tmp:
        onnx.save(model, str(tmp))
    return count
