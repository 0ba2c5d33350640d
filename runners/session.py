"""onnxruntime plumbing: how a bundle file becomes a session, what it is fed, how one call is made and timed, and
how its accuracy on the eval set is computed.

Every measurement of the runner (and of the benchmarks that compare against it) goes through these functions, so
the session options, the input dtype and the call path are the same wherever a latency is quoted.
onnxruntime is imported inside the functions: a device without it gets check_dependencies' one sentence, not an
ImportError at start-up.
"""

from __future__ import annotations

import functools
import gc
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from runners.errors import INSTALL_HINT, BundleError, ModelError, one_line
from runners.providers import check_session_providers
from runners.settings import EXECUTION_MODES, GRAPH_OPTIMIZATION_LEVELS, BenchSettings

# onnxruntime input type strings -> numpy dtypes used to feed them.
ORT_DTYPES = {
    "tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(float16)": np.float16,
    "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(int16)": np.int16, "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8, "tensor(bool)": np.bool_,
}


def check_dependencies() -> None:
    """Raise BundleError naming the missing package when a runner dependency cannot be imported."""
    for name in ("numpy", "onnxruntime", "psutil"):
        try:
            __import__(name)
        except ImportError as exc:
            raise BundleError(f"The runner needs the Python package {name!r} ({one_line(exc)}); {INSTALL_HINT}") from None


def session_options(settings: BenchSettings) -> Any:
    """The one SessionOptions every measured session gets: the settings' graph optimisation level, threads,
    execution mode and spinning (the options that change latency by large factors), errors-only logging."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    level = GRAPH_OPTIMIZATION_LEVELS[settings.graph_optimization]
    if not hasattr(ort.GraphOptimizationLevel, level):
        raise BundleError(f"--graph-optimization {settings.graph_optimization} needs a newer onnxruntime than "
                          f"{ort.__version__}; choose one of disable, basic, extended, all.")
    so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    so.execution_mode = getattr(ort.ExecutionMode, EXECUTION_MODES[settings.execution_mode])
    if settings.threads > 0:
        so.intra_op_num_threads = settings.threads
    if settings.inter_op_threads > 0:
        so.inter_op_num_threads = settings.inter_op_threads
    spin = "1" if settings.spinning else "0"
    so.add_session_config_entry("session.intra_op.allow_spinning", spin)
    so.add_session_config_entry("session.inter_op.allow_spinning", spin)
    so.log_severity_level = 3  # errors only; a warning on stderr is not a failed model
    return so


def session_record(so: Any) -> dict[str, Any]:
    """What a SessionOptions object holds, read back from it, for the result: 0 threads means onnxruntime's
    default (one intra-op thread per physical core)."""
    def config(key: str) -> str | None:
        try:
            return so.get_session_config_entry(key)
        except Exception:  # noqa: BLE001 - not set: onnxruntime's default
            return None

    return {
        "graph_optimization_level": str(so.graph_optimization_level).rpartition(".")[2],
        "execution_mode": str(so.execution_mode).rpartition(".")[2],
        "intra_op_num_threads": int(so.intra_op_num_threads),
        "inter_op_num_threads": int(so.inter_op_num_threads),
        "intra_op_allow_spinning": config("session.intra_op.allow_spinning"),
        "inter_op_allow_spinning": config("session.inter_op.allow_spinning"),
        "enable_cpu_mem_arena": bool(so.enable_cpu_mem_arena),
        "enable_mem_pattern": bool(so.enable_mem_pattern),
        "use_deterministic_compute": bool(getattr(so, "use_deterministic_compute", False)),
    }


def make_session(path: Path | bytes, settings: BenchSettings, provider: str | None = None) -> Any:
    """The one way a bundle file becomes an onnxruntime session (the benchmark's bare loop uses it too): the
    settings' session options, one execution provider with its options, and a check that onnxruntime really
    started that provider (it falls back to the CPU provider with only a log line when one fails)."""
    import onnxruntime as ort

    provider = provider or settings.providers[0]
    options = settings.provider_options.get(provider)
    sess = ort.InferenceSession(path if isinstance(path, bytes) else str(path),
                                sess_options=session_options(settings),
                                providers=[(provider, dict(options)) if options else provider])
    check_session_providers(sess.get_providers(), provider)
    return sess


# A 69-byte ONNX model (Identity on one float), IR 8 / opset 17, used to initialise onnxruntime before the first
# measured model so that one-time runtime start-up (tens of ms, tens of MB) is not charged to whichever model
# happens to come first.
_PRIME_MODEL = bytes.fromhex(
    "08083a3b0a100a017812017922084964656e7469747912057072696d655a0f0a0178120a0a08080112040a020801620f0a0179"
    "120a0a08080112040a02080142040a001011"
)


def prime_onnxruntime(settings: BenchSettings) -> None:
    """Create and run a trivial session once per provider (best effort; a failure here is reported by the real
    models)."""
    for provider in settings.providers:
        try:
            sess = make_session(_PRIME_MODEL, settings, provider)
            sess.run(None, {"x": np.ones(1, dtype=np.float32)})
        except Exception:  # noqa: BLE001
            pass


def first_rows(inputs: np.ndarray, rows: int) -> np.ndarray:
    """The first ``rows`` rows of the eval inputs (repeated if the eval set is smaller)."""
    if len(inputs) >= rows:
        return np.ascontiguousarray(inputs[:rows])
    reps = -(-rows // len(inputs))
    return np.ascontiguousarray(np.concatenate([inputs] * reps)[:rows])


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
    """Match a session's one input to the eval set: names from the manifest where they exist, dtype from the
    model, and the model's own batch dimension when it is fixed. Raises ModelError for a model the runner cannot
    feed."""
    in_names = [i.name for i in sess.get_inputs()]
    out_names = [o.name for o in sess.get_outputs()]
    input_name = model.get("input_name") if model.get("input_name") in in_names else in_names[0]
    output_name = model.get("output_name") if model.get("output_name") in out_names else out_names[0]
    if len(in_names) > 1:
        raise ModelError(f"model has {len(in_names)} inputs {in_names}; the runner feeds exactly one")
    inp = sess.get_inputs()[0]
    dtype = ORT_DTYPES.get(inp.type)
    if dtype is None:
        raise ModelError(f"input {input_name!r} has type {inp.type}, which the runner cannot feed")
    dim0 = inp.shape[0] if inp.shape else None
    fixed_batch = dim0 if isinstance(dim0, int) and dim0 > 0 else None
    batch_size = fixed_batch or settings.batch_size
    feed = {input_name: np.ascontiguousarray(first_rows(inputs, batch_size), dtype=dtype)}
    return SessionIO(input_name, output_name, dtype, fixed_batch, batch_size, feed)


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


def eval_accuracy(sess: Any, input_name: str, output_name: str, inputs: np.ndarray, labels: np.ndarray,
                  batch: int, fixed_batch: int | None, dtype: Any) -> float:
    """Fraction of eval rows where argmax of the output equals the label, run in batches."""
    step = fixed_batch or batch
    correct = 0
    for start in range(0, len(inputs), step):
        x = inputs[start:start + step]
        rows = len(x)
        if fixed_batch and rows < fixed_batch:  # a model with a fixed batch dimension: pad, then drop the padding
            x = first_rows(x, fixed_batch)
        x = np.ascontiguousarray(x, dtype=dtype)
        out = np.asarray(sess.run([output_name], {input_name: x})[0])[:rows]
        pred = out.argmax(axis=-1) if out.ndim >= 2 else (out > 0).astype(np.int64)
        correct += int(np.count_nonzero(pred.reshape(-1) == np.asarray(labels[start:start + rows]).reshape(-1)))
    return correct / len(inputs)
