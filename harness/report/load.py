"""Read a bundle's manifest and device results, check they belong together, and merge them into one DataFrame.

The merged frame has one row per (device result, execution provider, model file): the manifest's model fields (host numbers from torch),
the file's fields, the device facts and bench settings of the result (`device.*`, `settings.*`), and what the runner
measured for that file. Every derived number the report shows (percentages, seconds, MB, the accuracy flag) is
defined once here, in `add_derived_columns`.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from harness.report.errors import ReportError
from runners.contract import (EXPORT_RUN, ONNX_INT8_DYNAMIC, ROLE_CONTROL, SAME_WEIGHTS_FORMATS, ContractError,
                              format_key, validate_manifest, validate_result)
from runners.files import JSONFileError, read_json
from runners.providers import short_name


# A device accuracy further than this from the host's (in percentage points) is flagged in the report.
ACCURACY_FLAG_PP = 0.1
# Every size the report shows is in MB (10^6 bytes), memory included: the runner records memory in MiB (2^20 bytes,
# as psutil counts), converted once here.
BYTES_PER_MB = 1e6
BYTES_PER_MIB = 2**20

TEXT_COLUMNS = [
    "device", "provider", "result_path", "name", "series", "task", "experiment", "method", "file", "format", "status",
    "error",
]
NUMBER_COLUMNS = [
    "result_index", "order", "iteration", "plan_index", "seed", "sparsity", "params", "nonzero_params", "host_accuracy",
    "device_accuracy", "disk_bytes", "file_bytes", "latency_ms.p50", "latency_ms.mean", "latency_ms.std",
    "session_ms", "first_ms", "settings.threads", "settings.batch_size",
]


def read_json_object(path: Path, what: str) -> dict[str, Any]:
    """The JSON object in `path` (read by runners.files.read_json: size and depth limited, no NaN), or a
    ReportError naming the file and what is wrong with it."""
    try:
        data = read_json(Path(path))
    except JSONFileError as exc:
        raise ReportError(f"{path} {exc}") from None
    if not isinstance(data, dict):
        raise ReportError(f"{path} is not an edgeprune {what} (the file holds no JSON object)")
    return data


def read_manifest(bundle_dir: Path) -> dict[str, Any]:
    bundle_dir = Path(bundle_dir)
    if not bundle_dir.is_dir():
        raise ReportError(f"{bundle_dir} is not a bundle folder; run `make export` or pass the bundle with --bundle")
    path = bundle_dir / "manifest.json"
    if not path.exists():
        raise ReportError(f"{bundle_dir} has no manifest.json; run `make export` or pass the bundle with --bundle")
    manifest = read_json_object(path, "manifest")
    try:
        validate_manifest(manifest)
    except ContractError as exc:
        raise ReportError(f"{path} {exc}") from None
    return manifest


def read_result(path: Path, manifest: Mapping[str, Any], bundle_dir: Path) -> dict[str, Any]:
    result = read_json_object(path, "result")
    try:
        validate_result(result)
    except ContractError as exc:
        raise ReportError(f"{path} {exc}") from None
    if result.get("bundle") != manifest["bundle_id"]:
        raise ReportError(
            f"{path} measures another bundle ({_short_id(result.get('bundle'))}), "
            f"not {bundle_dir} ({_short_id(manifest['bundle_id'])})"
        )
    return result


def _short_id(bundle_id: Any) -> str:
    return str(bundle_id)[:12] if bundle_id else "no bundle id"


def flatten(record: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts become dotted keys ("latency_ms.p50"); lists stay values.

    Written by hand because pd.json_normalize builds a frame per record and drops empty dicts inconsistently.
    """
    flat: dict[str, Any] = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def call_api(settings: Mapping[str, Any]) -> str:
    """How the runner made each timed call; results written before runner 0.2 have no 'api' and timed sess.run."""
    return str(settings.get("api") or "run")


CPU_PROVIDER = "CPUExecutionProvider"


def result_providers(result: Mapping[str, Any]) -> list[str]:
    """The execution providers a result measured, in its order; results from runner 0.3 and older name one (or
    none: they all used the CPU provider)."""
    settings = result.get("settings") or {}
    named = settings.get("providers") or [settings.get("provider") or CPU_PROVIDER]
    seen = [e.get("provider") for e in result.get("models") or [] if isinstance(e, Mapping) and e.get("provider")]
    return list(dict.fromkeys([*named, *seen]))


def device_flags(device: Mapping[str, Any]) -> list[str]:
    """What the label of a device says beside every number of it: an emulated CPU, a frequency drop, throttling."""
    during = device.get("during_run") or {}
    flags = ["emulated: timings functional only"] if device.get("emulated") is True else []
    if during.get("throttled") is True:
        flags.append("throttled during the run")
    if during.get("frequency_dropped") is True:
        flags.append("CPU frequency dropped during the run")
    return flags


def device_labels(results: Sequence[Mapping[str, Any]], paths: Sequence[Path]) -> list[list[tuple[str, str]]]:
    """Per result, one (provider, label) per provider it measured: the device label plus threads and batch, so runs
    with other settings on the same machine stay separate devices, the provider where it is not the CPU one or the
    result measured several, and the device's flags (device_flags); exact repeats get "#2", "#3"."""
    labels: list[list[tuple[str, str]]] = []
    for result, path in zip(results, paths):
        device = result.get("device") or {}
        settings = result.get("settings") or {}
        base = device.get("label") or device.get("hostname") or Path(path).stem
        threads = settings.get("threads")
        threads_text = "auto" if threads == 0 else ("?" if threads is None else str(threads))
        batch = settings.get("batch_size", settings.get("batch_sizes"))
        batch_text = "?" if batch is None else (",".join(map(str, batch)) if isinstance(batch, list) else str(batch))
        api_text = "" if call_api(settings) == "iobinding" else f", {call_api(settings)} calls"
        providers = result_providers(result)
        flags = "".join(f" ⚠ {flag}" for flag in device_flags(device))
        labels.append([(provider, f"{base}"
                        + (f" [{short_name(provider)}]" if len(providers) > 1 or provider != CPU_PROVIDER else "")
                        + f" (threads {threads_text}, batch {batch_text}{api_text}){flags}")
                       for provider in providers])
    totals = Counter(label for per_result in labels for _, label in per_result)
    seen: Counter[str] = Counter()
    distinct = []
    for per_result in labels:
        renamed = []
        for provider, label in per_result:
            seen[label] += 1
            renamed.append((provider, label if totals[label] == 1 or seen[label] == 1 else f"{label} #{seen[label]}"))
        distinct.append(renamed)
    return distinct


def host_accuracy(model: Mapping[str, Any], fmt: str | None, model_accuracy: Any) -> Any:
    """The host's accuracy for one file: the model's (torch) where the file holds the same float32 weights, else
    the file's own host check (int8: onnxruntime on the workstation), else none: an int8 file is never held to
    the fp32 accuracy, which it is not meant to reach exactly."""
    if fmt is None or fmt in SAME_WEIGHTS_FORMATS:
        return model_accuracy
    return model.get(f"{format_key(fmt)}_accuracy")


def _manifest_rows(manifest: Mapping[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for model_index, model in enumerate(manifest["models"]):
        fields = flatten({key: value for key, value in model.items() if key != "files"})
        model_accuracy = fields.pop("accuracy", None)
        for file_index, file in enumerate(model.get("files") or []):
            rows.append({
                **fields, "host_accuracy": host_accuracy(model, file.get("format"), model_accuracy),
                "file": file.get("path"), "format": file.get("format"),
                "file_bytes": file.get("bytes"), "file_sha256": file.get("sha256"),
                "in_manifest": True, "order": model_index * 1000 + file_index,
            })
    return rows


def _measured_fields(entry: Mapping[str, Any], taken: set[str]) -> dict[str, Any]:
    measured = flatten({k: v for k, v in entry.items() if k not in ("name", "file", "format", "accuracy", "provider")})
    measured["device_accuracy"] = entry.get("accuracy")
    # A runner key that clashes with a manifest key keeps both numbers apart instead of overwriting.
    return {(f"measured.{key}" if key in taken else key): value for key, value in measured.items()}


def _result_rows(result: Mapping[str, Any], path: Path, index: int, label: str, provider: str,
                 manifest_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of one (result, provider): entries without a provider (runner 0.3 and older) belong to the
    result's first provider."""
    device_fields = flatten({"device": result.get("device") or {}, "settings": result.get("settings") or {}})
    device_fields.update({
        "device": label, "provider": provider, "result_path": str(path), "result_index": index,
        "runner_version": result.get("runner_version"), "result_created": result.get("created"),
    })
    # The A/A control measures the reference's file a second time: it is kept apart (frame.attrs["controls"]).
    first = result_providers(result)[0]
    entries = [entry for entry in result["models"] if isinstance(entry, Mapping)
               and (entry.get("provider") or first) == provider and entry.get("role") != ROLE_CONTROL]
    by_file = {entry.get("file"): entry for entry in entries if entry.get("file")}
    by_name_format = {(entry.get("name"), entry.get("format")): entry for entry in entries}
    used: set[int] = set()
    rows = []
    for manifest_row in manifest_rows:
        entry = by_file.get(manifest_row["file"]) or by_name_format.get((manifest_row.get("name"),
                                                                         manifest_row["format"]))
        row = {**manifest_row, **device_fields}
        if entry is None:
            row.update(status="missing", error=f"not measured: {Path(path).name} has no entry for this file"
                                               f"{'' if provider == first else ' with ' + provider}")
        else:
            used.add(id(entry))
            row.update(_measured_fields(entry, set(row)))
        rows.append(row)
    for extra_index, entry in enumerate(e for e in entries if id(e) not in used):
        row = {"name": entry.get("name"), "file": entry.get("file"), "format": entry.get("format"),
               "in_manifest": False, "order": 10**9 + extra_index, **device_fields}
        row.update(_measured_fields(entry, set(row)))
        rows.append(row)
    return rows


def add_derived_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """The one definition of each number the report shows."""
    frame["sparsity_pct"] = frame["sparsity"] * 100
    frame["host_accuracy_pct"] = frame["host_accuracy"] * 100
    frame["device_accuracy_pct"] = frame["device_accuracy"] * 100
    frame["accuracy_delta_pp"] = frame["device_accuracy_pct"] - frame["host_accuracy_pct"]
    # Rounding keeps a difference of exactly 0.1 points (0.1000000001 in floating point) unflagged.
    frame["accuracy_mismatch"] = frame["accuracy_delta_pp"].abs().round(9).gt(ACCURACY_FLAG_PP) & \
        ~other_int8_batching(frame)
    frame["latency_p50_ms"] = frame["latency_ms.p50"]
    # Seconds only for the CSV in the lab template's columns ("Latency (s)"); every table and plot shows ms.
    frame["latency_p50_s"] = frame["latency_ms.p50"] / 1000
    frame["disk_mb"] = frame["disk_bytes"] / BYTES_PER_MB
    frame["file_mb"] = frame["file_bytes"] / BYTES_PER_MB
    # The runner counts memory in MiB (its key says mb, schema 1); every table shows MB, like disk sizes.
    for runner_key, column in (("rss_peak", "peak_memory_mb"), ("peak_increment", "peak_increment_mb"),
                               ("load_increment", "load_increment_mb")):
        key = f"memory_mb.{runner_key}"
        mib = pd.to_numeric(frame[key], errors="coerce") if key in frame else np.nan
        frame[column] = mib * BYTES_PER_MIB / BYTES_PER_MB
    return frame


def other_int8_batching(frame: pd.DataFrame) -> pd.Series:
    """Dynamic int8 rows whose device accuracy was measured in other eval batches than the host's check: dynamic
    int8 scales activations per call, so those two accuracies may differ without anything being wrong."""
    if "onnx_int8_eval_batch" not in frame or "settings.eval_batch_size" not in frame:
        return pd.Series(False, index=frame.index)
    host, device = (pd.to_numeric(frame[c], errors="coerce") for c in ("onnx_int8_eval_batch",
                                                                      "settings.eval_batch_size"))
    return frame["format"].eq(ONNX_INT8_DYNAMIC) & host.notna() & device.notna() & host.ne(device)


def comparison_groups(frame: pd.DataFrame) -> pd.Series:
    """The report compares variants of one model against that model's dense baseline, and its sections group by
    the `task` column: a task trained with several models (SST-2: FFN and Transformer) becomes one group per model,
    `sst2 / transformer`; a task with one model keeps its plain name."""
    if "model" not in frame:
        return frame["task"]
    model = frame["model"].fillna("").astype(str)
    models_per_task = model.groupby(frame["task"]).transform(lambda m: m[m != ""].nunique())
    return frame["task"].where((models_per_task <= 1) | model.eq(""), frame["task"] + " / " + model)


# Names of one variant's seeds end in -s<seed>; manifests before the `series` key tell seeds apart only that way.
SEED_SUFFIX = re.compile(r"-s\d+$")


def variant_series(frame: pd.DataFrame) -> pd.Series:
    """Each row's series, the variant it belongs to whatever its seed: the manifest's `series` where the model has one,
    else its name without a trailing -s<seed>."""
    from_name = frame["name"].fillna("").astype(str).str.replace(SEED_SUFFIX, "", regex=True)
    given = frame["series"].notna() & frame["series"].ne("")
    return from_name.where(~given, frame["series"].astype(str))


def load_frame(result_paths: Sequence[Path], bundle_dir: Path) -> pd.DataFrame:
    """One row per (device result, provider, model file), with manifest fields, device facts and measurements; a
    result that benched several providers becomes one device per provider, so every section compares them side by
    side.

    frame.attrs holds what is not per row: "host" (the workstation's device facts), "bundle_dir", "bundle_id",
    "manifest" (created, profile, edgeprune_version, sensitivity, evals, selection, export) and "results"
    ([{"path", "device"}] in the order given).
    """
    if not result_paths:
        raise ReportError("no result files were given; pass one or more RESULT.json written by `runner bench`")
    paths = [Path(p) for p in result_paths]
    manifest = read_manifest(Path(bundle_dir))
    results = [read_result(path, manifest, Path(bundle_dir)) for path in paths]
    labels = device_labels(results, paths)
    manifest_rows = _manifest_rows(manifest)
    rows = [row for index, (result, path, per_result) in enumerate(zip(results, paths, labels))
            for provider, label in per_result
            for row in _result_rows(result, path, index, label, provider, manifest_rows)]
    frame = pd.DataFrame(rows)
    for column in TEXT_COLUMNS + NUMBER_COLUMNS:
        if column not in frame:
            frame[column] = np.nan
    for column in NUMBER_COLUMNS:
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    for column in ("task", "experiment", "method", "format", "status"):
        frame[column] = frame[column].fillna("").astype(str)
    frame["task"] = comparison_groups(frame)
    frame["series"] = variant_series(frame)
    frame["error"] = frame["error"].where(frame["error"].notna(), None)
    frame["in_manifest"] = frame["in_manifest"].eq(True)
    frame = add_derived_columns(frame)
    frame = frame.sort_values(["result_index", "order"], kind="stable").reset_index(drop=True)
    frame.attrs = {
        "controls": control_records(results, labels, frame),
        "host": dict(manifest.get("host") or {}),
        "bundle_dir": str(bundle_dir),
        "bundle_id": manifest["bundle_id"],
        "manifest": {key: manifest.get(key) for key in ("created", "profile", "edgeprune_version", "sensitivity",
                                                        "evals", "selection", EXPORT_RUN)},
        "results": [{"path": str(path), "device": label, "provider": provider, **timing_facts(result)}
                    for path, per_result, result in zip(paths, labels, results) for provider, label in per_result],
    }
    return frame


def control_records(results: Sequence[Mapping[str, Any]], labels: Sequence[Sequence[tuple[str, str]]],
                    frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The A/A control entries of every result: {"device" (the label of its result and provider), "task" (the group
    of the file, as the frame names it), "name", "file", "status", "ratio_to_reference", "p50_rounds"}."""
    records = []
    for index, (result, per_result) in enumerate(zip(results, labels)):
        first = result_providers(result)[0]
        label_of = dict(per_result)
        for entry in result["models"]:
            if not isinstance(entry, Mapping) or entry.get("role") != ROLE_CONTROL:
                continue
            device = label_of.get(entry.get("provider") or first)
            same_file = frame[frame["device"].eq(device) & frame["file"].eq(entry.get("file"))]
            latency = entry.get("latency_ms") if isinstance(entry.get("latency_ms"), Mapping) else {}
            records.append({
                "device": device, "task": same_file["task"].iloc[0] if len(same_file) else None,
                "name": entry.get("name"), "file": entry.get("file"), "status": entry.get("status"),
                "ratio_to_reference": entry.get("ratio_to_reference"), "p50_rounds": latency.get("p50_rounds"),
            })
    return records


def timing_facts(result: Mapping[str, Any]) -> dict[str, Any]:
    """What a result's timing holds, so the report can label results of older runners: "rounds" (windows per file;
    1 before runner 0.3), "paired" (windows beside reference windows, runner 0.5), "control" (an A/A entry)."""
    entries = [e for e in result["models"] if isinstance(e, Mapping)]
    settings = result.get("settings") or {}
    return {
        "rounds": settings.get("rounds") or 1,
        "paired": any(isinstance(e.get("latency_ms"), Mapping) and "reference_p50_rounds" in e["latency_ms"]
                      for e in entries),
        "control": any(e.get("role") == ROLE_CONTROL for e in entries),
        "memory_isolation": next((e["memory_mb"].get("isolation") for e in entries
                                  if isinstance(e.get("memory_mb"), Mapping) and e["memory_mb"].get("isolation")),
                                 None),
    }


def is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))
