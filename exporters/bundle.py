"""The device bundle: manifest, ONNX models, eval sets, the runner zipapp and its requirements."""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import harness
from harness.data import TaskData
from harness.errors import EdgepruneError
from harness.experiments.store import read_json
from harness.experiments.variant import Variant
from harness.io import sha256_file, write_json
from harness.staging import staged_folder
from exporters.onnx_export import (INPUT_NAME, OUTPUT_NAME, TRACE_ROWS, export_onnx, max_abs_diff,
                                   same_predictions)
from exporters.quantize import export_int8
from exporters.sparse_onnx import write_sparse_onnx
from runners.bundle import carried_wheel_paths
from runners.contract import (EXPORT_RUN, FORMATS, MANIFEST_SCHEMA, ONNX, ONNX_SPARSE, WHEELS_INDEX,
                              experiment_kind, run_file_name)
from runners.device import device_facts
from runners.package import write_runner
from runners.progress import Progress

CHECK_ROWS = 256   # eval rows used to compare ONNX against torch


@dataclass
class ModelFile:
    path: Path          # where the file lies now (cached in the variant's run folder)
    format: str


@dataclass
class Exported:
    variant: Variant
    files: list[ModelFile] = field(default_factory=list)
    checks: dict = field(default_factory=dict)


def export_variant(variant: Variant, task: TaskData, int8: bool | None = None) -> Exported:
    """ONNX files of one variant, cached beside its weights (a finished run is never re-exported).

    Every variant gets a dense ONNX file; a variant with unstructured sparsity also gets a twin whose pruned
    weights are sparse initializers where that is smaller (exporters.sparse_onnx), which must predict exactly what
    the dense file predicts on the eval set. `int8` (default: baseline and structured variants) adds dynamic and
    static int8 twins (exporters.quantize).
    """
    folder = variant.folder
    onnx_path, sparse_path = folder / run_file_name(ONNX), folder / run_file_name(ONNX_SPARSE)
    check_path = folder / "onnx-check.json"
    kind = experiment_kind(variant.experiment)
    sparse_wanted = variant.metrics.get("sparsity", 0) > 0 and kind.sparse_twin
    checks = read_json(check_path) if check_path.exists() else {}
    # An export from before the twin recorded its tensor count may hold a twin larger than the dense file.
    twin_ok = not sparse_wanted or ("onnx_sparse_tensors" in checks
                                    and (checks["onnx_sparse_tensors"] == 0 or sparse_path.exists()))
    if not (onnx_path.exists() and checks and twin_ok):
        sparse_path.unlink(missing_ok=True)
        model = variant.build(task)
        export_onnx(model, trace_example(task), onnx_path, name=variant.name)
        checks = {"onnx_max_abs_diff": max_abs_diff(onnx_path, model, task.eval_x[:CHECK_ROWS])}
        if sparse_wanted:
            checks["onnx_sparse_tensors"] = write_sparse_onnx(onnx_path, sparse_path)
        if checks.get("onnx_sparse_tensors"):
            checks["onnx_sparse_max_abs_diff"] = max_abs_diff(sparse_path, model, task.eval_x[:CHECK_ROWS])
            checks["onnx_sparse_same_predictions"] = same_predictions(onnx_path, sparse_path, task.eval_x)
            if not checks["onnx_sparse_same_predictions"]:
                sparse_path.unlink()
                raise EdgepruneError(f"The sparse-initializer ONNX file of {variant.name} predicts differently "
                                     f"from its dense ONNX file on the eval set, so the export stopped before "
                                     f"writing a bundle.")
        write_json(check_path, checks)
    files = [ModelFile(onnx_path, ONNX)]
    if checks.get("onnx_sparse_tensors"):
        files.append(ModelFile(sparse_path, ONNX_SPARSE))
    if int8 if int8 is not None else kind.int8 == "all":
        # calibrated on train inputs, checked on the eval set
        int8_files, int8_checks = export_int8(onnx_path, task.train_x, task.eval_x, task.eval_y)
        files += [ModelFile(path, fmt) for path, fmt in int8_files]
        checks = {**checks, **int8_checks}
    return Exported(variant, files, checks)


def trace_example(task: TaskData) -> np.ndarray:
    """The batch the ONNX export traces: the user's `example` where the plugin gave one (a model may need
    particular inputs, such as token ids of a realistic length), else the first eval rows."""
    example = task.extra.get("example")
    return task.eval_x[:TRACE_ROWS] if example is None else example


def _file_entry(src: Path, rel: str, fmt: str | None, bundle: Path) -> dict:
    dest = bundle / rel
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)
    entry = {"path": rel, "bytes": dest.stat().st_size, "sha256": sha256_file(dest)}
    if fmt:
        entry["format"] = fmt
    return entry


def _eval_entry(task: TaskData, bundle: Path) -> dict:
    """The eval set, deflated (MNIST's normalised crops shrink to about a fifth; np.load reads either form).
    `majority_accuracy` (always answering the most frequent label) is the chance level the report measures a
    model against."""
    rel = f"eval/{task.name}.npz"
    dest = bundle / rel
    dest.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(dest, inputs=task.eval_x, labels=task.eval_y)
    counts = np.unique(task.eval_y, return_counts=True)[1]
    return {"path": rel, "bytes": dest.stat().st_size, "sha256": sha256_file(dest), "n": int(len(task.eval_y)),
            "input_dtype": str(task.eval_x.dtype), "description": task.description,
            "classes": int(task.num_classes), "majority_accuracy": float(counts.max() / counts.sum())}


def model_entry(exp: Exported, task: TaskData, files: list[dict]) -> dict:
    v, m = exp.variant, exp.variant.metrics
    keys = ("sparsity", "sparsity_overall", "params", "nonzero_params", "accuracy", "host_latency_ms",
            "state_dict_bytes", "state_dict_bytes_with_masks", "storage", "sparsity_per_parameter")
    return {
        "name": v.name, "series": v.name.removesuffix(f"-s{v.seed}"),   # the same variant over seeds
        "task": v.task, "model": v.model["name"], "eval": task.name, "experiment": v.experiment, "method": v.method,
        "iteration": v.iteration, "seed": v.seed, **{k: m[k] for k in keys if k in m}, **v.extra,
        "input_name": INPUT_NAME, "output_name": OUTPUT_NAME, "input_shape": task.input_shape,
        **exp.checks, "files": files,
    }


def carry_wheels(old_bundle: Path, new_bundle: Path) -> None:
    """Keep the old bundle's carried wheels (make wheels) when they were downloaded for the new bundle's
    requirements.txt, so exporting again needs no second download; others are dropped."""
    paths = carried_wheel_paths(old_bundle)
    index = old_bundle / WHEELS_INDEX
    if not paths or read_json(index).get("requirements_sha256") != sha256_file(new_bundle / "requirements.txt"):
        return
    for rel in sorted(paths):
        (new_bundle / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(old_bundle / rel, new_bundle / rel)


def bundle_id(entries: list[dict]) -> str:
    lines = sorted(f"{e['path']} {e['sha256']}" for e in entries)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def build_bundle(exports: list[tuple[Exported, TaskData]], out_dir: Path, profile: str,
                 sensitivity: list[dict] | None = None, selection: dict | None = None,
                 export_run: dict | None = None, quiet: bool = True) -> Path:
    """Write the whole bundle into a temporary folder beside out_dir, then swap it in (never half-written).

    `sensitivity` (rows of harness.experiments.sensitivity) becomes the manifest's top-level "sensitivity";
    `selection` (exporters.selection.Selection.record) its "selection", when the bundle is not the complete one;
    `export_run` (harness.graph's timing: executor, work, wall and critical-path seconds) its "export".
    """
    out_dir = Path(out_dir)
    with staged_folder(out_dir) as staging:   # killed writers' leftovers cleaned; --out always holds a bundle
        staging.chmod(0o755)
        evals, models, all_files = {}, [], []
        with Progress("bundle", total=sum(len(e.files) for e, _ in exports), unit="file", quiet=quiet) as progress:
            for exp, task in exports:
                if task.name not in evals:
                    evals[task.name] = _eval_entry(task, staging)
                    all_files.append(evals[task.name])
                files = []
                for f in exp.files:
                    rel = f"models/{exp.variant.name}{FORMATS[f.format].suffix}"
                    files.append(_file_entry(f.path, rel, f.format, staging))
                    progress.update(1)
                all_files.extend(files)
                models.append(model_entry(exp, task, files))
        write_runner(staging)
        carry_wheels(out_dir, staging)
        manifest = {
            "schema": MANIFEST_SCHEMA, "bundle_id": bundle_id(all_files),
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "edgeprune_version": harness.__version__, "profile": profile, "host": device_facts(),
            "evals": evals, "models": models,
        }
        if sensitivity:
            manifest["sensitivity"] = sensitivity
        if selection:
            manifest["selection"] = selection
        if export_run:
            manifest[EXPORT_RUN] = export_run
        write_json(staging / "manifest.json", manifest)
    total = sum(p.stat().st_size for p in out_dir.rglob("*") if p.is_file())
    Progress("bundle", quiet=quiet).finished(
        f"bundle: {len(models)} models, {len(all_files) - len(evals)} model files, {total / 1e6:.1f} MB "
        f"-> {out_dir}", timing=False)
    return out_dir / "manifest.json"
