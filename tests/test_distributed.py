"""harness.distributed: the experiment graph on Dask (local clusters on 127.0.0.1 only) gives the sequential
export's bundle, also when a worker is killed mid-task (`--scheduler`) or the client is interrupted and run again
(`--workers 2`); finished runs stay as they were and nothing is left half-written. The tiny model of graph_fixtures
keeps each export to seconds of work."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from conftest import sigint_as_on_a_terminal
from graph_fixtures import export, export_args, finished_files, tiny_module
from harness.distributed import local_threads, threads_per_host, worker_facts
from harness.experiments.claim import CLAIM_FILE, is_claimed

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from compare_manifests import compare  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("dask")
    module = tiny_module(root)
    return module, root, export(module, root, "sequential", "--threads", "1", "--quiet")


def _identical(reference: dict, manifest: dict) -> None:
    identical, compared, lines = compare(reference, manifest)
    assert compared == 3 and identical == compared, lines


def _no_temporaries_or_claims(runs: Path) -> None:
    assert not list(runs.rglob("*.tmp"))
    assert not [p.parent for p in runs.rglob(CLAIM_FILE) if is_claimed(p.parent)]


def _manifest(root: Path, name: str) -> dict:
    return json.loads((root / f"{name}-bundle" / "manifest.json").read_text())


@pytest.fixture
def slow_cluster(monkeypatch):
    """Two worker processes whose training steps take 0.5 s, so a test can kill one in the middle of a task."""
    from distributed import Client, LocalCluster

    monkeypatch.setenv("EDGEPRUNE_TEST_STEP_SECONDS", "0.5")     # inherited by the worker processes
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None, silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
        yield cluster, client


def _claim_holder(client) -> tuple[int, Path] | None:
    """(pid, folder) of a worker process that holds a run folder's claim now."""
    for pid in client.run(os.getpid).values():
        try:
            for f in psutil.Process(pid).open_files():
                if f.path.endswith(CLAIM_FILE):
                    return pid, Path(f.path).parent
        except psutil.Error:
            continue
    return None


def _wait(predicate, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    return None


def test_a_worker_killed_mid_task_is_replaced_and_nothing_finished_is_redone(tiny, slow_cluster):
    module, root, reference = tiny
    cluster, client = slow_cluster
    runs = root / "killed-runs"
    proc = subprocess.Popen(export_args(module, root, "killed", "--scheduler", cluster.scheduler_address, "--quiet"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # a run has finished and a worker is inside another task (holding its folder's claim)
        holder = _wait(lambda: list(runs.rglob("variant.json")) and _claim_holder(client), timeout=120)
        assert holder, "no task was seen running after a finished one"
        before = finished_files(runs)
        os.kill(holder[0], signal.SIGKILL)
        out, err = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    after = finished_files(runs)
    assert {k: after.get(k) for k in before} == before        # same inode and mtime: nothing finished was redone
    _no_temporaries_or_claims(runs)
    _identical(reference, _manifest(root, "killed"))


def test_ctrl_c_stops_the_workers_and_the_next_export_resumes(tiny):
    module, root, reference = tiny
    runs = root / "interrupted-runs"
    env = {**os.environ, "EDGEPRUNE_TEST_STEP_SECONDS": "0.5"}
    proc = subprocess.Popen(export_args(module, root, "interrupted", "--workers", "2", "--quiet"), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=sigint_as_on_a_terminal)
    try:
        assert _wait(lambda: list(runs.rglob("variant.json")), timeout=120)
        os.killpg(proc.pid, signal.SIGINT)                    # what a terminal's Ctrl-C sends
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err, err
    assert not (root / "interrupted-bundle").exists()
    assert _wait(lambda: not [p for p in runs.rglob(CLAIM_FILE) if is_claimed(p.parent)], timeout=30)
    before = finished_files(runs)
    manifest = export(module, root, "interrupted", "--workers", "2", "--quiet")
    assert {k: finished_files(runs).get(k) for k in before} == before
    _identical(reference, manifest)                           # two local workers give the sequential bundle
    _no_temporaries_or_claims(runs)
    run = manifest["export"]
    assert run["executor"] == "dask-local" and run["workers"] == 2 and run["torch_threads_per_task"] == 1
    assert 0 < run["tasks_run"] < run["tasks"] == 5 and reference["export"]["executor"] == "sequential"
    assert 0 < run["critical_path_seconds"] <= run["work_seconds"]


def test_each_worker_gets_its_share_of_the_cores():
    assert local_threads(2, cores=2) == 1 and local_threads(3, cores=16) == 5 and local_threads(4, cores=2) == 1
    facts = {"tcp://a:1": {"hostname": "a", "cores": 16, "nthreads": 2},
             "tcp://a:2": {"hostname": "a", "cores": 16, "nthreads": 2},
             "tcp://b:1": {"hostname": "b", "cores": 2, "nthreads": 4}}
    assert threads_per_host(facts) == {"a": 4, "b": 1, "*": 1}


def test_a_worker_that_does_not_see_the_runs_folder_or_lacks_the_device_says_so(tmp_path):
    probe = tmp_path / ".probe"
    probe.write_text("token")
    assert worker_facts(str(probe), "token", "auto")["sees_runs"]
    assert not worker_facts(str(tmp_path / "elsewhere"), "token", "auto")["sees_runs"]
    assert worker_facts(str(probe), "token", "cpu")["device_problem"] is None
    if not __import__("torch").cuda.is_available():
        assert "sees no cuda device" in worker_facts(str(probe), "token", "cuda")["device_problem"]
