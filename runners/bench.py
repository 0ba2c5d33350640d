"""Measure every ONNX file of a bundle: integrity, load time, latency, memory, on-device accuracy.

This module is the orchestration only: which files are measured, in what order, and how one file's steps (check,
load, first call, warm-up, timed runs, accuracy) become one entry of ``result["models"]``. What each step does lives
beside it: runners.settings (how to measure), runners.bundle (manifest, file checks, eval sets), runners.session
(onnxruntime), runners.stats (latency numbers), runners.memory (RSS), runners.errors (one-sentence errors).

The public entry points (used by ``runner bench`` and by benchmarks/harness code that wants the same numbers):

* :func:`run_bench` -- measure a bundle, return the ``edgeprune.result/1`` dict.
* :func:`bench_file` -- measure one (model, file) pair, return one entry of ``result["models"]``.
* :func:`write_result` -- write a result atomically.

Never imports torch: this module runs on the device.
"""

from __future__ import annotations

import fnmatch
import gc
import json
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np

from runners import __version__
from runners.bundle import EvalSets, check_file, load_manifest, resolve
from runners.contract import RESULT_SCHEMA, is_onnx_format
from runners.errors import BundleError, FileChanged, ModelError, one_line
from runners.files import atomic_write
from runners.memory import MB, PeakMemory, empty_memory
from runners.progress import Progress
from runners.session import (check_dependencies, eval_accuracy, make_call, make_session, prime_onnxruntime,
                             session_io, timed_runs)
from runners.settings import BenchSettings
from runners.stats import empty_latency, latency_stats


def _entry(model: dict[str, Any], file_entry: dict[str, Any] | None) -> dict[str, Any]:
    """A file's result entry before it is measured: every key of the result format present, status error."""
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
            path = resolve(bundle, file_entry.get("path"))
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
            raise ModelError(f"onnxruntime could not load {file_entry['path']}: {one_line(exc)}") from None
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
            raise ModelError(f"inference failed: {one_line(exc)}") from None
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
            result["accuracy"] = eval_accuracy(sess, io.input_name, io.output_name, inputs, labels,
                                                max(1, settings.eval_batch_size), io.fixed_batch, io.dtype)
        except Exception as exc:  # noqa: BLE001
            raise ModelError(f"evaluation failed: {one_line(exc)}") from None
        result["status"] = "ok"
    except ModelError as exc:
        result["error"] = one_line(exc)
    except Exception as exc:  # noqa: BLE001 - an unexpected failure of one model must not stop the others
        result["error"] = f"{type(exc).__name__}: {one_line(exc)}"
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
        raise FileChanged(f"a later timing round found the file changed: {one_line(exc)}") from None
    sess = None
    try:
        sess = make_session(path, settings)
        call = make_call(sess, session_io(sess, model, inputs, settings).feed, settings.api)
        for _ in range(1 + settings.warmup):
            call()
        return timed_runs(call, settings.min_runs, settings.min_seconds)
    except Exception as exc:  # noqa: BLE001 - the file changed or broke since the first round
        raise ModelError(f"a later timing round failed: {one_line(exc)}") from None
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
                       settings: BenchSettings, evals: EvalSets, progress: Progress) -> None:
    """Rounds 2..R: every measured file timed again, file after file, so a slow spell on a shared machine lands on
    all files instead of on whichever file was running. Each entry's latency_ms then pools all R windows and lists
    each window's p50 (``p50_rounds``), whose spread shows how much the machine drifted."""
    p50s = [[float(np.median(t)) * 1e3] if t else [] for t in times]
    for round_no in range(2, settings.rounds + 1):
        for i, ((model, file_entry), entry) in enumerate(zip(pairs, entries)):
            if entry["status"] != "ok":
                progress.update(1)
                continue
            try:
                window = retime_file(bundle, model, file_entry, settings, evals)
            except ModelError as exc:   # what round 1 measured belongs to a file that is no longer there
                entry.update(status="error", error=one_line(exc), latency_ms=empty_latency(),
                             memory_mb=empty_memory(), accuracy=None)
                if isinstance(exc, FileChanged):
                    entry["sha256_ok"] = False
                continue
            times[i].extend(window)
            p50s[i].append(float(np.median(window)) * 1e3)
            progress.update(1)
        progress.finished(f"round {round_no}/{settings.rounds} done")
    for entry, t, rounds in zip(entries, times, p50s):
        if entry["status"] == "ok":
            entry["latency_ms"] = {**latency_stats(np.asarray(t) * 1e3), "p50_rounds": rounds}


def run_bench(bundle: Path, settings: BenchSettings | None = None, label: str | None = None,
              progress: Callable[[str], None] | None = None, manifest: dict[str, Any] | None = None,
              quiet: bool = False) -> dict[str, Any]:
    """Measure a bundle and return the ``edgeprune.result/1`` dict (nothing is written).

    Raises BundleError for a bundle that cannot be read at all; a bad model file becomes an error entry.
    ``progress`` receives one line per measured file and per later round; without it those lines go to stderr,
    below a bar with the time left when stderr is a terminal (runners.progress). ``quiet``: no lines at all.
    """
    from runners.device import device_facts

    settings = settings or BenchSettings()
    bundle = Path(bundle)
    if manifest is None:
        manifest = load_manifest(bundle)

    pairs = selected_files(manifest, settings.models)
    if not pairs and settings.models is None:
        raise BundleError(f"{bundle / 'manifest.json'} lists no models, so there is nothing to measure.")
    if not pairs:
        raise BundleError(f"No model in {bundle / 'manifest.json'} matches --models {settings.models!r}.")
    check_dependencies()
    prime_onnxruntime(settings)
    evals = EvalSets(bundle, manifest.get("evals") or {})
    entries, times = [], []
    round_text = f"round 1/{settings.rounds}" if settings.rounds > 1 else "bench"
    with Progress(round_text, total=len(pairs), unit="file", quiet=quiet, lines=progress) as bar:
        for i, (model, file_entry) in enumerate(pairs, 1):
            times.append([])
            if file_entry is None:
                entry = _entry(model, None)
                entry["error"] = "manifest lists no file with an onnx format for this model"
            else:
                entry = bench_file(bundle, model, file_entry, settings, evals, times_out=times[-1])
            entries.append(entry)
            bar.update(1)
            bar.finished(_progress_line(i, len(pairs), entry))
    if settings.rounds > 1:
        with Progress(f"rounds 2-{settings.rounds}", total=(settings.rounds - 1) * len(pairs), unit="file",
                      quiet=quiet, lines=progress) as bar:
            interleaved_rounds(bundle, pairs, entries, times, settings, evals, bar)
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
