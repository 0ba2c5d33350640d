"""Measure every ONNX file of a bundle: integrity, load time, latency, memory, on-device accuracy.

This module is the orchestration only: which files are measured with which execution providers, in what order
(file-major: every file with each provider, one after the other), and how one file's steps (check, load, first
call, warm-up, timed runs, accuracy) become one entry of ``result["models"]``. A run has two parts: every (file,
provider) measured once, each in a fresh process (runners.isolation), for its integrity, load time, first call,
memory and accuracy; then the timing rounds (runners.rounds), where every file's windows sit beside windows of its
group's dense reference with the same provider, whose second entry (the A/A control, ``role`` "aa-control") shows
the noise floor. What each step does lives beside it: runners.settings (how to measure), runners.providers (which
providers), runners.bundle (manifest, file checks, eval sets), runners.session (onnxruntime), runners.stats (latency
numbers and intervals), runners.memory (RSS), runners.thermal (the CPU's state before, during and after),
runners.device (device facts), runners.errors (one-sentence errors).

The public entry points (used by ``runner bench`` and by benchmarks/harness code that wants the same numbers):

* :func:`run_bench` -- measure a bundle, return the ``edgeprune.result/1`` dict.
* :func:`bench_file` -- measure one (model, file, provider), return one entry of ``result["models"]``.
* :func:`write_result` -- write a result atomically.

Never imports torch: this module runs on the device.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fnmatch
import gc
import json
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np

from runners import __version__, isolation
from runners.bundle import EvalSets, check_file, load_manifest, resolve
from runners.contract import (RESULT_SCHEMA, ROLE_CONTROL, ROLE_FILE, ROLE_REFERENCE, comparison_group,
                              dense_references, is_onnx_format)
from runners.errors import BundleError, ModelError, one_line
from runners.files import atomic_write
from runners.memory import PeakMemory, empty_memory, in_mb
from runners.privacy import telemetry_record
from runners.progress import Progress
from runners.providers import effective_options, resolve_installed, short_name
from runners.rounds import run_rounds, timing_units
from runners.session import (check_dependencies, eval_accuracy, make_call, make_session, prime_onnxruntime,
                             session_io, session_options, session_record, timed_runs)
from runners.settings import BenchSettings
from runners.stats import empty_latency, latency_stats
from runners.thermal import current_mhz, during_run, snapshot

# What a fresh measuring process runs (runners.isolation resolves it by name, JSON in and out).
ISOLATED_TARGET = "runners.bench:measure_in_fresh_process"


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
        "role": ROLE_FILE,
        "reference": None,
        "ratio_to_reference": None,
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

    ``times_out`` receives the raw per-call latencies (seconds) of the timed runs, for a caller that pools windows;
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
        known = rss_before is not None and rss_after is not None and peak is not None
        result["memory_mb"] = {
            "rss_before": in_mb(rss_before),
            "rss_after_load": in_mb(rss_after),
            "rss_peak": in_mb(peak),
            "peak_method": mem.method,
            # the model's own share: what loading it, and loading and running it, added to the process
            "load_increment": in_mb(rss_after - rss_before) if known else None,
            "peak_increment": in_mb(peak - rss_before) if known else None,
            "isolation": "none",
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


def measure_in_fresh_process(bundle: str, model: dict[str, Any], file_entry: dict[str, Any],
                             settings: dict[str, Any], evals: dict[str, Any], provider: str) -> dict[str, Any]:
    """What each fresh process runs (runners.isolation): onnxruntime started first, so its one-time start-up is
    nobody's memory or load time, then bench_file on this one file; returns {"entry", "mhz", "options"} (the
    core frequencies after its timed calls, the provider's effective options)."""
    bench_settings = BenchSettings(**settings)
    prime_onnxruntime(bench_settings)
    mhz: list[list[float | None]] = []
    options: dict[str, dict[str, str]] = {}
    entry = bench_file(Path(bundle), model, file_entry, bench_settings, EvalSets(Path(bundle), evals),
                       provider=provider, mhz_out=mhz, options_out=options)
    if entry["memory_mb"].get("isolation") is not None:   # null where the file could not be measured
        entry["memory_mb"]["isolation"] = "process"
    return {"entry": entry, "mhz": mhz, "options": options}


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
    head += " [A/A control]" if entry.get("role") == ROLE_CONTROL else ""
    if entry["status"] != "ok":
        return f"{head}: ERROR {entry['error']}"
    return f"{head}: p50 {entry['latency_ms']['p50']:.4f} ms, accuracy {100 * entry['accuracy']:.2f}%"


@dataclasses.dataclass
class Job:
    """One entry of the result: a (model, file, provider) measurement, its role for the comparisons and the position
    in the run's jobs of its group's reference with the same provider (None: no reference to be timed beside it)."""

    model: dict[str, Any]
    file_entry: dict[str, Any] | None
    provider: str
    role: str = ROLE_FILE
    reference: int | None = None
    entry: dict[str, Any] = dataclasses.field(default_factory=dict)


def measuring_plan(pairs: list[tuple[dict[str, Any], dict[str, Any] | None]], providers: tuple[str, ...],
                   aa_control: bool = True) -> list[Job]:
    """The selected files in manifest order, each with every provider (file-major), each with its group's dense
    reference under the same provider; with `aa_control`, the reference file once more per provider, as a distinct
    entry after the last file of its group (contract.ROLE_CONTROL)."""
    refs = dense_references(pairs)
    last_of_group = {comparison_group(model): i for i, (model, f) in enumerate(pairs) if f is not None}
    jobs: list[Job] = []
    position: dict[tuple[int, str], int] = {}
    controls: list[Job] = []
    for i, (model, file_entry) in enumerate(pairs):
        group = comparison_group(model)
        ref = refs.get(group) if file_entry is not None else None
        for provider in providers:
            position[(i, provider)] = len(jobs)
            jobs.append(Job(model, file_entry, provider, ROLE_REFERENCE if ref == i else ROLE_FILE, ref))
        if aa_control and ref is not None and last_of_group.get(group) == i:
            for provider in providers:
                controls.append(Job(pairs[ref][0], pairs[ref][1], provider, ROLE_CONTROL, ref))
                jobs.append(controls[-1])
    # references as positions in the jobs (each provider's own), which the control entries shift
    for job in jobs:
        if job.reference is not None:
            job.reference = position[(job.reference, job.provider)]
    return jobs


def _measure_once(bundle: Path, jobs: list[Job], settings: BenchSettings, manifest: dict[str, Any],
                  evals: EvalSets, progress: Progress, mhz_out: list[list[float | None]],
                  options_out: dict[str, dict[str, str]]) -> None:
    """Every job measured once (integrity, load, first call, memory, accuracy), each in a fresh process where the
    platform allows it, else in this one; fills job.entry."""
    fresh = settings.memory_isolation == "process" and isolation.available()
    if not fresh:
        prime_onnxruntime(settings)
    # No latency comes from this pass (the rounds time every file), so its timed calls only need to reach the peak:
    # min_runs of them, without the min_seconds a timing window waits for.
    once = dataclasses.replace(settings, min_seconds=0.0)
    request = {"bundle": str(bundle), "evals": manifest.get("evals") or {}, "settings": dataclasses.asdict(once)}
    several = len(settings.providers) > 1
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(isolation.FreshProcesses(ISOLATED_TARGET)) if fresh else None
        for i, job in enumerate(jobs, 1):
            if job.file_entry is None:
                job.entry = _entry(job.model, None, job.provider)
                job.entry["error"] = "manifest lists no file with an onnx format for this model"
            elif server is not None:
                try:
                    answer = server.call(model=job.model, file_entry=job.file_entry, provider=job.provider,
                                         **request)
                    job.entry = answer["entry"]
                    mhz_out.extend(answer["mhz"])
                    for provider, options in answer["options"].items():
                        options_out.setdefault(provider, options)
                except isolation.IsolationError as exc:
                    job.entry = _entry(job.model, job.file_entry, job.provider)
                    job.entry["error"] = one_line(exc)
            else:
                job.entry = bench_file(bundle, job.model, job.file_entry, once, evals, provider=job.provider,
                                       mhz_out=mhz_out, options_out=options_out)
            job.entry["role"] = job.role
            job.entry["reference"] = None if job.reference is None else jobs[job.reference].file_entry["path"]
            progress.update(1)
            progress.finished(_progress_line(i, len(jobs), job.entry, several))


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
    telemetry = telemetry_record()
    settings, unavailable = resolve_providers(settings)
    for sentence in unavailable.values():
        Progress("providers", quiet=quiet, lines=progress).finished(f"not measured: {sentence}", timing=False)
    before = snapshot()
    evals = EvalSets(bundle, manifest.get("evals") or {})
    jobs = measuring_plan(pairs, settings.providers, settings.aa_control)
    mhz: list[list[float | None]] = []
    effective: dict[str, dict[str, str]] = {}
    with Progress("load, first call, memory, accuracy", total=len(jobs), unit="file", quiet=quiet,
                  lines=progress) as bar:
        _measure_once(bundle, jobs, settings, manifest, evals, bar, mhz, effective)
    prime_onnxruntime(settings)
    with Progress(f"timing rounds (x{settings.rounds})", total=settings.rounds * len(timing_units(jobs)),
                  unit="group", quiet=quiet, lines=progress) as bar:
        run_rounds(bundle, jobs, settings, evals, bar, mhz)
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
        "telemetry": telemetry,
        "models": [job.entry for job in jobs],
    }


def write_result(result: dict[str, Any], out: Path) -> Path:
    """Write JSON atomically: a temporary file beside ``out``, fsync, then os.replace."""
    text = json.dumps(result, indent=2, allow_nan=False) + "\n"
    return atomic_write(Path(out), lambda tmp: tmp.write_text(text, encoding="utf-8"))
