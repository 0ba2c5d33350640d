"""ONNX export of a variant, checked with onnx.checker and against torch's outputs on real inputs."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from harness.io import atomic_path
from harness.metrics import without_reparametrization

INPUT_NAME, OUTPUT_NAME = "input", "logits"
# Node metadata the dynamo exporter fills with source file paths and line numbers: it made a file's sha256 depend
# on where the checkout lies and on how a Dask worker got the user's module (from the file or by value).
PATH_METADATA = ("pkg.torch.onnx.stack_trace",)


def export_onnx(model: nn.Module, example: np.ndarray, path: Path) -> None:
    """Export with a dynamic batch axis; masks are folded into plain weights on a copy first."""
    plain = without_reparametrization(model).eval()
    x = torch.from_numpy(np.ascontiguousarray(example))
    batch = torch.export.Dim("batch", min=1)
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    with atomic_path(path) as tmp, warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(plain, (x,), dynamo=True, input_names=[INPUT_NAME],
                                    output_names=[OUTPUT_NAME], dynamic_shapes=({0: batch},), verbose=False)
        for graph in (program.model.graph, *program.model.functions.values()):
            for node in graph.all_nodes():
                for key in PATH_METADATA:
                    node.metadata_props.pop(key, None)
        program.save(str(tmp), external_data=False)
    onnx.checker.check_model(str(path), full_check=True)


def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def same_predictions(path_a: Path, path_b: Path, inputs: np.ndarray, batch: int = 1000) -> bool:
    """Whether two ONNX files give the same argmax on every row of `inputs`."""
    a, b = _session(path_a), _session(path_b)
    for start in range(0, len(inputs), batch):
        x = inputs[start : start + batch]
        ya = a.run(None, {a.get_inputs()[0].name: x})[0].argmax(1)
        yb = b.run(None, {b.get_inputs()[0].name: x})[0].argmax(1)
        if not np.array_equal(ya, yb):
            return False
    return True


def max_abs_diff(path: Path, model: nn.Module, inputs: np.ndarray) -> float:
    """Largest |onnxruntime - torch| over the logits of `inputs` (real eval rows, not random noise)."""
    session = _session(path)
    name = session.get_inputs()[0].name
    got = session.run(None, {name: inputs})[0]
    with torch.inference_mode():
        want = without_reparametrization(model).eval()(torch.from_numpy(inputs)).numpy()
    return float(np.abs(got - want).max())
