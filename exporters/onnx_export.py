"""ONNX export of a variant, checked with onnx.checker and against torch's outputs on real inputs."""

from __future__ import annotations

import contextlib
import io
import logging
import math
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from harness.errors import EdgepruneError
from harness.io import atomic_path
from harness.metrics import without_reparametrization

INPUT_NAME, OUTPUT_NAME = "input", "logits"


TRACE_ROWS = 2      # torch.export specialises a dimension of size 1: a batch of one would be baked into the graph
CHECK_BATCH = 3     # the exported graph must run a batch of another size than the one it was traced with


class ExportCheckError(EdgepruneError):
    """The exported ONNX graph does not run a batch it must accept; the message names the model."""


def trace_batch(example: np.ndarray, rows: int = TRACE_ROWS) -> np.ndarray:
    """`example` with at least `rows` rows (its rows repeated), so the batch axis is traced as a variable."""
    example = np.ascontiguousarray(example)
    return example if len(example) >= rows else np.concatenate([example] * math.ceil(rows / len(example)))[:rows]


def export_onnx(model: nn.Module, example: np.ndarray, path: Path, name: str | None = None) -> None:
    """Export with a dynamic batch axis, traced with at least two rows of `example`; masks are folded into plain
    weights on a copy first. The file must then run a batch of another size in onnxruntime, or ExportCheckError
    names the model (`name`, else its class) in one sentence: some graphs (recurrent layers, reshapes that read
    the traced shape) otherwise keep the traced batch size."""
    plain = without_reparametrization(model).eval()
    example = trace_batch(example)
    x = torch.from_numpy(example)
    batch = torch.export.Dim("batch", min=1)
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    with atomic_path(path) as tmp, warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        try:
            program = torch.onnx.export(plain, (x,), dynamo=True, input_names=[INPUT_NAME],
                                        output_names=[OUTPUT_NAME], dynamic_shapes=({0: batch},), verbose=False)
        except Exception as exc:   # noqa: BLE001 - torch.export raises many types for a batch-bound forward
            first = " ".join(str(exc).split())[:200]
            raise ExportCheckError(f"the ONNX export of {name or type(model).__name__} failed with a variable "
                                   f"batch size ({type(exc).__name__}: {first}); make the model's forward read "
                                   f"sizes from its input (x.shape) rather than constants.") from exc
        program.save(str(tmp), external_data=False)
        without_source_paths(tmp)
    onnx.checker.check_model(str(path), full_check=True)
    check_batch_axis(path, trace_batch(example, max(CHECK_BATCH, len(example) + 1)), name or type(model).__name__)


def check_batch_axis(path: Path, inputs: np.ndarray, name: str) -> None:
    """Run `inputs` (a batch size the export was not traced with) through the file; one sentence if it fails."""
    try:
        session = _session(path)
        session.run(None, {session.get_inputs()[0].name: inputs})
    except Exception as exc:   # noqa: BLE001 - onnxruntime raises several types for a graph it cannot run
        path.unlink(missing_ok=True)
        first = " ".join(str(exc).split())[:200]
        raise ExportCheckError(f"the ONNX export of {name} cannot run a batch of {len(inputs)} rows, so its graph "
                               f"kept the traced batch size or shape ({first}); make the model's forward read "
                               f"sizes from its input (x.shape) rather than constants.") from exc


STACK_TRACE_KEY = "pkg.torch.onnx.stack_trace"


def without_source_paths(path: Path) -> None:
    """Drop the exporter's per-node Python stack traces: they name the files of the checkout and the venv that ran
    the export (a user name in a path travels to every device), and make the file's sha256 depend on where
    edgeprune was cloned. The graph, weights and the other metadata (module names, scopes) stay."""
    model = onnx.load(str(path))
    nodes = list(model.graph.node) + [n for f in model.functions for n in f.node]
    for node in nodes:
        kept = [p for p in node.metadata_props if p.key != STACK_TRACE_KEY]
        del node.metadata_props[:]
        node.metadata_props.extend(kept)
    onnx.save(model, str(path))


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
