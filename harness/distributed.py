"""The experiment graph (harness.graph) on Dask: `harness export --workers N` starts a local cluster of N worker
processes on loopback, `--scheduler tcp://HOST:PORT` submits to a running cluster.

Every worker writes the run folders itself, so every worker must see the client's runs folder at the same path (a
shared filesystem); the client checks that before submitting anything, and writes the bundle from the same
folder. Each graph task is one Dask task whose key names its run folder, so two clients on one scheduler share a
task instead of computing it twice, and the folder's claim keeps writers apart across schedulers. A worker that
dies mid-task is noticed by the scheduler, which runs the task elsewhere (`distributed.scheduler.allowed-failures`
deaths per task, 3 by default); the retried task claims the folder and resumes it. Ctrl-C cancels every task and,
for a local cluster, stops its workers; a remote worker finishes the task in hand (Dask cannot stop a running
Python function), whose finished folder the next export reuses.
"""

from __future__ import annotations

import logging
import queue
import signal
import socket
import sys
import uuid
from pathlib import Path

from harness.data import TaskData
from harness.device import resolve_device, usable_cores
from harness.errors import EdgepruneError
from harness.graph import Graph, GraphProgress, Outcome, TaskEnv, run_node

HEARTBEAT_SECONDS = 5.0
EVENT_TOPIC = "edgeprune-task"


def dask_setup(worker) -> None:
    """Dask's preload hook, run in every local worker process as it starts (restarts included): a terminal's
    Ctrl-C reaches the whole process group, and the client, not each worker, answers it by cancelling the graph
    and closing the cluster."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def local_threads(workers: int, cores: int | None = None) -> int:
    """Each local worker's share of the cores, as torch threads per task (at least one)."""
    return max(1, (usable_cores() if cores is None else cores) // max(1, workers))


def threads_per_host(facts: dict[str, dict]) -> dict[str, int]:
    """Torch threads per task on each host of a cluster: the host's cores over the task slots its workers offer
    (`--nthreads` summed over the workers on that host); "*" is what a worker that joins later uses."""
    slots: dict[str, int] = {}
    cores: dict[str, int] = {}
    for fact in facts.values():
        slots[fact["hostname"]] = slots.get(fact["hostname"], 0) + fact["nthreads"]
        cores[fact["hostname"]] = fact["cores"]
    shares = {host: max(1, cores[host] // max(1, slots[host])) for host in slots}
    return {**shares, "*": min(shares.values(), default=1)}


def worker_facts(probe: str, token: str, device: str, dask_worker=None) -> dict:
    """Run on each worker before the graph: does it see the runs folder, can it use the device, what is it."""
    path = Path(probe)
    try:
        sees = path.read_text() == token
    except OSError:
        sees = False
    try:
        resolve_device(device)
        device_problem = None
    except EdgepruneError as exc:
        device_problem = str(exc)
    import harness
    return {"sees_runs": sees, "device_problem": device_problem, "hostname": socket.gethostname(),
            "cores": usable_cores(), "nthreads": dask_worker.state.nthreads if dask_worker else 1,
            "edgeprune": harness.__version__}


def _has_dashboard() -> bool:
    """Dask serves its dashboard only when bokeh is installed (`pip install 'dask[diagnostics]'`)."""
    import importlib.util
    return importlib.util.find_spec("bokeh") is not None


def _dask_key(node) -> tuple[str, str]:
    """(what, absolute run folder): the dashboard groups tasks by the first part; the second makes the key unique
    per folder, so clients sharing a scheduler and a runs folder share the task."""
    what = node.step.experiment if node.kind == "experiment" else "export"
    return (what, str(node.record.parent.resolve()))


def _pickle_user_modules_by_value(tasks: dict[str, TaskData]) -> None:
    """A user's model class lives in a module the workers may not import (a file given to --model): cloudpickle
    sends that module's code along with the task (its documented `register_pickle_by_value`)."""
    import cloudpickle

    for task in tasks.values():
        if task.model_factory is None:
            continue
        module = sys.modules.get(type(task.model_factory()).__module__)
        if module is not None and not module.__name__.startswith(("torch", "harness")):
            cloudpickle.register_pickle_by_value(module)


class DaskExecutor:
    """`workers`: start a local cluster of that many processes (127.0.0.1 only); `scheduler`: use that one."""

    def __init__(self, env: TaskEnv, runs_dir: Path, workers: int | None = None, scheduler: str | None = None):
        if (workers is None) == (scheduler is None):
            raise ValueError("DaskExecutor needs workers or a scheduler address, not both")
        self.env, self.runs_dir, self.workers, self.scheduler = env, Path(runs_dir), workers, scheduler
        self.name = "dask-local" if workers else "dask"
        self.threads: int | dict[str, int] | None = env.threads
        self.worker_count = workers or 0
        self.dashboard: str | None = None

    # -------------------------------------------------------------------------------------------- cluster
    def _client(self):
        from distributed import Client, LocalCluster

        if self.workers:
            cluster = LocalCluster(n_workers=self.workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                                   dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR,
                                   preload=["harness.distributed"])
            return Client(cluster), cluster
        try:
            return Client(self.scheduler, timeout="20s"), None
        except (OSError, TimeoutError) as exc:
            raise EdgepruneError(f"no Dask scheduler answered at {self.scheduler} ({exc}); start one with "
                                 f"`dask scheduler` and workers with `dask worker {self.scheduler}`.") from exc

    def _check_workers(self, client) -> None:
        """Every worker must see the runs folder and have the device; fixes the threads per task."""
        if not client.scheduler_info()["workers"]:
            try:
                client.wait_for_workers(1, timeout=60)
            except TimeoutError as exc:
                raise EdgepruneError(f"the Dask scheduler at {self.scheduler} has no workers after 60 s; start "
                                     f"some with `dask worker {self.scheduler} --nthreads 1`.") from exc
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        probe, token = self.runs_dir.resolve() / f".probe-{uuid.uuid4().hex}", uuid.uuid4().hex
        probe.write_text(token)
        try:
            facts = client.run(worker_facts, str(probe), token, self.env.device)
        finally:
            probe.unlink(missing_ok=True)
        blind = [addr for addr, f in facts.items() if not f["sees_runs"]]
        if blind:
            raise EdgepruneError(f"Dask worker {blind[0]} does not see the runs folder {self.runs_dir.resolve()}; "
                                 f"every worker must mount it at the same path (a shared filesystem).")
        lacking = [(addr, f["device_problem"]) for addr, f in facts.items() if f["device_problem"]]
        if lacking:
            raise EdgepruneError(f"Dask worker {lacking[0][0]}: {lacking[0][1]}")
        self.worker_count = len(facts)
        if self.env.threads is None:
            self.threads = (local_threads(self.workers) if self.workers else threads_per_host(facts))

    # -------------------------------------------------------------------------------------------- the graph
    def run(self, graph: Graph, tasks: dict[str, TaskData], done: dict[str, Outcome],
            progress: GraphProgress) -> dict[str, Outcome]:
        from distributed import wait

        client, cluster = self._client()
        events: queue.SimpleQueue = queue.SimpleQueue()
        futures = {}
        try:
            self._check_workers(client)
            self.dashboard = client.dashboard_link if _has_dashboard() else None
            progress.say(f"dask: {self.worker_count} worker(s), torch threads per task {self.threads}"
                         + (f", dashboard {self.dashboard}" if self.dashboard else ""))
            env = TaskEnv(device=self.env.device, threads=self.threads, quiet=True)
            client.subscribe_topic(EVENT_TOPIC, events.put)
            _pickle_user_modules_by_value(tasks)
            needed = {graph.nodes[k].task for k in graph.nodes if k not in done}
            # on every worker: scattered to one, a task's data died with that worker and Dask cancelled every
            # task that needed it ("lost scattered data, which can't be recovered") instead of retrying them
            data = {name: client.scatter(tasks[name], hash=False, broadcast=True) for name in needed}
            for key, node in graph.nodes.items():
                if key in done:
                    continue
                deps = [futures[d] if d in futures else done[d] for d in node.deps]
                futures[key] = client.submit(run_node, node, deps, data[node.task], env, key=_dask_key(node),
                                             pure=False)
            return self._gather(futures, done, progress, events, wait)
        except BaseException:
            if futures:
                client.cancel(list(futures.values()), force=True)
            raise
        finally:
            client.close()
            if cluster is not None:
                cluster.close()

    def _gather(self, futures, done, progress: GraphProgress, events, wait) -> dict[str, Outcome]:
        from distributed import KilledWorker

        outcomes = dict(done)
        key_of = {f.key: k for k, f in futures.items()}
        pending = set(futures.values())
        while pending:
            try:
                finished, pending = wait(pending, timeout=HEARTBEAT_SECONDS, return_when="FIRST_COMPLETED")
            except TimeoutError:
                finished = set()
            while not events.empty():
                _, msg = events.get()
                progress.started(msg["key"], msg.get("time"))
            for future in finished:
                try:
                    outcome = future.result()
                except KilledWorker as exc:
                    raise EdgepruneError(f"the task {progress.graph.nodes[key_of[future.key]].label} was running "
                                         f"on every worker that died ({exc}); out of memory? finished runs are kept "
                                         f"and resume on the next export.") from exc
                outcomes[outcome.key] = outcome
                progress.finished(outcome)
            progress.heartbeat()
        return outcomes

    def describe(self) -> dict:
        return {"executor": self.name, "workers": self.worker_count, "scheduler": self.scheduler,
                "torch_threads_per_task": self.threads, "device": self.env.device,
                "cores": usable_cores() if self.workers else None}
