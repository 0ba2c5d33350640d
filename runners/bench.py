"""Measure every ONNX file of a bundle: integrity, load time, latency, memory, on-device accuracy.

The public entry points (used by ``runner bench`` and by benchmarks/harness code that wants the same numbers):

* :func:`load_manifest` -- read and validate ``BUNDLE/manifest.json`` (raises :class:`BundleError`).
* :func:`run_bench` -- measure a bundle, return the ``edgeprune.result/1`` dict.
* :func:`bench_file` -- measure one (model, file) pair, return one entry of ``result["models"]``.
* :func:`write_result` -- write a result atomically.
* :func:`latency_stats` / :func:`p50_ci95` -- the one definition of the latency numbers.

Never imports torch: this module runs on the device.
"""

from __future__ import annotations

import fnmatch
import functools
import gc
import json
import math
import os
import sys
import time
import zipfile
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from runners import __version__
from runners.contract import EVAL_BATCH_SIZE, RESULT_SCHEMA, ContractError, is_onnx_format, validate_manifest
from runners.files import atomic_write, sha256_file

MB = 2**20   # memory_mb keys are MiB, as psutil and top count memory

# onnxruntime input type strings -> numpy dtypes used to feed them.
_ORT_DTYPES = {
    "tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(float16)": np.float16,
    "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(int16)": np.int16, "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8, "tensor(bool)": np.bool_,
}

CI_METHOD = "order-statistic (binomial), distribution-free"
CALL_APIS = ("iobinding", "run")


class BundleError(Exception):
    """A problem with the bundle as a whole (missing folder, unreadable or foreign manifest)."""


class ModelError(Exception):
    """A problem with one model file; it becomes that model's ``status: error`` entry."""


class FileChanged(ModelError):
    """A file that passed its check in round 1 no longer matches the manifest in a later round."""


@dataclass
class BenchSettings:
    """How to measure. ``threads=0`` leaves onnxruntime's default intra-op thread count."""

    threads: int = 0
    batch_size: int = 1
    warmup: int = 10
    min_runs: int = 100
    min_seconds: float = 1.0
    api: str = "iobinding"  # how each timed call is made: see make_call
    eval_batch_size: int = EVAL_BATCH_SIZE
    provider: str = "CPUExecutionProvider"
    models: str | None = None  # fnmatch glob over model names; None = all
    rounds: int = 1            # timing windows per file, interleaved across files (see run_bench)

    def __post_init__(self) -> None:
        if self.api not in CALL_APIS:
            raise ValueError(f"unknown call api {self.api!r}; choose one of {', '.join(CALL_APIS)}")
        if self.rounds < 1:
            raise ValueError(f"rounds must be 1 or more, not {self.rounds}")

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["p50_ci95_method"] = CI_METHOD
        d["peak_memory_scope"] = "session load + first inference + warm-up + timed runs"
        return d


# --------------------------------------------------------------------------------------------- statistics
def p50_ci95(sorted_ms: np.ndarray) -> list[float] | None:
    """95% confidence interval of the median as two order statistics [x_(m), x_(n-1-m)] (0-based).

    Why order statistics: latency is skewed with a long tail, so a distribution-free interval (the number of
    samples below the true median is Binomial(n, 1/2)) is honest where a normal approximation is not.
    ``m`` is the largest index with P(B <= m) <= 0.025, so the coverage is 1 - 2 P(B <= m) >= 0.95.
    Returns None when n < 6 (no pair of order statistics reaches 95%).
    """
    n = int(len(sorted_ms))
    if n < 6:
        return None
    log_half_n = n * math.log(0.5)
    lg_n1 = math.lgamma(n + 1)
    # Binomial terms more than 8 sd below the mean sum to < 1e-15; start there so large n stays cheap.
    start = max(0, int(n / 2 - 8 * math.sqrt(n) / 2))
    cdf = 0.0
    m = -1
    for i in range(start, n // 2 + 1):
        cdf += math.exp(lg_n1 - math.lgamma(i + 1) - math.lgamma(n - i + 1) + log_half_n)
        if cdf > 0.025:
            break
        m = i
    if m < 0:
        return None
    return [float(sorted_ms[m]), float(sorted_ms[n - 1 - m])]


def latency_stats(times_ms: Iterable[float] | np.ndarray) -> dict[str, Any]:
    """n, mean, std (sample), min, p50, p90, p99, max and p50_ci95 of per-run latencies in milliseconds."""
    a = np.sort(np.asarray(times_ms, dtype=np.float64))
    n = int(a.size)
    if n == 0:
        return empty_latency()
    p50, p90, p99 = (float(v) for v in np.percentile(a, [50, 90, 99]))
    return {
        "n": n,
        "mean": float(a.mean()),
        "std": float(a.std(ddof=1)) if n > 1 else 0.0,
        "min": float(a[0]),
        "p50": p50,
        "p90": p90,
        "p99": p99,
        "max": float(a[-1]),
        "p50_ci95": p50_ci95(a),
    }


def empty_latency() -> dict[str, Any]:
    return {k: None for k in ("n", "mean", "std", "min", "p50", "p90", "p99", "max", "p50_ci95")}


def empty_memory() -> dict[str, Any]:
    return {"rss_before": None, "rss_after_load": None, "rss_peak": None, "peak_method": None}


# --------------------------------------------------------------------------------------------- memory
class PeakMemory:
    """Peak RSS of this process over a window.

    On Linux the kernel's high-water mark is reset (``echo 5 > /proc/self/clear_refs``) and ``VmHWM`` read from
    ``/proc/self/status`` (method ``vmhwm``); it catches every transient allocation. Elsewhere, or when the reset
    is not permitted, the peak is the max of psutil RSS samples taken at the phase boundaries
    (method ``psutil-samples``), which can miss short spikes.
    """

    def __init__(self) -> None:
        import psutil

        self._proc = psutil.Process()
        self.method = "psutil-samples"
        self._samples: list[int] = []

    def rss(self) -> int:
        value = int(self._proc.memory_info().rss)
        self._samples.append(value)
        return value

    def reset(self) -> None:
        self._samples = []
        self.method = "psutil-samples"
        try:
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")
            if _vmhwm() is not None:
                self.method = "vmhwm"
        except OSError:
            pass
        self.rss()

    def peak(self) -> int:
        self.rss()
        if self.method == "vmhwm":
            hwm = _vmhwm()
            if hwm is not None:
                return max(hwm, max(self._samples))
        return max(self._samples)


def _vmhwm() -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


# --------------------------------------------------------------------------------------------- bundle
def load_manifest(bundle: Path) -> dict[str, Any]:
    """Read and validate ``bundle/manifest.json``; any problem raises BundleError with one sentence."""
    bundle = Path(bundle)
    if not bundle.exists():
        raise BundleError(f"Bundle folder {bundle} does not exist.")
    if not bundle.is_dir():
        raise BundleError(f"Bundle {bundle} is not a folder; pass the folder that holds manifest.json.")
    path = bundle / "manifest.json"
    if not path.is_file():
        raise BundleError(f"{path} is missing, so {bundle} is not an edgeprune bundle (make export writes one).")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise BundleError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}).") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BundleError(f"{path} cannot be read ({_one_line(exc)}).") from None
    try:
        return validate_manifest(manifest)
    except ContractError as exc:
        raise BundleError(f"{path} {exc}.") from None


def _resolve(bundle: Path, rel: Any) -> Path:
    """A manifest path inside the bundle; refuses absolute paths and paths that leave the bundle."""
    if not isinstance(rel, str) or not rel:
        raise ModelError("manifest entry has no 'path'")
    p = Path(rel)
    if p.is_absolute() or ".." in p.parts:
        raise ModelError(f"path {rel!r} points outside the bundle")
    return bundle / p


def check_file(bundle: Path, entry: dict[str, Any]) -> tuple[Path, int, str]:
    """Check existence, size and sha256 of a bundle file against its manifest entry.

    Returns (path, size, sha256). Raises ModelError (one line) for a missing or mismatching file.
    """
    path = _resolve(bundle, entry.get("path"))
    if not path.is_file():
        raise ModelError(f"file {entry.get('path')} is missing from the bundle")
    size = path.stat().st_size
    want_bytes = entry.get("bytes")
    if want_bytes is not None and int(want_bytes) != size:
        raise ModelError(f"size mismatch for {entry['path']}: manifest says {want_bytes} bytes, file has {size}")
    want_sha = entry.get("sha256")
    if not want_sha:
        raise ModelError(f"manifest gives no sha256 for {entry['path']}, so it cannot be checked")
    try:
        got = sha256_file(path)
    except OSError as exc:
        raise ModelError(f"cannot read {entry['path']}: {_one_line(exc)}") from None
    if got != str(want_sha).lower():
        raise ModelError(f"sha256 mismatch for {entry['path']}: manifest {str(want_sha)[:12]}..., file {got[:12]}...")
    return path, size, got


class EvalSets:
    """Loads each eval npz once (after checking its sha256); remembers failures as one-line reasons."""

    def __init__(self, bundle: Path, evals: dict[str, Any]) -> None:
        self.bundle = bundle
        self.evals = evals
        self._cache: dict[str, tuple[np.ndarray, np.ndarray] | ModelError] = {}

    def get(self, key: Any) -> tuple[np.ndarray, np.ndarray]:
        if key not in self._cache:
            try:
                self._cache[key] = self._load(key)
            except ModelError as exc:
                self._cache[key] = exc
        value = self._cache[key]
        if isinstance(value, ModelError):
            raise value
        return value

    def _load(self, key: Any) -> tuple[np.ndarray, np.ndarray]:
        if key is None:
            raise ModelError("manifest names no eval set for this model")
        entry = self.evals.get(key)
        if not isinstance(entry, dict):
            raise ModelError(f"eval set {key!r} is not listed in the manifest's evals")
        try:
            path, _, _ = check_file(self.bundle, entry)
        except ModelError as exc:
            raise ModelError(f"eval set {key!r}: {exc}") from None
        if not zipfile.is_zipfile(path):  # np.load would call a non-zip file "pickled data"
            raise ModelError(f"eval set {key!r} ({entry['path']}) is not an npz archive")
        try:
            with np.load(path, allow_pickle=False) as npz:
                inputs, labels = npz["inputs"], npz["labels"]
        except Exception as exc:  # noqa: BLE001 - corrupt npz, missing arrays
            raise ModelError(f"eval set {key!r} ({entry['path']}) cannot be read: {_one_line(exc)}") from None
        if inputs.ndim == 0 or labels.ndim == 0:
            raise ModelError(f"eval set {key!r} ({entry['path']}) holds scalars, not arrays of rows")
        if len(inputs) == 0 or len(inputs) != len(labels):
            raise ModelError(f"eval set {key!r} has {len(inputs)} inputs and {len(labels)} labels")
        return inputs, labels


# --------------------------------------------------------------------------------------------- measuring
def _one_line(exc: BaseException | str, limit: int = 300) -> str:
    text = str(exc).strip()
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    if not line:
        line = type(exc).__name__ if isinstance(exc, BaseException) else "unknown error"
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _session_options(ort: Any, threads: int) -> Any:
    so = ort.SessionOptions()
    if threads > 0:
        so.intra_op_num_threads = threads
    so.log_severity_level = 3  # errors only; a warning on stderr is not a failed model
    return so


def make_session(path: Path, settings: BenchSettings) -> Any:
    """The one way a bundle file becomes an onnxruntime session (the benchmark's bare loop uses it too)."""
    import onnxruntime as ort

    return ort.InferenceSession(str(path), sess_options=_session_options(ort, settings.threads),
                                providers=[settings.provider])


# A 69-byte ONNX model (Identity on one float), IR 8 / opset 17, used to initialise onnxruntime before the first
# measured model so that one-time runtime start-up (tens of ms, tens of MB) is not charged to whichever model
# happens to come first.
_PRIME_MODEL = bytes.fromhex(
    "08083a3b0a100a017812017922084964656e7469747912057072696d655a0f0a0178120a0a08080112040a020801620f0a0179"
    "120a0a08080112040a02080142040a001011"
)


def prime_onnxruntime(settings: BenchSettings) -> None:
    """Create and run a trivial session once (best effort; a failure here is reported by the real models)."""
    try:
        import onnxruntime as ort

        sess = ort.InferenceSession(_PRIME_MODEL, sess_options=_session_options(ort, settings.threads),
                                    providers=[settings.provider])
        sess.run(None, {"x": np.ones(1, dtype=np.float32)})
    except Exception:  # noqa: BLE001
        pass


def check_dependencies() -> None:
    """Raise BundleError naming the missing package when a runner dependency cannot be imported."""
    for name in ("numpy", "onnxruntime", "psutil"):
        try:
            __import__(name)
        except ImportError as exc:
            raise BundleError(f"The runner needs the Python package {name!r} ({_one_line(exc)}); install the "
                              f"bundle's requirements.txt with: python3 -m pip install -r requirements.txt") from None


def make_call(sess: Any, feed: dict[str, np.ndarray], api: str) -> Callable[[], Any]:
    """One inference as a zero-argument callable, made the way ``api`` says.

    ``iobinding`` (default): the input array is bound once (no copy on CPU) and ORT allocates the outputs in
    C++, so a timed call is the model plus onnxruntime's own dispatch, as in a C/C++ deployment. ``run``: the usual
    ``sess.run(None, feed)``, which also converts the feed and wraps every output in a new numpy array on each
    call (about 5 us per call on a 2-core EPYC); use it to compare with notebooks that time ``sess.run``.
    """
    if api == "run":
        return functools.partial(sess.run, None, feed)
    binding = sess.io_binding()
    for name, array in feed.items():
        binding.bind_cpu_input(name, array)
    for out in sess.get_outputs():
        binding.bind_output(out.name, "cpu")
    return functools.partial(sess.run_with_iobinding, binding)


def timed_runs(call: Callable[[], Any], min_runs: int, min_seconds: float) -> list[float]:
    """Per-run latencies (seconds) of ``call()`` until BOTH min_runs and min_seconds are reached.

    Kept lean on purpose: only ``perf_counter`` around the call, a prebuilt call (see make_call), and the
    garbage collector paused, so the loop adds (almost) nothing to what it measures.
    """
    pc = time.perf_counter
    times: list[float] = []
    append = times.append
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        deadline = pc() + min_seconds
        n = 0
        while True:
            t0 = pc()
            call()
            t1 = pc()
            append(t1 - t0)
            n += 1
            if n >= min_runs and t1 >= deadline:
                break
    finally:
        if gc_was_enabled:
            gc.enable()
    return times


def _batch(inputs: np.ndarray, rows: int) -> np.ndarray:
    """The first ``rows`` rows of the eval inputs (repeated if the eval set is smaller)."""
    if len(inputs) >= rows:
        return np.ascontiguousarray(inputs[:rows])
    reps = -(-rows // len(inputs))
    return np.ascontiguousarray(np.concatenate([inputs] * reps)[:rows])


def _accuracy(sess: Any, input_name: str, output_name: str, inputs: np.ndarray, labels: np.ndarray,
              batch: int, fixed_batch: int | None, dtype: Any) -> float:
    """Fraction of eval rows where argmax of the output equals the label, run in batches."""
    step = fixed_batch or batch
    correct = 0
    for start in range(0, len(inputs), step):
        x = inputs[start:start + step]
        rows = len(x)
        if fixed_batch and rows < fixed_batch:  # a model with a fixed batch dimension: pad, then drop the padding
            x = _batch(x, fixed_batch)
        x = np.ascontiguousarray(x, dtype=dtype)
        out = np.asarray(sess.run([output_name], {input_name: x})[0])[:rows]
        pred = out.argmax(axis=-1) if out.ndim >= 2 else (out > 0).astype(np.int64)
        correct += int(np.count_nonzero(pred.reshape(-1) == np.asarray(labels[start:start + rows]).reshape(-1)))
    return correct / len(inputs)


def _entry(model: dict[str, Any], file_entry: dict[str, Any] | None) -> dict[str, Any]:
    fe = file_entry or {}
    return {
        "name": model.get("name"),
        "file": fe.get("path"),
        "format": fe.get("format"),
        "status": "error",
        "error": None,
        "sha256": fe.get("sha256"),
        "sha256_ok": None,
        "disk_bytes": None,
        "session_ms": None,
        "first_ms": None,
        "batch_size": None,
        "latency_ms": empty_latency(),
        "memory_mb": empty_memory(),
        "accuracy": None,
        "eval_n": None,
    }


@dataclass(frozen=True)
class SessionIO:
    """What a session is fed: the input and output used, the input dtype, a fixed batch if the model has one,
    and the timing batch (the first rows of the eval set)."""

    input_name: str
    output_name: str
    dtype: Any
    fixed_batch: int | None
    batch_size: int
    feed: dict[str, np.ndarray]


def session_io(sess: Any, model: dict[str, Any], inputs: np.ndarray, settings: BenchSettings) -> SessionIO:
    in_names = [i.name for i in sess.get_inputs()]
    out_names = [o.name for o in sess.get_outputs()]
    input_name = model.get("input_name") if model.get("input_name") in in_names else in_names[0]
    output_name = model.get("output_name") if model.get("output_name") in out_names else out_names[0]
    if len(in_names) > 1:
        raise ModelError(f"model has {len(in_names)} inputs {in_names}; the runner feeds exactly one")
    inp = sess.get_inputs()[0]
    dtype = _ORT_DTYPES.get(inp.type)
    if dtype is None:
        raise ModelError(f"input {input_name!r} has type {inp.type}, which the runner cannot feed")
    dim0 = inp.shape[0] if inp.shape else None
    fixed_batch = dim0 if isinstance(dim0, int) and dim0 > 0 else None
    batch_size = fixed_batch or settings.batch_size
    feed = {input_name: np.ascontiguousarray(_batch(inputs, batch_size), dtype=dtype)}
    return SessionIO(input_name, output_name, dtype, fixed_batch, batch_size, feed)


def bench_file(bundle: Path, model: dict[str, Any], file_entry: dict[str, Any], settings: BenchSettings,
               evals: EvalSets | None = None, manifest: dict[str, Any] | None = None,
               times_out: list[float] | None = None) -> dict[str, Any]:
    """Measure one model file. Never raises for a problem with the file: it returns a ``status: error`` entry.

    ``times_out`` receives the raw per-call latencies (seconds) of the timed runs, for pooling with later rounds.
    """
    bundle = Path(bundle)
    if evals is None:
        evals = EvalSets(bundle, (manifest or {}).get("evals", {}) or {})
    result = _entry(model, file_entry)
    sess = None
    try:
        # 1. integrity
        try:
            path = _resolve(bundle, file_entry.get("path"))
            if path.is_file():
                result["disk_bytes"] = path.stat().st_size
            _, size, _ = check_file(bundle, file_entry)
        except ModelError:
            result["sha256_ok"] = False if result["disk_bytes"] is not None else None
            raise
        result["sha256_ok"] = True
        result["disk_bytes"] = size

        # 2. eval data (also the timing batch)
        inputs, labels = evals.get(model.get("eval", model.get("task")))
        result["eval_n"] = int(len(inputs))

        # 3. load (session creation time, RSS before/after load, peak window starts here)
        mem = PeakMemory()
        gc.collect()
        rss_before = mem.rss()
        mem.reset()
        t0 = time.perf_counter()
        try:
            sess = make_session(path, settings)
        except Exception as exc:  # noqa: BLE001 - corrupt/unsupported model
            raise ModelError(f"onnxruntime could not load {file_entry['path']}: {_one_line(exc)}") from None
        result["session_ms"] = (time.perf_counter() - t0) * 1e3
        rss_after = mem.rss()

        io = session_io(sess, model, inputs, settings)
        result["batch_size"] = io.batch_size

        # 4. first inference, warm-up, timed runs
        try:
            call = make_call(sess, io.feed, settings.api)
            t0 = time.perf_counter()
            call()
            result["first_ms"] = (time.perf_counter() - t0) * 1e3
        except Exception as exc:  # noqa: BLE001 - shape/type mismatch between model and eval set
            raise ModelError(f"inference failed: {_one_line(exc)}") from None
        mem.rss()
        for _ in range(settings.warmup):
            call()
        mem.rss()
        times = timed_runs(call, settings.min_runs, settings.min_seconds)
        peak = mem.peak()
        if times_out is not None:
            times_out.extend(times)
        result["latency_ms"] = latency_stats(np.asarray(times) * 1e3)
        result["memory_mb"] = {
            "rss_before": rss_before / MB,
            "rss_after_load": rss_after / MB,
            "rss_peak": peak / MB,
            "peak_method": mem.method,
        }

        # 5. accuracy on the bundled eval set
        try:
            result["accuracy"] = _accuracy(sess, io.input_name, io.output_name, inputs, labels,
                                           max(1, settings.eval_batch_size), io.fixed_batch, io.dtype)
        except Exception as exc:  # noqa: BLE001
            raise ModelError(f"evaluation failed: {_one_line(exc)}") from None
        result["status"] = "ok"
    except ModelError as exc:
        result["error"] = _one_line(exc)
    except Exception as exc:  # noqa: BLE001 - an unexpected failure of one model must not stop the others
        result["error"] = f"{type(exc).__name__}: {_one_line(exc)}"
    finally:
        del sess
        gc.collect()
    return result


def retime_file(bundle: Path, model: dict[str, Any], file_entry: dict[str, Any], settings: BenchSettings,
                evals: EvalSets) -> list[float]:
    """One more timing window for a file that bench_file measured: its sha256 checked again, a fresh session, its
    first call and the warm-up untimed, then the timed runs (seconds). Raises ModelError if the file changed or no
    longer runs."""
    inputs, _ = evals.get(model.get("eval", model.get("task")))
    try:
        path, _, _ = check_file(bundle, file_entry)
    except ModelError as exc:
        raise FileChanged(f"a later timing round found the file changed: {_one_line(exc)}") from None
    sess = None
    try:
        sess = make_session(path, settings)
        call = make_call(sess, session_io(sess, model, inputs, settings).feed, settings.api)
        for _ in range(1 + settings.warmup):
            call()
        return timed_runs(call, settings.min_runs, settings.min_seconds)
    except Exception as exc:  # noqa: BLE001 - the file changed or broke since the first round
        raise ModelError(f"a later timing round failed: {_one_line(exc)}") from None
    finally:
        del sess
        gc.collect()


def selected_files(manifest: dict[str, Any], models_glob: str | None = None
                   ) -> list[tuple[dict[str, Any], dict[str, Any] | None]]:
    """(model, file) pairs to measure: every file whose format starts with ``onnx``; (model, None) when a
    selected model has no ONNX file at all."""
    pairs: list[tuple[dict[str, Any], dict[str, Any] | None]] = []
    for model in manifest["models"]:
        if models_glob and not fnmatch.fnmatchcase(str(model["name"]), models_glob):
            continue
        files = [f for f in (model.get("files") or []) if isinstance(f, dict)
                 and is_onnx_format(f.get("format"))]
        if files:
            pairs.extend((model, f) for f in files)
        else:
            pairs.append((model, None))
    return pairs


def _progress_line(i: int, total: int, entry: dict[str, Any]) -> str:
    head = f"[{i}/{total}] {entry['name']}" + (f" ({entry['file']})" if entry["file"] else "")
    if entry["status"] != "ok":
        return f"{head}: ERROR {entry['error']}"
    return f"{head}: p50 {entry['latency_ms']['p50']:.4f} ms, accuracy {100 * entry['accuracy']:.2f}%"


def interleaved_rounds(bundle: Path, pairs: list, entries: list[dict[str, Any]], times: list[list[float]],
                       settings: BenchSettings, evals: EvalSets, progress: Callable[[str], None]) -> None:
    """Rounds 2..R: every measured file timed again, file after file, so a slow spell on a shared machine lands on
    all files instead of on whichever file was running. Each entry's latency_ms then pools all R windows and lists
    each window's p50 (``p50_rounds``), whose spread shows how much the machine drifted."""
    p50s = [[float(np.median(t)) * 1e3] if t else [] for t in times]
    for round_no in range(2, settings.rounds + 1):
        for i, ((model, file_entry), entry) in enumerate(zip(pairs, entries)):
            if entry["status"] != "ok":
                continue
            try:
                window = retime_file(bundle, model, file_entry, settings, evals)
            except ModelError as exc:   # what round 1 measured belongs to a file that is no longer there
                entry.update(status="error", error=_one_line(exc), latency_ms=empty_latency(),
                             memory_mb=empty_memory(), accuracy=None)
                if isinstance(exc, FileChanged):
                    entry["sha256_ok"] = False
                continue
            times[i].extend(window)
            p50s[i].append(float(np.median(window)) * 1e3)
        progress(f"round {round_no}/{settings.rounds} done")
    for entry, t, rounds in zip(entries, times, p50s):
        if entry["status"] == "ok":
            entry["latency_ms"] = {**latency_stats(np.asarray(t) * 1e3), "p50_rounds": rounds}


def run_bench(bundle: Path, settings: BenchSettings | None = None, label: str | None = None,
              progress: Callable[[str], None] | None = None, manifest: dict[str, Any] | None = None
              ) -> dict[str, Any]:
    """Measure a bundle and return the ``edgeprune.result/1`` dict (nothing is written).

    Raises BundleError for a bundle that cannot be read at all; a bad model file becomes an error entry.
    ``progress`` receives one line per measured file (default: stderr).
    """
    from runners.device import device_facts

    settings = settings or BenchSettings()
    bundle = Path(bundle)
    if manifest is None:
        manifest = load_manifest(bundle)
    if progress is None:
        def progress(line: str) -> None:
            print(line, file=sys.stderr, flush=True)

    pairs = selected_files(manifest, settings.models)
    if not pairs and settings.models is None:
        raise BundleError(f"{bundle / 'manifest.json'} lists no models, so there is nothing to measure.")
    if not pairs:
        raise BundleError(f"No model in {bundle / 'manifest.json'} matches --models {settings.models!r}.")
    check_dependencies()
    prime_onnxruntime(settings)
    evals = EvalSets(bundle, manifest.get("evals") or {})
    entries, times = [], []
    for i, (model, file_entry) in enumerate(pairs, 1):
        times.append([])
        if file_entry is None:
            entry = _entry(model, None)
            entry["error"] = "manifest lists no file with an onnx format for this model"
        else:
            entry = bench_file(bundle, model, file_entry, settings, evals, times_out=times[-1])
        entries.append(entry)
        progress(_progress_line(i, len(pairs), entry))
    if settings.rounds > 1:
        interleaved_rounds(bundle, pairs, entries, times, settings, evals, progress)
    return {
        "schema": RESULT_SCHEMA,
        "bundle": manifest.get("bundle_id"),
        "bundle_path": str(bundle.resolve()),
        "runner_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": device_facts(label),
        "settings": settings.to_json(),
        "models": entries,
    }


def write_result(result: dict[str, Any], out: Path) -> Path:
    """Write JSON atomically: a temporary file beside ``out``, fsync, then os.replace."""
    text = json.dumps(result, indent=2, allow_nan=False) + "\n"
    return atomic_write(Path(out), lambda tmp: tmp.write_text(text, encoding="utf-8"))
