"""What crosses from host to device, defined once: schema names, file formats, experiment kinds, the manifest and
result validators. The runner, the exporters, the report and the CLI all read this module; it imports nothing but
the standard library, so it travels in the runner's zipapp.

Adding an experiment kind is one `ExperimentKind` line in EXPERIMENT_KINDS: what it implies for the bundle (a
sparse-initializer twin, int8 twins) and for the report (iterative tables, the method comparison) follows from it.
"""

from __future__ import annotations

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


def validate_manifest(manifest: Any, require_models: bool = True) -> dict[str, Any]:
    """The manifest if it follows the contract; else ContractError saying what is wrong, in one sentence.

    Checks the shape every reader relies on (schema, bundle_id, models with names and file lists, evals), not
    the values a reader checks itself (a file's sha256 against the file, a number's range)."""
    if not isinstance(manifest, dict):
        raise ContractError(f"is not an {MANIFEST_SCHEMA} manifest (the top level is not an object)")
    schema = manifest.get("schema")
    if schema is None:
        raise ContractError(f"is not an edgeprune manifest (it has no schema; expected {MANIFEST_SCHEMA!r})")
    if schema != MANIFEST_SCHEMA:
        raise ContractError(f"was written by a different edgeprune version (schema {schema}); expected "
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
    evals = manifest.get("evals", {})
    if not isinstance(evals, dict) or not all(isinstance(e, dict) for e in evals.values()):
        raise ContractError("has an 'evals' entry that is not an object of eval-set entries")
    return manifest


def listed_paths(manifest: Mapping[str, Any]) -> set[str]:
    """Every bundle-relative path a (validated) manifest lists: model files and eval sets."""
    paths = {f.get("path") for m in manifest["models"] for f in m.get("files", [])}
    paths |= {e.get("path") for e in manifest.get("evals", {}).values()}
    return {p for p in paths if _is_path(p)}


def validate_result(result: Any) -> dict[str, Any]:
    """A device result if it follows the contract; else ContractError in one sentence."""
    if not isinstance(result, dict):
        raise ContractError("is not an edgeprune result (the file holds no JSON object)")
    schema = result.get("schema")
    if schema is None:
        raise ContractError(f"is not an edgeprune result (it has no schema); expected {RESULT_SCHEMA}")
    if schema != RESULT_SCHEMA:
        raise ContractError(f"was written by a different edgeprune version (schema {schema}); expected "
                            f"{RESULT_SCHEMA}")
    if not isinstance(result.get("models"), list):
        raise ContractError("has no models list, so it is not a complete edgeprune result")
    if not all(isinstance(m, dict) for m in result["models"]):
        raise ContractError("has a models list with an entry that is not an object")
    for key in ("device", "settings"):
        if not isinstance(result.get(key) or {}, dict):
            raise ContractError(f"has a {key!r} entry that is not an object, so it is not an edgeprune result")
    return result
