"""Measure every ONNX file of a bundle: integrity, load time, latency, memory, on-device accuracy.

This module is the orchestration only: which files are measured with which execution providers, in what order
(file-major: every file with each provider, one after the other), and how one file's steps (check, load, first
call, warm-up, timed runs, accuracy) become one entry of ``result["models"]``. What each step does lives beside it:
runners.settings (how to measure), runners.providers (which providers), runners.bundle (manifest, file checks, eval
sets), runners.session (onnxruntime), runners.stats (latency numbers), runners.memory (RSS), runners.thermal (the
CPU's state before, during and after), runners.device (device facts), runners.errors (one-sentence errors).

The public entry points (used by ``runner bench`` and by benchmarks/harness code that wants the same numbers):

* :func:`run_bench` -- measure a bundle, return the ``edgeprune.result/1`` dict.
* :func:`bench_file` -- measure one (model, file, provider), return one entry of ``result["models"]``.
* :func:`write_result` -- write a result atomically.

Never imports torch: this module runs on the device.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import gc
import json
import sys
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
from runners.memory import PeakMemory, empty_memory, in_mb
from runners.providers import effective_options, resolve_installed, short_name
from runners.session import (check_dependencies, eval_accuracy, make_call, make_session, prime_onnxruntime,
                             session_io, session_options, session_record, timed_runs)
from runners.settings import BenchSettings
from runners.stats import empty_latency, latency_stats
from runners.thermal import current_mhz, during_run, snapshot


def _entry(model: dict[str, Any], file_entry: dict[str, Any] | None, provider: str | None = None
           ) -> dict[str, Any]:
    """A file's result entry before it is measured: every key of the result format present, status error."""
    fe = file_entry or {}
    return {
        "name": model.get("name"),
        "file": fe.get("path"),
        "format": fe.get("format"),
        "provider": provider,
        "session_providers": None,
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
        "cpu_mhz": None,
    }


def _mean_mhz(values: list[float | None]) -> float | None:
    known = [v for v in values if v]
    return round(sum(known) / len(known), 1) if known else None


def bench_file(bundle: Path, model: dict[str, Any], file_entry: dict[str, Any], settings: BenchSettings,
               evals: EvalSets | None = None, manifest: dict[str, Any] | None = None,
               times_out: list[float] | None = None, provider: str | None = None,
               mhz_out: list[list[float | None]] | None = None,
               options_out: dict[str, dict[str, str]] | None = None) -> dict[str, Any]:
    """Measure one model file with one execution provider (default: the settings' first). Never raises for a
    problem with the file: it returns a ``status: error`` entry.

    ``times_out`` receives the raw per-call latencies (seconds) of the timed runs, for pooling with later rounds;
    ``mhz_out`` each core's frequency right after them; ``options_out`` the provider's options as onnxruntime
    reports them for this session (once per provider).
    """
    bundle = Path(bundle)
    provider = provider or settings.providers[0]
    if evals is None:
        evals = EvalSets(bundle, (manifest or {}).get("evals", {}) or {})
    result = _entry(model, file_entry, provider)
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
            sess = make_session(path, settings, provider)
        except ModelError:
            raise
        except Exception as exc:  # noqa: BLE001 - corrupt/unsupported model, or a provider that cannot run it
            raise ModelError(f"onnxruntime could not load {file_entry['path']} with {provider}: "
                             f"{one_line(exc)}") from None
        result["session_ms"] = (time.perf_counter() - t0) * 1e3
        result["session_providers"] = list(sess.get_providers())
        if options_out is not None and provider not in options_out:
            options_out[provider] = dict(effective_options(sess, provider))
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
        mhz = current_mhz()
        peak = mem.peak()
        if times_out is not None:
            times_out.extend(times)
        if mhz_out is not None:
            mhz_out.append(mhz)
        result["cpu_mhz"] = _mean_mhz(mhz)
        result["latency_ms"] = latency_stats(np.asarray(times) * 1e3)
        result["memory_mb"] = {
            "rss_before": in_mb(rss_before),
            "rss_after_load": in_mb(rss_after),
            "rss_peak": in_mb(peak),
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
                evals: EvalSets, provider: str | None = None) -> list[float]:
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
        sess = make_session(path, settings, provider)
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


def _progress_line(i: int, total: int, entry: dict[str, Any], several_providers: bool = False) -> str:
    head = f"[{i}/{total}] {entry['name']}" + (f" ({entry['file']})" if entry["file"] else "")
    if several_providers and entry.get("provider"):
        head += f" [{short_name(entry['provider'])}]"
    if entry["status"] != "ok":
        return f"{head}: ERROR {entry['error']}"
    return f"{head}: p50 {entry['latency_ms']['p50']:.4f} ms, accuracy {100 * entry['accuracy']:.2f}%"


@dataclasses.dataclass
class Job:
    """One (model, file, provider) measurement of a run, with what its timing windows collected."""

    model: dict[str, Any]
    file_entry: dict[str, Any] | None
    provider: str
    entry: dict[str, Any] = dataclasses.field(default_factory=dict)
    times: list[float] = dataclasses.field(default_factory=list)
    p50s: list[float] = dataclasses.field(default_factory=list)


def interleaved_rounds(bundle: Path, jobs: list[Job], settings: BenchSettings, evals: EvalSets,
                       progress: Callable[[str], None], mhz_out: list[list[float | None]]) -> None:
    """Rounds 2..R: every measured (file, provider) timed again, one after the other, so a slow spell on a shared
    machine lands on all of them instead of on whichever was running. Each entry's latency_ms then pools all R
    windows and lists each window's p50 (``p50_rounds``), whose spread shows how much the machine drifted."""
    for job in jobs:
        job.p50s = [float(np.median(job.times)) * 1e3] if job.times else []
    for round_no in range(2, settings.rounds + 1):
        for job in jobs:
            if job.entry["status"] != "ok":
                continue
            try:
                window = retime_file(bundle, job.model, job.file_entry, settings, evals, job.provider)
            except ModelError as exc:   # what round 1 measured belongs to a file that is no longer there
                job.entry.update(status="error", error=one_line(exc), latency_ms=empty_latency(),
                                 memory_mb=empty_memory(), accuracy=None)
                if isinstance(exc, FileChanged):
                    job.entry["sha256_ok"] = False
                continue
            mhz_out.append(current_mhz())
            job.times.extend(window)
            job.p50s.append(float(np.median(window)) * 1e3)
        progress(f"round {round_no}/{settings.rounds} done")
    for job in jobs:
        if job.entry["status"] == "ok":
            job.entry["latency_ms"] = {**latency_stats(np.asarray(job.times) * 1e3), "p50_rounds": job.p50s}


def resolve_providers(settings: BenchSettings) -> tuple[BenchSettings, dict[str, str]]:
    """The settings with onnxruntime's names for the providers this build offers, and one sentence per requested
    provider it does not; BundleError (nothing to measure) when none of them is offered."""
    resolution = resolve_installed(settings.providers)
    if not resolution.chosen:
        raise BundleError("; ".join(resolution.unavailable.values()) + ".")
    options = {}
    for name, values in settings.provider_options.items():
        chosen = next((p for p in resolution.chosen if p == name or short_name(p) == name.lower()), None)
        if chosen is not None:
            options[chosen] = dict(values)
    return dataclasses.replace(settings, providers=tuple(resolution.chosen), provider_options=options), \
        resolution.unavailable


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
    settings, unavailable = resolve_providers(settings)
    for sentence in unavailable.values():
        progress(f"not measured: {sentence}")
    before = snapshot()
    prime_onnxruntime(settings)
    evals = EvalSets(bundle, manifest.get("evals") or {})
    several = len(settings.providers) > 1
    jobs = [Job(model, file_entry, provider) for model, file_entry in pairs for provider in settings.providers]
    mhz: list[list[float | None]] = []
    effective: dict[str, dict[str, str]] = {}
    for i, job in enumerate(jobs, 1):
        if job.file_entry is None:
            job.entry = _entry(job.model, None, job.provider)
            job.entry["error"] = "manifest lists no file with an onnx format for this model"
        else:
            job.entry = bench_file(bundle, job.model, job.file_entry, settings, evals, times_out=job.times,
                                   provider=job.provider, mhz_out=mhz, options_out=effective)
        progress(_progress_line(i, len(jobs), job.entry, several))
    if settings.rounds > 1:
        interleaved_rounds(bundle, jobs, settings, evals, progress, mhz)
    after = snapshot()
    device = device_facts(label)
    device.update(state_before=before, state_after=after, during_run=during_run(before, after, mhz))
    record = settings.to_json()
    record["provider_options_effective"] = {p: effective.get(p) for p in settings.providers}
    record["providers_unavailable"] = unavailable
    record["session_options"] = session_record(session_options(settings))
    return {
        "schema": RESULT_SCHEMA,
        "bundle": manifest.get("bundle_id"),
        "bundle_path": str(bundle.resolve()),
        "runner_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": device,
        "settings": record,
        "models": [job.entry for job in jobs],
    }


def write_result(result: dict[str, Any], out: Path) -> Path:
    """Write JSON atomically: a temporary file beside ``out``, fsync, then os.replace."""
    text = json.dumps(result, indent=2, allow_nan=False) + "\n"
    return atomic_write(Path(out), lambda tmp: tmp.write_text(text, encoding="utf-8"))
