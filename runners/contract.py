"""What crosses from host to device, defined once: schema names, file formats, experiment kinds, the manifest and
result validators. The runner, the exporters, the report and the CLI all read this module; it imports nothing but
the standard library, so it travels in the runner's zipapp.

Adding an experiment kind is one `ExperimentKind` line in EXPERIMENT_KINDS: what it implies for the bundle (a
sparse-initializer twin, int8 twins) and for the report (iterative tables, the method comparison) follows from it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Mapping

MANIFEST_SCHEMA = "edgeprune.manifest/1"
RESULT_SCHEMA = "edgeprune.result/1"
WHEELS_SCHEMA = "edgeprune.wheels/1"
WHEELS_INDEX = "wheels/index.json"    # in a bundle: the carried wheels, per target, with their sha256
INSTALL_VENV = ".venv"                # in a bundle: where `runner install` puts the runner's environment
# Manifest key of the experiment graph's record (executor, workers, work/wall/critical-path seconds): written by
# harness.graph through exporters.bundle, quoted by the report's Provenance section (docs/formats.md).
EXPORT_RUN = "export"
# Rows per call of the accuracy pass. Dynamic int8 quantizes activations per call, so its predictions depend on how
# the eval set is batched: the host's check of an int8 file (exporters.quantize) uses the runner's batches.
EVAL_BATCH_SIZE = 256
# "Deployable": accuracy at most this many percentage points below the dense baseline's. The bundle's "deployable"
# selection (host accuracy) and the report's recommendation (device accuracy) use the same budget.
DEPLOYABLE_PP = 1.0


class ContractError(ValueError):
    """A manifest or result that breaks the contract; the message is a predicate: "<file> " + message reads as one
    sentence."""


# ------------------------------------------------------------------------------------------------ file formats
@dataclass(frozen=True)
class FileFormat:
    name: str              # the manifest's files[].format
    suffix: str            # bundle file name: models/<variant><suffix>
    label: str             # how the report names it
    same_weights: bool     # holds exactly the model's float32 weights (predictions equal the dense file's)
    int8: bool = False


ONNX = "onnx"
ONNX_SPARSE = "onnx-sparse"
ONNX_INT8_DYNAMIC = "onnx-int8-dynamic"
ONNX_INT8_STATIC = "onnx-int8-static"

FORMATS: dict[str, FileFormat] = {f.name: f for f in (
    FileFormat(ONNX, ".onnx", "dense fp32", same_weights=True),
    FileFormat(ONNX_SPARSE, ".sparse.onnx", "sparse initializers", same_weights=True),
    FileFormat(ONNX_INT8_DYNAMIC, ".int8-dynamic.onnx", "int8 dynamic", same_weights=False, int8=True),
    FileFormat(ONNX_INT8_STATIC, ".int8-static.onnx", "int8 static", same_weights=False, int8=True),
)}
SAME_WEIGHTS_FORMATS = tuple(f.name for f in FORMATS.values() if f.same_weights)
INT8_FORMATS = tuple(f.name for f in FORMATS.values() if f.int8)


def run_file_name(fmt: str) -> str:
    """The file's name in its variant's run folder: model.onnx, model.sparse.onnx, model.int8-static.onnx."""
    return "model" + FORMATS[fmt].suffix


def is_onnx_format(fmt: Any) -> bool:
    """Files the runner measures: every ONNX format, including ones a newer exporter adds."""
    return isinstance(fmt, str) and fmt.startswith(ONNX)


def format_key(fmt: str) -> str:
    """Manifest key prefix of a format's host checks: `onnx-int8-static` -> `onnx_int8_static`."""
    return fmt.replace("-", "_")


# ------------------------------------------------------------------------------------------------ experiment kinds
@dataclass(frozen=True)
class ExperimentKind:
    name: str
    iterative: bool = False        # variants are rounds 0..R of one schedule (per-round tables, sparsity curves)
    sparse_twin: bool = False      # unstructured zeros: a sparse-initializer ONNX twin where that is smaller
    int8: str = "none"             # "all": every variant gets int8 twins; "sparsest": the sparsest round per method
    compared: bool = False         # appears in the method comparison at matched sparsity
    words: str = ""                # "after IMP": how a sentence names a variant of this kind


EXPERIMENT_KINDS: dict[str, ExperimentKind] = {k.name: k for k in (
    ExperimentKind("baseline", int8="all"),
    ExperimentKind("repeated", iterative=True, sparse_twin=True, compared=True, words="after repeated pruning"),
    ExperimentKind("imp", iterative=True, sparse_twin=True, int8="sparsest", compared=True, words="after IMP"),
    ExperimentKind("structured", int8="all", words="after structured pruning"),
)}
_UNKNOWN = ExperimentKind("")      # a kind this version does not know (an older or newer bundle): no extras


def experiment_kind(name: Any) -> ExperimentKind:
    return EXPERIMENT_KINDS.get(name, _UNKNOWN) if isinstance(name, str) else _UNKNOWN


def experiments_where(prop: str) -> tuple[str, ...]:
    """Names of the kinds with a true property, e.g. experiments_where("iterative") -> ("repeated", "imp")."""
    return tuple(k.name for k in EXPERIMENT_KINDS.values() if getattr(k, prop))


# ------------------------------------------------------------------------------------------------ wheel targets
# A wheel target is a platform and a CPython version, named as the device computes it for itself
# (wheel_target(platform.machine(), sys.version_info)): "linux_aarch64-cp311". Machines that name one architecture
# differently (arm64 on some kernels, AMD64) map to the wheel platform's name.
_MACHINE_ALIASES = {"arm64": "aarch64", "amd64": "x86_64", "x64": "x86_64", "armv8l": "armv7l"}


def wheel_platform(machine: str, system: str = "linux") -> str:
    """("aarch64", "linux") -> "linux_aarch64"."""
    m = machine.lower()
    return f"{system.lower()}_{_MACHINE_ALIASES.get(m, m)}"


def wheel_target(machine: str, python: tuple[int, int] | str, system: str = "linux") -> str:
    """("aarch64", (3, 11)) or ("aarch64", "3.11") -> "linux_aarch64-cp311": the folder of a bundle's carried
    wheels for that device, under wheels/."""
    major, minor = (python.split(".")[:2] if isinstance(python, str) else python[:2])
    return f"{wheel_platform(machine, system)}-cp{int(major)}{int(minor)}"


def validate_wheel_index(index: Any) -> dict[str, Any]:
    """A wheels/index.json if it follows the contract; else ContractError in one sentence."""
    if not isinstance(index, dict) or index.get("schema") != WHEELS_SCHEMA:
        raise ContractError(f"is not an {WHEELS_SCHEMA} index of carried wheels")
    targets = index.get("targets")
    if not isinstance(targets, dict) or not all(isinstance(t, dict) and isinstance(t.get("files"), list)
                                                for t in targets.values()):
        raise ContractError("has no valid 'targets' object (each target needs a list of files)")
    for name, target in targets.items():
        for f in target["files"]:
            if not (isinstance(f, dict) and _is_path(f.get("path")) and isinstance(f.get("sha256"), str)):
                raise ContractError(f"lists a file of {name} without a path and a sha256")
    if not isinstance(index.get("unavailable", {}), dict):
        raise ContractError("has an 'unavailable' entry that is not an object")
    return index


# ------------------------------------------------------------------------------------------------ validators
def _is_path(value: Any) -> bool:
    return isinstance(value, str) and bool(value)


# What each known key of the two JSON files holds. Keys not listed (a newer writer's) are not checked; a listed key
# may be absent or null. "count": a whole number >= 0; "int": any whole number; "number": any finite number
# (the JSON reader already refuses NaN and Infinity); "text": a string; "object"/"list": a JSON object / array.
MODEL_FIELDS = {
    "name": "text", "series": "text", "task": "text", "eval": "text", "model": "text", "experiment": "text",
    "method": "text", "input_name": "text", "output_name": "text",
    "iteration": "int", "seed": "int", "plan_index": "int", "params": "count", "nonzero_params": "count",
    "sparsity": "number", "sparsity_overall": "number", "accuracy": "number", "host_latency_ms": "number",
    "state_dict_bytes": "count", "storage": "object", "sparsity_per_parameter": "object", "files": "list",
}
FILE_FIELDS = {"path": "text", "format": "text", "bytes": "count", "sha256": "text"}
EVAL_FIELDS = {"path": "text", "bytes": "count", "sha256": "text", "n": "count", "input_dtype": "text"}
RESULT_ENTRY_FIELDS = {
    "name": "text", "file": "text", "format": "text", "provider": "text", "status": "text", "error": "text",
    "sha256": "text", "sha256_ok": "bool", "disk_bytes": "count", "session_ms": "number", "first_ms": "number",
    "batch_size": "count", "accuracy": "number", "eval_n": "count", "cpu_mhz": "number",
    "latency_ms": "object", "memory_mb": "object", "role": "text", "reference": "text",
    "ratio_to_reference": "object",
}
LATENCY_FIELDS = {"n": "count", "mean": "number", "std": "number", "min": "number", "p50": "number",
                  "p90": "number", "p99": "number", "max": "number", "p50_ci95": "numbers", "p50_rounds": "numbers"}
MEMORY_FIELDS = {"rss_before": "number", "rss_after_load": "number", "rss_peak": "number", "peak_method": "text",
                 "load_increment": "number", "peak_increment": "number"}
DEVICE_FIELDS = {"label": "text", "hostname": "text", "cpu_model": "text", "machine": "text", "os": "text",
                 "python": "text", "onnxruntime": "text", "physical_cores": "count", "logical_cores": "count",
                 "memory_total_mb": "number"}
SETTINGS_FIELDS = {"threads": "count", "batch_size": "counts", "warmup": "count", "min_runs": "count",
                   "min_seconds": "number", "api": "text", "rounds": "count", "eval_batch_size": "count"}

_KIND_WORDS = {"text": "text", "int": "a whole number", "count": "a whole number of 0 or more",
               "number": "a number", "bool": "true or false", "object": "an object", "list": "a list",
               "numbers": "a list of numbers", "counts": "a whole number or a list of them"}


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _fits(value: Any, kind: str) -> bool:
    if value is None:
        return True
    if kind == "text":
        return isinstance(value, str)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "count":
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0
    if kind == "number":
        return _number(value)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "object":
        return isinstance(value, dict)
    if kind == "list":
        return isinstance(value, list)
    if kind == "numbers":
        return isinstance(value, list) and all(_number(v) for v in value)
    if kind == "counts":
        return _fits(value, "count") or (isinstance(value, list) and all(_fits(v, "count") for v in value))
    raise ValueError(f"unknown field kind {kind!r}")


def _shown(value: Any, limit: int = 40, quote: bool = True) -> str:
    """A value from the file for a message, cut to ``limit`` characters (JSON-quoted unless ``quote`` is false and it
    is text)."""
    text = value if isinstance(value, str) and not quote else json.dumps(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def field_problem(record: Mapping[str, Any], fields: Mapping[str, str], where: str) -> str | None:
    """The first known key of ``record`` whose value has the wrong type, as a predicate naming the key and
    ``where`` it is ("gives model 'x' a 'bytes' of "abc", not a whole number"); None when all fit."""
    for key, kind in fields.items():
        value = record.get(key)
        if not _fits(value, kind):
            return f"gives {where} a {key!r} of {_shown(value)}, not {_KIND_WORDS[kind]}"
    return None


def _first_repeat(values: Any) -> Any:
    seen: set = set()
    for value in values:
        if value in seen:
            return value
        seen.add(value)
    return None


def validate_manifest(manifest: Any, require_models: bool = True) -> dict[str, Any]:
    """The manifest if it follows the contract; else ContractError saying what is wrong, in one sentence.

    Checks the shape and the types every reader relies on (schema, bundle_id, models with unique names and typed
    fields, file lists with unique paths, evals), not the values a reader checks itself (a file's sha256 against
    the file, a number's range)."""
    if not isinstance(manifest, dict):
        raise ContractError(f"is not an {MANIFEST_SCHEMA} manifest (the top level is not an object)")
    schema = manifest.get("schema")
    if schema is None:
        raise ContractError(f"is not an edgeprune manifest (it has no schema; expected {MANIFEST_SCHEMA!r})")
    if schema != MANIFEST_SCHEMA:
        raise ContractError(f"was written by a different edgeprune version (schema {_shown(schema, quote=False)}); expected "
                            f"{MANIFEST_SCHEMA}")
    if not isinstance(manifest.get("bundle_id"), str) or not manifest["bundle_id"]:
        raise ContractError("has no bundle_id; export the bundle again")
    models = manifest.get("models")
    if not isinstance(models, list) or not all(isinstance(m, dict) and isinstance(m.get("name"), str)
                                               and m["name"] for m in models):
        raise ContractError("has no valid 'models' list (each model needs at least a name)")
    if require_models and not models:
        raise ContractError("lists no models; export the bundle again")
    for m in models:
        files = m.get("files", [])
        if not isinstance(files, list) or not all(isinstance(f, dict) for f in files):
            raise ContractError(f"has a model entry ({m['name']!r}) that is not an object with a list of files")
        problem = field_problem(m, MODEL_FIELDS, f"model {m['name']!r}") or next(
            (p for f in files for p in [field_problem(f, FILE_FIELDS, f"a file of model {m['name']!r}")] if p), None)
        if problem:
            raise ContractError(problem)
    twice = _first_repeat(m["name"] for m in models)
    if twice is not None:
        raise ContractError(f"lists model {twice!r} twice, so its numbers could not be told apart")
    evals = manifest.get("evals", {})
    if not isinstance(evals, dict) or not all(isinstance(e, dict) for e in evals.values()):
        raise ContractError("has an 'evals' entry that is not an object of eval-set entries")
    for key, entry in evals.items():
        problem = field_problem(entry, EVAL_FIELDS, f"eval set {key!r}")
        if problem:
            raise ContractError(problem)
    twice = _first_repeat([f["path"] for m in models for f in m.get("files", []) if f.get("path") is not None]
                          + [e["path"] for e in evals.values() if e.get("path") is not None])
    if twice is not None:
        raise ContractError(f"lists the file {twice!r} twice, so the same file would be two variants")
    return manifest


def listed_paths(manifest: Mapping[str, Any]) -> set[str]:
    """Every bundle-relative path a (validated) manifest lists: model files and eval sets."""
    paths = {f.get("path") for m in manifest["models"] for f in m.get("files", [])}
    paths |= {e.get("path") for e in manifest.get("evals", {}).values()}
    return {p for p in paths if _is_path(p)}


def validate_result(result: Any) -> dict[str, Any]:
    """A device result if it follows the contract (shape and the types of every key a reader uses; one entry per
    file and provider); else ContractError in one sentence."""
    if not isinstance(result, dict):
        raise ContractError("is not an edgeprune result (the file holds no JSON object)")
    schema = result.get("schema")
    if schema is None:
        raise ContractError(f"is not an edgeprune result (it has no schema); expected {RESULT_SCHEMA}")
    if schema != RESULT_SCHEMA:
        raise ContractError(f"was written by a different edgeprune version (schema {_shown(schema, quote=False)}); expected "
                            f"{RESULT_SCHEMA}")
    if not isinstance(result.get("models"), list):
        raise ContractError("has no models list, so it is not a complete edgeprune result")
    if not all(isinstance(m, dict) for m in result["models"]):
        raise ContractError("has a models list with an entry that is not an object")
    for key in ("device", "settings"):
        if not isinstance(result.get(key) or {}, dict):
            raise ContractError(f"has a {key!r} entry that is not an object, so it is not an edgeprune result")
    problem = (field_problem(result, {"bundle": "text", "runner_version": "text", "created": "text"}, "the result")
               or field_problem(result.get("device") or {}, DEVICE_FIELDS, "the device")
               or field_problem(result.get("settings") or {}, SETTINGS_FIELDS, "the settings"))
    for i, entry in enumerate(result["models"]):
        where = f"entry {i + 1} ({_shown(entry.get('file') or entry.get('name'))})"
        problem = (problem or field_problem(entry, RESULT_ENTRY_FIELDS, where)
                   or field_problem(entry.get("latency_ms") or {}, LATENCY_FIELDS, f"the latency of {where}")
                   or field_problem(entry.get("memory_mb") or {}, MEMORY_FIELDS, f"the memory of {where}"))
    if problem:
        raise ContractError(problem)
    # the A/A control (ROLE_CONTROL) measures the reference's file a second time on purpose, as an entry of its own
    twice = _first_repeat((m.get("name"), m.get("file"), m.get("format"), m.get("provider"),
                           m.get("role") == ROLE_CONTROL) for m in result["models"])
    if twice is not None:
        raise ContractError(f"measures {twice[1] or twice[0]!r} twice with the same settings, so the two numbers "
                            f"could not be told apart")
    return result


# ------------------------------------------------------------------------------------------------ comparisons
# What a result entry is to the comparisons (`role`, runner 0.4): the dense reference file of its comparison group,
# the A/A control (the reference file timed again as a distinct entry, so two sessions of one file show the noise
# floor of every comparison), or any other file.
ROLE_REFERENCE = "reference"
ROLE_CONTROL = "aa-control"
ROLE_FILE = "file"


def comparison_group(model: Mapping[str, Any]) -> tuple[str, str]:
    """Variants are compared with the dense baseline of the same task and architecture (`task`, `model`); the
    report's sections group the same way (harness.report.load.comparison_groups)."""
    return str(model.get("task") or ""), str(model.get("model") or "")


def is_dense_candidate(model: Mapping[str, Any]) -> bool:
    """A dense model a group's variants can be compared with: experiment `baseline`, or (in bundles without one)
    an unpruned model of an unstructured experiment."""
    if model.get("experiment") == "baseline":
        return True
    sparsity = model.get("sparsity")
    return isinstance(sparsity, (int, float)) and sparsity == 0 and model.get("experiment") != "structured"


def dense_references(pairs: list[tuple[Mapping[str, Any], Mapping[str, Any] | None]]) -> dict[tuple[str, str], int]:
    """For each comparison group, the index in `pairs` ((model, file) in measuring order) of its reference: the
    plain ONNX file of the first `baseline` model, else of the first dense candidate."""
    refs: dict[tuple[str, str], int] = {}
    fallback: dict[tuple[str, str], int] = {}
    for index, (model, file_entry) in enumerate(pairs):
        if file_entry is None or file_entry.get("format") != ONNX or not is_dense_candidate(model):
            continue
        group = comparison_group(model)
        if model.get("experiment") == "baseline":
            refs.setdefault(group, index)
        else:
            fallback.setdefault(group, index)
    return {**fallback, **refs}
