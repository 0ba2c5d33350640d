"""The export as a graph of tasks over content-addressed run folders: per plan and seed, the baseline, then each
step that needs it (a method's rounds, a structured pruning, the sensitivity analysis), then the ONNX (and int8)
export of every variant those steps make; the bundle is written from the exports.

The run folders stay the single source of truth. A task whose run folder is finished is not run again: the client
reads it back and only what is missing is executed. A task holds its run folder's claim (harness.experiments.claim)
while it writes, so two workers never write one folder, and a killed worker leaves an unfinished folder that the
retried task resumes. Executors: `SequentialExecutor` here (one process, in the order the export has always run)
and `harness.distributed.DaskExecutor` (a local or remote Dask cluster); both run the same task functions.

Each task records its time and where it ran (`task-experiment.json` / `task-export.json` in its folder). The
export reports work (the sum of task times), wall time and the critical path (the longest chain of dependent
tasks: the wall time unlimited workers would need), and the bundle's manifest keeps them under "export".
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from harness.data import TaskData
from harness.device import compute_facts, resolve_device, torch_threads, using_device
from harness.errors import EdgepruneError
from harness.experiments.claim import claim, remove_stale_temporaries
from harness.experiments.store import read_json
from harness.io import write_json
from harness.pipeline import ExportSettings, Step, export_profile, export_steps, load_tasks
from runners.progress import Progress

EXPERIMENT_RECORD = "task-experiment.json"
EXPORT_RECORD = "task-export.json"


# ------------------------------------------------------------------------------------------------ the graph
@dataclass(frozen=True)
class Node:
    """One task. `key` is unique in the graph and names what it writes: `<kind>:<run folder>`."""
    key: str
    kind: str                      # "experiment" | "export"
    label: str                     # "mnist s0 imp l1", "mnist s0 export imp l1 it3"
    task: str                      # the TaskData it needs (by name)
    deps: tuple[str, ...]
    record: Path                   # its task record (time, device, worker), written when it ran
    step: Step | None = None       # experiment: the step it runs
    index: int = 0                 # export: which of its step's variants
    bundled: bool = True           # experiment: its variants go into the bundle (a baseline may only be needed)


@dataclass
class Graph:
    nodes: dict[str, Node] = field(default_factory=dict)    # in a topological order (dependencies first)

    def add(self, node: Node) -> None:
        missing = [d for d in node.deps if d not in self.nodes]
        if missing:
            raise ValueError(f"{node.key} depends on {missing[0]}, which is not in the graph yet")
        old = self.nodes.get(node.key)
        if old is None or (node.bundled and not old.bundled):     # a baseline only needed, then also asked for
            self.nodes[node.key] = node

    def critical_path(self, seconds: dict[str, float]) -> tuple[float, list[str]]:
        """The longest chain of dependent tasks under these task times (missing: 0), and its keys in order.
        Written out (not networkx): its longest path weights edges, these weights sit on nodes; six lines here."""
        best: dict[str, tuple[float, str | None]] = {}
        for key, node in self.nodes.items():             # topological order: dependencies are done
            before = max(((best[d][0], d) for d in node.deps), default=(0.0, None))
            best[key] = (before[0] + seconds.get(key, 0.0), before[1])
        if not best:
            return 0.0, []
        end = max(best, key=lambda k: best[k][0])
        path, key = [], end
        while key is not None:
            path.append(key)
            key = best[key][1]
        return best[end][0], path[::-1]

    def recorded_seconds(self) -> dict[str, float]:
        """Each task's time as its record says (the last run that did the work), for the graph's critical path
        when every run is already finished."""
        out = {}
        for key, node in self.nodes.items():
            if node.record.exists():
                out[key] = float(read_json(node.record).get("seconds", 0.0))
        return out


def _key(kind: str, folder: Path, root: Path) -> str:
    return f"{kind}:{Path(folder).relative_to(root).as_posix()}"


def build_graph(settings: ExportSettings) -> Graph:
    """Nodes for every step of the export and every variant's export, deduplicated by run folder (two plans that
    share a baseline share its node)."""
    profile = export_profile(settings)
    root = Path(settings.runs_dir)
    graph = Graph()
    for planned in export_steps(settings, profile):
        step = planned.step
        key = _key("experiment", step.folder, root)
        where = f"{planned.plan.name} s{planned.seed}"
        deps = () if step.folder == planned.baseline.folder else (_key("experiment", planned.baseline.folder, root),)
        graph.add(Node(key, "experiment", f"{where} {step.label}", planned.plan.task, deps,
                       step.folder / EXPERIMENT_RECORD, step=step, bundled=planned.selected))
        if not planned.selected:
            continue
        for index, folder in enumerate(step.variant_folders):
            suffix = f" it{index}" if len(step.variant_folders) > 1 else ""
            graph.add(Node(_key("export", folder, root), "export", f"{where} export {step.label}{suffix}",
                           planned.plan.task, (key,), folder / EXPORT_RECORD, index=index))
    return graph


# ------------------------------------------------------------------------------------------------ the tasks
@dataclass(frozen=True)
class TaskEnv:
    """How a task computes: torch threads (None: torch's default; a dict: per host, for a cluster), the device
    name as given (`auto` resolves on the machine that runs the task) and whether it prints training progress."""
    device: str = "auto"
    threads: int | dict[str, int] | None = None
    quiet: bool = True

    def threads_here(self, host: str) -> int | None:
        if isinstance(self.threads, dict):
            return self.threads.get(host, self.threads.get("*"))
        return self.threads


@dataclass
class Outcome:
    key: str
    result: Any
    ran: bool                      # False: the folder was finished already (read back, nothing computed)
    seconds: float                 # the task's time on its worker (0 when it did not run)
    facts: dict = field(default_factory=dict)


def _worker_name() -> str:
    try:
        from distributed import get_worker
        return get_worker().address
    except (ImportError, ValueError):
        return f"{socket.gethostname()}:{os.getpid()}"


def _announce(key: str) -> None:
    """Tell the client a task started (Dask's structured events); nothing to tell outside a Dask worker."""
    try:
        from distributed import get_worker
        get_worker().log_event("edgeprune-task", {"key": key, "state": "started", "time": time.time()})
    except (ImportError, ValueError):
        pass


@contextlib.contextmanager
def _task_scope(env: TaskEnv, key: str) -> Iterator[dict]:
    """Threads and device for the task; yields the facts it records (device, threads, host, worker)."""
    _announce(key)
    host = socket.gethostname()
    threads = torch_threads(env.threads_here(host))
    with using_device(resolve_device(env.device)) as device:
        facts = {**compute_facts(device), "torch_threads": threads, "host": host, "worker": _worker_name()}
        yield facts


def _record(path: Path, key: str, label: str, seconds: float, facts: dict, **extra) -> None:
    write_json(path, {"key": key, "label": label, "seconds": round(seconds, 3), **facts, **extra,
                      "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")})


def run_experiment(node: Node, task: TaskData, env: TaskEnv) -> Outcome:
    """Claim the step's folder, and run it unless it is finished by now (another client may have run it)."""
    step = node.step
    with _task_scope(env, node.key) as facts, claim(step.folder, node.label, quiet=env.quiet):
        if step.finished():
            return Outcome(node.key, step.run(task, True), ran=False, seconds=0.0, facts=facts)
        remove_stale_temporaries(step.unfinished_folders())
        start = time.perf_counter()
        result = step.run(task, env.quiet)
        seconds = time.perf_counter() - start
        _record(node.record, node.key, node.label, seconds, facts)
    return Outcome(node.key, result, ran=True, seconds=seconds, facts=facts)


def export_recorded(record: Path, int8: bool) -> bool:
    """Whether this variant's export ran to its end with the same int8 choice (its record is written last)."""
    return record.exists() and read_json(record).get("int8") == int8


def _int8_wanted(variants: list, index: int) -> bool:
    from exporters.quantize import int8_selection
    # int8 twins go to the sparsest round of each method (runners.contract's kinds): the step's own variants
    # decide it, since one step holds all rounds of one (task, seed, experiment, method).
    return variants[index].name in int8_selection(variants)


def _export_named(variant, task: TaskData, int8: bool):
    """export_variant, with a graph that cannot run the eval batch named by its variant in the one sentence."""
    from exporters.bundle import export_variant
    from exporters.onnx_export import ExportCheckError

    try:
        return export_variant(variant, task, int8=int8)
    except ExportCheckError as exc:
        raise EdgepruneError(f"variant {variant.name}: {exc}") from exc


def run_export(node: Node, variants: list, task: TaskData, env: TaskEnv) -> Outcome:
    """ONNX (and int8) files of one variant, beside its weights; export and int8 calibration run on the CPU."""
    variant, int8 = variants[node.index], _int8_wanted(variants, node.index)
    with _task_scope(env, node.key) as facts, claim(variant.folder, node.label, quiet=env.quiet):
        if export_recorded(node.record, int8):
            return Outcome(node.key, _export_named(variant, task, int8), ran=False, seconds=0.0, facts=facts)
        remove_stale_temporaries([variant.folder])
        start = time.perf_counter()
        with using_device(resolve_device("cpu")):
            exported = _export_named(variant, task, int8)
        seconds = time.perf_counter() - start
        _record(node.record, node.key, node.label, seconds, {**facts, "device": "cpu"}, int8=int8)
    return Outcome(node.key, exported, ran=True, seconds=seconds, facts=facts)


def run_node(node: Node, deps: list[Outcome], task: TaskData, env: TaskEnv) -> Outcome:
    """The one function every executor calls per task, with its dependencies' outcomes (a Dask worker unpickles it
    by reference)."""
    if node.kind == "experiment":
        return run_experiment(node, task, env)
    return run_export(node, deps[0].result, task, env)


def finished_before(graph: Graph, tasks: dict[str, TaskData]) -> dict[str, Outcome]:
    """Outcomes of the tasks whose folders are finished, read back on the client: these are never submitted."""
    done: dict[str, Outcome] = {}
    for key, node in graph.nodes.items():
        task = tasks[node.task]
        if node.kind == "experiment" and node.step.finished():
            done[key] = Outcome(key, node.step.run(task, True), ran=False, seconds=0.0)
        elif node.kind == "export" and node.deps[0] in done:
            variants = done[node.deps[0]].result
            int8 = _int8_wanted(variants, node.index)
            if export_recorded(node.record, int8):
                done[key] = Outcome(key, _export_named(variants[node.index], task, int8), ran=False, seconds=0.0)
    return done


# ------------------------------------------------------------------------------------------------ progress
class GraphProgress:
    """The whole graph on stderr through runners.progress (a bar with the time left on a terminal, lines in a log):
    a line per finished task (done/running/queued, its time) and, every `every` seconds while tasks run, the
    running ones with their elapsed time."""

    def __init__(self, graph: Graph, to_run: list[str], quiet: bool = False, every: float = 30.0):
        self.graph, self.quiet, self.every = graph, quiet, every
        self.queued, self.running, self.done = set(to_run), {}, 0
        self.last_heartbeat = time.monotonic()
        self.bar = Progress("export graph", total=len(to_run), unit="task", quiet=quiet)

    def say(self, text: str) -> None:
        self.bar.finished(text, timing=False)

    def started(self, key: str, at: float | None = None) -> None:
        if key in self.queued:
            self.queued.discard(key)
            self.running[key] = time.time() if at is None else at
            self.bar.update(0, status=f"{len(self.running)} running, {len(self.queued)} queued")

    def finished(self, outcome: Outcome) -> None:
        self.queued.discard(outcome.key)
        self.running.pop(outcome.key, None)
        self.done += 1
        how = f"{outcome.seconds:.1f} s" if outcome.ran else "finished meanwhile, read back"
        self.bar.update(1, status=f"{len(self.running)} running, {len(self.queued)} queued")
        self.bar.finished(f"  [{self.done} done, {len(self.running)} running, {len(self.queued)} queued] "
                          f"{self.graph.nodes[outcome.key].label}: {how}")

    def heartbeat(self) -> None:
        now = time.monotonic()
        if self.running and now - self.last_heartbeat >= self.every:
            self.last_heartbeat = now
            shown = ", ".join(f"{self.graph.nodes[k].label} {time.time() - t:.0f} s"
                              for k, t in sorted(self.running.items(), key=lambda kv: kv[1]))
            self.say(f"  running: {shown}")

    def close(self) -> None:
        self.bar.close()


# ------------------------------------------------------------------------------------------------ executors
class SequentialExecutor:
    """Every task in this process, one after another, in the graph's order (the export as it has always run)."""
    name = "sequential"
    workers = 1

    def __init__(self, env: TaskEnv):
        self.env = env

    def run(self, graph: Graph, tasks: dict[str, TaskData], done: dict[str, Outcome],
            progress: GraphProgress) -> dict[str, Outcome]:
        outcomes = dict(done)
        for key, node in graph.nodes.items():
            if key in outcomes:
                continue
            progress.started(key)
            outcomes[key] = run_node(node, [outcomes[d] for d in node.deps], tasks[node.task], self.env)
            progress.finished(outcomes[key])
        return outcomes

    def describe(self) -> dict:
        return {"executor": self.name, "workers": 1, "torch_threads_per_task": self.env.threads,
                "device": self.env.device}


# ------------------------------------------------------------------------------------------------ the export
@dataclass
class GraphRun:
    """What the bundle needs (exports with their tasks, sensitivity rows) and how long the graph took."""
    exports: list                  # [(exporters.bundle.Exported, TaskData)] in the manifest's order
    sensitivity: list[dict]
    timing: dict

    def summary(self) -> str:
        t = self.timing
        bound = t["work_seconds"] / t["critical_path_seconds"] if t["critical_path_seconds"] else float("nan")
        return (f"graph: {t['tasks_run']} of {t['tasks']} tasks ran on {t['workers']} worker(s): work "
                f"{t['work_seconds']:.1f} s, wall {t['wall_seconds']:.1f} s, critical path "
                f"{t['critical_path_seconds']:.1f} s (unlimited workers could be {bound:.1f}x faster than one)")


def collect(graph: Graph, tasks: dict[str, TaskData], outcomes: dict[str, Outcome]) -> tuple[list, list[dict]]:
    """Exports and sensitivity rows in the graph's order; a variant name appears once (as it always has)."""
    exports, sensitivity, seen = [], [], set()
    for key, node in graph.nodes.items():
        result = outcomes[key].result
        if node.kind == "experiment":
            if node.bundled:
                sensitivity += [row for row in result if isinstance(row, dict)]
        elif result.variant.name not in seen:
            seen.add(result.variant.name)
            exports.append((result, tasks[node.task]))
    return exports, sensitivity


def timing(graph: Graph, outcomes: dict[str, Outcome], wall: float, loading: float, executor) -> dict:
    """Work, wall and critical path of this export (tasks read back count 0; the client's data loading precedes
    every task, so it is on every path)."""
    seconds = {k: o.seconds for k, o in outcomes.items() if o.ran}
    path_seconds, path = graph.critical_path(seconds)
    devices = sorted({o.facts.get("device") for o in outcomes.values() if o.ran and o.facts.get("device")})
    return {**executor.describe(), "devices_used": devices, "tasks": len(graph.nodes), "tasks_run": len(seconds),
            "data_loading_seconds": round(loading, 3),
            "work_seconds": round(loading + sum(seconds.values()), 3), "wall_seconds": round(wall, 3),
            "critical_path_seconds": round(loading + path_seconds, 3),
            "critical_path": [graph.nodes[k].label for k in path if k in seconds]}


def run_graph(settings: ExportSettings, executor) -> GraphRun:
    """Load the data, build the graph, read back what is finished, run the rest on `executor`."""
    start = time.perf_counter()
    tasks = load_tasks(settings, export_profile(settings))
    loading = time.perf_counter() - start
    graph = build_graph(settings)
    done = finished_before(graph, tasks)
    to_run = [k for k in graph.nodes if k not in done]
    progress = GraphProgress(graph, to_run, quiet=settings.quiet)
    try:
        progress.say(f"graph: {len(graph.nodes)} tasks, {len(done)} finished before, {len(to_run)} to run "
                     f"({executor.name})")
        outcomes = executor.run(graph, tasks, done, progress) if to_run else done
    finally:
        progress.close()
    wall = time.perf_counter() - start
    exports, sensitivity = collect(graph, tasks, outcomes)
    if not exports:
        raise EdgepruneError(f"the experiments {', '.join(settings.experiments or ('planned',))} produced no model "
                             f"to export (only analyses), so no bundle was written; add baseline or a pruning "
                             f"experiment.")
    return GraphRun(exports, sensitivity, timing(graph, outcomes, wall, loading, executor))
