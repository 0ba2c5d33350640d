"""harness.graph: the export's tasks and their dependencies, the critical path, reuse of finished run folders and
the resume of a killed task, run in this process (the Dask executor: test_distributed.py)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from graph_fixtures import finished_files, tiny_module
from harness.experiments.settings import PROFILES
from harness.graph import (EXPERIMENT_RECORD, EXPORT_RECORD, Graph, Node, SequentialExecutor, TaskEnv, build_graph,
                           run_graph)
from harness.pipeline import ExportSettings, plans_named
from harness.plans import PLANS


def _settings(tmp_path, **kw) -> ExportSettings:
    return ExportSettings(profile="quick", plans=(PLANS["mnist"],), runs_dir=tmp_path / "runs", quiet=True, **kw)


def _node(key: str, *deps: str) -> Node:
    return Node(key, "experiment", key, "t", deps, Path(key) / EXPERIMENT_RECORD)


def test_mnist_graph_has_a_baseline_then_one_task_per_chain_ratio_and_analysis_then_an_export_per_variant(tmp_path):
    graph = build_graph(_settings(tmp_path, seeds=2))
    plan, rounds = PLANS["mnist"], PROFILES["quick"].rounds
    experiments = [n for n in graph.nodes.values() if n.kind == "experiment"]
    exports = [n for n in graph.nodes.values() if n.kind == "export"]
    per_seed = 1 + len(plan.repeated) + len(plan.imp) + len(plan.structured) + 1
    assert len(experiments) == 2 * per_seed
    variants_per_seed = (1 + sum(plan.rounds_for(s, PROFILES["quick"]) + 1 for s in (*plan.repeated, *plan.imp))
                         + len(plan.structured))
    assert len(exports) == 2 * variants_per_seed
    baselines = {n.key for n in experiments if n.step.experiment == "baseline"}
    assert len(baselines) == 2
    for node in experiments:
        assert (node.deps == ()) == (node.key in baselines)
        assert all(d in baselines for d in node.deps)
    for node in exports:
        assert len(node.deps) == 1 and graph.nodes[node.deps[0]].kind == "experiment"
    imp_l1 = next(n for n in experiments if n.label == "mnist s0 imp l1")
    assert len([n for n in exports if n.deps == (imp_l1.key,)]) == rounds + 1
    sensitivity = next(n for n in experiments if n.step.experiment == "sensitivity")
    assert not [n for n in exports if n.deps == (sensitivity.key,)]


def test_a_baseline_only_needed_is_a_task_but_not_exported(tmp_path):
    graph = build_graph(_settings(tmp_path, experiments=("imp",)))
    base = next(n for n in graph.nodes.values() if n.kind == "experiment" and n.step.experiment == "baseline")
    assert not base.bundled
    assert not [n for n in graph.nodes.values() if n.kind == "export" and n.deps == (base.key,)]
    assert all(n.deps == (base.key,) for n in graph.nodes.values() if n.kind == "experiment" and n is not base)


def test_plans_sharing_a_baseline_share_its_task(tmp_path):
    twice = _settings(tmp_path)
    twice = dataclasses.replace(twice, plans=(PLANS["mnist"], dataclasses.replace(PLANS["mnist"], name="again")))
    assert build_graph(twice).nodes.keys() == build_graph(_settings(tmp_path)).nodes.keys()


def test_critical_path_is_the_longest_chain_of_dependent_tasks():
    graph = Graph()
    for node in (_node("base"), _node("imp", "base"), _node("repeated", "base"), _node("export-imp", "imp"),
                 _node("export-repeated", "repeated")):
        graph.add(node)
    seconds = {"base": 10, "imp": 50, "repeated": 5, "export-imp": 3, "export-repeated": 40}
    assert graph.critical_path(seconds) == (63, ["base", "imp", "export-imp"])
    seconds["export-repeated"] = 60
    assert graph.critical_path(seconds) == (75, ["base", "repeated", "export-repeated"])
    with pytest.raises(ValueError, match="not in the graph"):
        graph.add(_node("orphan", "missing"))


@pytest.fixture
def tiny_settings(tmp_path):
    plan = plans_named((), extra=(__import__("harness.plugins", fromlist=["user_plan"])
                                  .user_plan(f"{tiny_module(tmp_path)}:build", rounds=2),))
    return ExportSettings(profile="quick", seeds=1, plans=plan, experiments=("baseline", "repeated"),
                          runs_dir=tmp_path / "runs", quiet=True)


def test_a_second_export_runs_nothing_and_gives_the_same_exports(tiny_settings):
    first = run_graph(tiny_settings, SequentialExecutor(TaskEnv(threads=1)))
    assert first.timing["tasks_run"] == first.timing["tasks"] == 2 + 4
    records = sorted(p.name for p in tiny_settings.runs_dir.rglob("task-*.json"))
    assert records == sorted([EXPERIMENT_RECORD] * 2 + [EXPORT_RECORD] * 4)
    before = finished_files(tiny_settings.runs_dir)
    again = run_graph(tiny_settings, SequentialExecutor(TaskEnv(threads=1)))
    assert again.timing["tasks_run"] == 0 and again.timing["work_seconds"] == again.timing["data_loading_seconds"]
    assert finished_files(tiny_settings.runs_dir) == before
    assert [(e.variant.name, [f.path for f in e.files]) for e, _ in again.exports] == \
           [(e.variant.name, [f.path for f in e.files]) for e, _ in first.exports]
    assert first.timing["critical_path_seconds"] <= first.timing["work_seconds"]


def test_a_killed_chain_resumes_at_its_last_round_and_its_temporaries_go(tiny_settings):
    run_graph(tiny_settings, SequentialExecutor(TaskEnv(threads=1)))
    runs = tiny_settings.runs_dir
    last = next(runs.rglob("repeated-*/it2"))
    # what a SIGKILL in round 2 leaves: no finish marker, a half-written temporary, no export
    (last / "variant.json").unlink()
    (last / EXPORT_RECORD).unlink()
    (last / ".state.pt.k1ll3d.tmp").write_bytes(b"half")
    kept = {k: v for k, v in finished_files(runs).items() if "/it2/" not in k}
    again = run_graph(tiny_settings, SequentialExecutor(TaskEnv(threads=1)))
    assert again.timing["tasks_run"] == 2              # the chain (round 2 only) and round 2's export
    assert (last / "variant.json").exists() and not list(runs.rglob("*.tmp"))
    assert {k: v for k, v in finished_files(runs).items() if "/it2/" not in k} == kept
