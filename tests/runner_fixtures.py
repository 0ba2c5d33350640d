"""Build a small synthetic edgeprune bundle without torch (onnx.helper + numpy only).

Used by tests/test_runner*.py and benchmarks/runner_overhead.py. Each model is an MLP
``input [N, d0] float32 -> (MatMul + Add + Relu)* -> MatMul + Add -> logits [N, classes]``.
The eval set's labels are the predictions of the first model, with a few flipped, so accuracies are known.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from runners.contract import MANIFEST_SCHEMA


@dataclass
class MLP:
    """Weights of a ReLU MLP; ``forward`` is the numpy reference for the ONNX graph."""

    weights: list[np.ndarray]
    biases: list[np.ndarray]

    @classmethod
    def random(cls, layers: Sequence[int], seed: int) -> "MLP":
        rng = np.random.default_rng(seed)
        ws = [(rng.standard_normal((a, b)) / np.sqrt(a)).astype(np.float32) for a, b in zip(layers, layers[1:])]
        bs = [(0.1 * rng.standard_normal(b)).astype(np.float32) for b in layers[1:]]
        return cls(ws, bs)

    def forward(self, x: np.ndarray) -> np.ndarray:
        h = x.astype(np.float32)
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = h @ w + b
            if i < len(self.weights) - 1:
                h = np.maximum(h, 0)
        return h

    def onnx_bytes(self, input_name: str = "input", output_name: str = "logits", batch: int | str = "N") -> bytes:
        from onnx import TensorProto, helper, numpy_helper

        nodes, inits = [], []
        prev = input_name
        n = len(self.weights)
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(b, f"b{i}")]
            nodes.append(helper.make_node("MatMul", [prev, f"w{i}"], [f"mm{i}"]))
            out = output_name if i == n - 1 else f"add{i}"
            nodes.append(helper.make_node("Add", [f"mm{i}", f"b{i}"], [out]))
            if i < n - 1:
                nodes.append(helper.make_node("Relu", [out], [f"relu{i}"]))
                prev = f"relu{i}"
        graph = helper.make_graph(
            nodes, "mlp",
            [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, [batch, self.weights[0].shape[0]])],
            [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, [batch, self.weights[-1].shape[1]])],
            initializer=inits,
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="edgeprune-test")
        model.ir_version = 8  # readable by every onnxruntime the runner supports (>= 1.18)
        return model.SerializeToString()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_entry(bundle: Path, rel: str, fmt: str | None = None) -> dict[str, Any]:
    data = (bundle / rel).read_bytes()
    entry: dict[str, Any] = {"path": rel, "bytes": len(data), "sha256": sha256_bytes(data)}
    if fmt is not None:
        entry["format"] = fmt
    return entry


def bundle_id(manifest: dict[str, Any]) -> str:
    """sha256 over the sorted (path, sha256) of every model and eval file."""
    pairs = [(f["path"], f["sha256"]) for m in manifest["models"] for f in m["files"]]
    pairs += [(e["path"], e["sha256"]) for e in manifest["evals"].values()]
    return sha256_bytes("".join(f"{p}\t{s}\n" for p, s in sorted(pairs)).encode())


def write_manifest(bundle: Path, manifest: dict[str, Any]) -> None:
    (Path(bundle) / "manifest.json").write_text(json.dumps(manifest, indent=2))


def refresh_file_entry(bundle: Path, manifest: dict[str, Any], rel: str) -> None:
    """Make the manifest's bytes/sha256 for ``rel`` match the file on disk again (e.g. after corrupting it)."""
    for m in manifest["models"]:
        for f in m["files"]:
            if f["path"] == rel:
                f.update({k: v for k, v in file_entry(bundle, rel).items() if k in ("bytes", "sha256")})
    write_manifest(bundle, manifest)


def _eval_inputs(models: list[MLP], n: int, dim: int, seed: int, margin: float) -> np.ndarray:
    """n rows whose top-2 logit margin is > ``margin`` for every model, so argmax is the same in numpy and ORT."""
    rng = np.random.default_rng(seed)
    rows: list[np.ndarray] = []
    while len(rows) < n:
        x = rng.standard_normal((4 * n, dim)).astype(np.float32)
        ok = np.ones(len(x), dtype=bool)
        for mlp in models:
            top2 = np.sort(mlp.forward(x), axis=1)[:, -2:]
            ok &= (top2[:, 1] - top2[:, 0]) > margin
        rows.extend(x[ok])
    return np.stack(rows[:n])


def build_bundle(dest: Path, layers: Sequence[int] = (8, 16, 4), n_models: int = 2, n_eval: int = 64,
                 flip: int = 8, seed: int = 0, with_runner: bool = False, margin: float = 1e-2,
                 fixed_batch: int | None = None) -> dict[str, Any]:
    """Write a bundle into ``dest`` and return its manifest (also written as dest/manifest.json).

    Models ``toy-0``, ``toy-1``, ... (different random weights, file format ``onnx``), eval set ``toy`` at
    ``eval/toy.npz`` with ``n_eval`` rows; labels = predictions of toy-0 with the first ``flip`` rows changed,
    so toy-0's accuracy is exactly (n_eval - flip) / n_eval. ``with_runner`` also writes ``runner`` and
    ``requirements.txt`` with runners.package.write_runner. ``fixed_batch`` gives the models a fixed batch
    dimension instead of the symbolic ``N``.
    """
    dest = Path(dest)
    (dest / "models").mkdir(parents=True, exist_ok=True)
    (dest / "eval").mkdir(parents=True, exist_ok=True)
    mlps = [MLP.random(layers, seed + 1000 * i) for i in range(n_models)]
    x = _eval_inputs(mlps, n_eval, layers[0], seed + 7, margin)
    labels = mlps[0].forward(x).argmax(axis=1).astype(np.int64)
    labels[:flip] = (labels[:flip] + 1) % layers[-1]
    np.savez(dest / "eval" / "toy.npz", inputs=x, labels=labels)

    models = []
    for i, mlp in enumerate(mlps):
        rel = f"models/toy-{i}.onnx"
        (dest / rel).write_bytes(mlp.onnx_bytes(batch=fixed_batch or "N"))
        params = sum(w.size + b.size for w, b in zip(mlp.weights, mlp.biases))
        models.append({
            "name": f"toy-{i}", "task": "toy", "eval": "toy", "experiment": "fixture", "method": "none",
            "iteration": 0, "seed": seed, "sparsity": 0.0, "params": int(params), "nonzero_params": int(params),
            "accuracy": float(np.mean(mlp.forward(x).argmax(axis=1) == labels)),
            "input_name": "input", "output_name": "logits", "input_shape": [None, layers[0]],
            "files": [file_entry(dest, rel, "onnx")],
        })
    manifest: dict[str, Any] = {
        "schema": MANIFEST_SCHEMA,
        "created": "2026-01-01T00:00:00+00:00",
        "edgeprune_version": "0.1.0",
        "profile": "test",
        "host": {},
        "evals": {"toy": {**file_entry(dest, "eval/toy.npz"), "n": n_eval, "input_dtype": "float32",
                          "description": "synthetic rows for runner tests"}},
        "models": models,
    }
    manifest["bundle_id"] = bundle_id(manifest)
    write_manifest(dest, manifest)
    if with_runner:
        from runners.package import write_runner

        write_runner(dest)
    return manifest


def mlp_from_onnx(path: Path) -> MLP:
    """Read the weights back from a fixture ONNX file (initializers w0, b0, w1, b1, ...)."""
    import onnx
    from onnx import numpy_helper

    inits = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer}
    n = sum(1 for k in inits if k.startswith("w"))
    return MLP([inits[f"w{i}"] for i in range(n)], [inits[f"b{i}"] for i in range(n)])


def expected_accuracy(bundle: Path, model_file: str, eval_file: str = "eval/toy.npz") -> float:
    """Accuracy of a fixture model on the bundle's eval set, computed with numpy alone."""
    mlp = mlp_from_onnx(Path(bundle) / model_file)
    with np.load(Path(bundle) / eval_file) as npz:
        x, y = npz["inputs"], npz["labels"]
    return float(np.mean(mlp.forward(x).argmax(axis=1) == y))
