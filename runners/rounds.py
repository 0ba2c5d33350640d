"""Timing rounds: every file is timed in R short windows spread over the whole run, and every window sits next to a
window of its comparison group's dense reference file.

Why: on a shared or throttling device the speed of the machine drifts by more than the differences being measured
(identical files differ by 1 to 18% between windows here, benchmarks/bench_rounds.py). A window of the reference
timed right beside each file's window shares that drift, so the ratio of the two, one per round, cancels most of
it, and the spread of those ratios over the rounds is what the comparison's interval is made of
(runners.stats.ratio_interval). The two windows of a pair swap order every round, so whatever the order itself
does (caches, frequency) falls on both sides equally; the A/A control, timed like every other file, shows whatever
is left.

A round, per group and execution provider: the reference's session opens once; then for each other file of the
group: its sha256 checked again, a fresh session, the first call and the warm-up untimed, then the reference's
window and the file's window (or the other way round). The reference's p50 of a round pools all its windows of that
round. Files of a group without a reference get one window per round on their own. After every window the cores'
frequencies are sampled (runners.thermal), so a run that throttled says so.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from runners.bundle import EvalSets, check_file
from runners.errors import FileChanged, ModelError, one_line
from runners.memory import empty_memory
from runners.progress import Progress
from runners.session import make_call, make_session, session_io, timed_runs
from runners.settings import BenchSettings
from runners.stats import empty_latency, latency_stats, log_t_interval, ratio_interval
from runners.thermal import current_mhz

# The jobs are runners.bench.Job (model, file_entry, provider, role, reference, entry); bench imports this module, so
# the type is not imported back here.
Job = Any


@dataclass
class Timed:
    """What the rounds collect for one entry: pooled call times (seconds), each round's p50 (ms), and the p50 of
    the reference window timed beside it (ms; None where there was none)."""

    times: list[float] = field(default_factory=list)
    p50s: list[float] = field(default_factory=list)
    reference_p50s: list[float | None] = field(default_factory=list)


class OpenFile:
    """One file ready to be timed: checked, loaded, first call and warm-up done. Closing drops the session."""

    def __init__(self, bundle: Path, model: dict[str, Any], file_entry: dict[str, Any], settings: BenchSettings,
                 evals: EvalSets, provider: str) -> None:
        inputs, _ = evals.get(model.get("eval", model.get("task")))
        try:
            path, _, _ = check_file(bundle, file_entry)
        except ModelError as exc:
            raise FileChanged(f"a later timing round found the file changed: {one_line(exc)}") from None
        try:
            self._session = make_session(path, settings, provider)
            self.call = make_call(self._session, session_io(self._session, model, inputs, settings).feed, settings.api)
            for _ in range(1 + settings.warmup):
                self.call()
        except Exception as exc:  # noqa: BLE001 - the file changed or broke since it was first measured
            self.close()
            raise ModelError(f"a later timing round failed with {provider}: {one_line(exc)}") from None
        self.settings = settings

    def window(self) -> list[float]:
        return timed_runs(self.call, self.settings.min_runs, self.settings.min_seconds)

    def close(self) -> None:
        self.__dict__.pop("call", None)
        self.__dict__.pop("_session", None)
        gc.collect()


def _median_ms(times: list[float]) -> float:
    return float(np.median(times)) * 1e3


def _fail(entry: dict[str, Any], exc: ModelError) -> None:
    """What was measured before belongs to a file that is no longer there: the entry becomes an error."""
    entry.update(status="error", error=one_line(exc), latency_ms=empty_latency(), memory_mb=empty_memory(),
                 accuracy=None, ratio_to_reference=None)
    if isinstance(exc, FileChanged):
        entry["sha256_ok"] = False


def timing_units(jobs: list[Job]) -> list[tuple[int | None, list[int]]]:
    """The order of one round: (reference index, the indices timed beside it) per group and provider, at the
    position of the group's first entry; (None, [i]) for an entry without a reference."""
    units: list[tuple[int | None, list[int]]] = []
    seen: dict[int, list[int]] = {}
    for i, job in enumerate(jobs):
        ref = job.reference
        if job.entry["status"] != "ok":
            continue
        if ref is None or jobs[ref].entry["status"] != "ok":
            units.append((None, [i]))
            continue
        if ref not in seen:
            seen[ref] = []
            units.append((ref, seen[ref]))
        if i != ref:
            seen[ref].append(i)
    return units


class RoundRunner:
    """The state of one run's timing rounds: its jobs (failures are written into their entries), what each job's
    windows collected, and the cores' frequencies after each window."""

    def __init__(self, bundle: Path, jobs: list[Job], settings: BenchSettings, evals: EvalSets,
                 mhz_out: list[list[float | None]]) -> None:
        self.bundle, self.jobs, self.settings, self.evals, self.mhz_out = bundle, jobs, settings, evals, mhz_out
        self.timed = [Timed() for _ in jobs]

    def open(self, i: int) -> OpenFile | None:
        """Job i ready to time, or None after turning its entry into an error entry."""
        job = self.jobs[i]
        try:
            return OpenFile(self.bundle, job.model, job.file_entry, self.settings, self.evals, job.provider)
        except ModelError as exc:
            _fail(job.entry, exc)
            return None

    def record(self, i: int, window: list[float], beside: list[float] | None) -> None:
        self.mhz_out.append(current_mhz())
        self.timed[i].times.extend(window)
        self.timed[i].p50s.append(_median_ms(window))
        self.timed[i].reference_p50s.append(None if beside is None else _median_ms(beside))

    def time_alone(self, i: int) -> None:
        opened = self.open(i)
        if opened is None:
            return
        try:
            self.record(i, opened.window(), None)
        finally:
            opened.close()

    def time_group(self, ref: int, members: list[int], swap: bool) -> None:
        """One window of each member, each beside a window of the reference (in swapped order when `swap`)."""
        reference = self.open(ref)
        if reference is None:
            for i in members:
                self.time_alone(i)
            return
        ref_times: list[float] = []
        try:
            if not members:
                ref_times.extend(reference.window())
            for i in members:
                opened = self.open(i)
                if opened is None:
                    continue
                try:
                    if swap:
                        window, beside = opened.window(), reference.window()
                    else:
                        beside, window = reference.window(), opened.window()
                finally:
                    opened.close()
                ref_times.extend(beside)
                self.record(i, window, beside)
        finally:
            reference.close()
        self.record(ref, ref_times, None)


def run_rounds(bundle: Path, jobs: list[Job], settings: BenchSettings, evals: EvalSets,
               progress: Progress, mhz_out: list[list[float | None]]) -> None:
    """Time every measured job in settings.rounds rounds and write its latency from them (see the module);
    `progress` advances by one per timing unit (a file alone, or a group beside its reference) and round."""
    runner = RoundRunner(bundle, jobs, settings, evals, mhz_out)
    for round_index in range(settings.rounds):
        for ref, members in timing_units(jobs):
            if ref is None:
                runner.time_alone(members[0])
            else:
                runner.time_group(ref, members, swap=round_index % 2 == 1)
            progress.update(1)
        progress.finished(f"round {round_index + 1}/{settings.rounds} done")
    for i, (job, t) in enumerate(zip(jobs, runner.timed)):
        if job.entry["status"] == "ok" and t.times:
            _summarise(job.entry, t, paired=job.reference is not None and job.reference != i)


def _summarise(entry: dict[str, Any], t: Timed, paired: bool) -> None:
    """The entry's latency from its rounds: pooled statistics, each round's p50 with their between-window interval,
    and, beside a reference, the reference's p50 of each round and the paired ratio."""
    entry["latency_ms"] = {**latency_stats(np.asarray(t.times) * 1e3), "p50_rounds": t.p50s,
                           "p50_rounds_ci95": log_t_interval(t.p50s)}
    if paired:
        entry["latency_ms"]["reference_p50_rounds"] = t.reference_p50s
        entry["ratio_to_reference"] = ratio_interval(t.p50s, t.reference_p50s)
