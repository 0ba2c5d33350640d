"""harness.plugins: a user's module (model + data) through baseline, repeated pruning and ONNX export."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from exporters.bundle import export_variant
from harness import plugins
from harness.data.registry import TASKS
from harness.errors import EdgepruneError
from harness.experiments.baseline import trained_baseline
from harness.experiments.repeated import repeated_pruning
from harness.experiments.settings import PruneSettings, TrainSettings
from harness.models.registry import MODELS
from harness.plans import PLANS
from harness.pruning import METHODS

ROOT = Path(__file__).resolve().parents[1]

PLUGIN = textwrap.dedent('''
    import numpy as np
    import torch
    from torch import nn

    def build():
        rng = np.random.default_rng(0)
        x = rng.standard_normal((300, 8))                   # float64 on purpose: edgeprune casts to float32
        y = (x[:, 0] + x[:, 1] > 0).astype(int)
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
        return {"name": "tiny-user", "model": model, "train": (x[:200], y[:200]), "eval": (x[200:], y[200:])}

    def not_a_result():
        return 42
''')


@pytest.fixture
def registries_untouched():
    """A plugin is a value passed down: loading one leaves every registry as it was."""
    before = [dict(r) for r in (TASKS, MODELS, PLANS)]
    yield
    assert [dict(r) for r in (TASKS, MODELS, PLANS)] == before


@pytest.fixture
def plugin_file(tmp_path):
    path = tmp_path / "tiny_plugin.py"
    path.write_text(PLUGIN)
    return path


def test_user_module_goes_through_training_pruning_and_export(tmp_path, plugin_file, registries_untouched):
    spec = f"{plugin_file}:build"
    plan = plugins.user_plan(spec, amount=0.5, rounds=2)
    assert plan.name == plan.task == "tiny-user" and plan.model == "user-tiny_plugin-build"
    assert dict(plan.model_kwargs)["spec"] == spec
    assert plan.experiments == ("baseline", "repeated", "imp", "structured", "sensitivity")   # a built-in's plan
    assert [s.method for s in plan.imp] == sorted(METHODS, key=list(METHODS).index)       # every method
    assert [s.ratio for s in plan.structured] == [0.25, 0.5, 0.75] and all(s.coupled for s in plan.structured)
    task = plan.load(None, 150, None)
    assert task.train_x.dtype.name == "float32" and len(task.train_x) == 150 and task.num_classes == 2

    ts = TrainSettings(task=plan.task, model=plan.model, model_kwargs=plan.model_kwargs, epochs=20, lr=0.01)
    base = trained_baseline(tmp_path / "runs", ts, task, quiet=True)
    assert base.metrics["accuracy"] > 0.8
    variants = repeated_pruning(tmp_path / "runs", ts, PruneSettings(amount=0.5), plan.rounds, task, quiet=True)
    assert [v.iteration for v in variants] == [0, 1, 2]
    assert variants[2].metrics["sparsity"] == pytest.approx(0.75, abs=0.01)
    assert len({v.name for v in [base, *variants[1:]]}) == 3 and ":" not in variants[2].name

    exported = export_variant(variants[2], task)
    # its weights (8x16, 16x2) are under the sparse exporter's 1024-element floor: no sparse twin to ship
    assert [f.format for f in exported.files] == ["onnx"] and exported.checks["onnx_sparse_tensors"] == 0
    assert exported.checks["onnx_max_abs_diff"] < 1e-5

    # a new process knows only the run folder: the spec it records loads the task that rebuilds the model
    from harness.experiments.variant import load_variant
    stored = load_variant(variants[2].folder)
    rebuilt = stored.build(plugins.load_plugin(stored.model["kwargs"]["spec"]).task)
    assert sum(int((p == 0).sum()) for p in rebuilt.parameters()) > 0
    with pytest.raises(EdgepruneError, match="user module"):     # not silently a built-in model
        stored.build(dataclasses.replace(task, model_factory=None))


PLUGIN_READING_FILES = textwrap.dedent('''
    from pathlib import Path
    import numpy as np
    import torch
    from torch import nn

    HERE = Path(__file__).parent

    def build():
        x = np.load(HERE / "x.npy")
        torch.manual_seed(int((HERE / "seed.txt").read_text()))
        width = int((HERE / "width.txt").read_text())
        model = nn.Sequential(nn.Linear(8, width), nn.ReLU(), nn.Linear(width, 2))
        y = (x[:, 0] > 0).astype(int)
        return {"name": "files-user", "model": model, "train": (x[:200], y[:200]), "eval": (x[200:], y[200:])}
''')


@pytest.mark.parametrize("change, renames", [("source", True), ("data", True), ("model width", True),
                                              ("initial weights only", False)])
def test_source_data_and_model_structure_name_the_run(tmp_path, registries_untouched, change, renames):
    """The module's text alone does not decide its results: the data and model it builds from files name the run
    too; initial weight values do not (an unseeded build() must still find its runs; the run keeps its init)."""
    module = tmp_path / "files_plugin.py"

    def fingerprint(source=PLUGIN_READING_FILES, data_seed=0, init_seed=0, width=16):
        module.write_text(source)
        np.save(tmp_path / "x.npy", np.random.default_rng(data_seed).standard_normal((300, 8)))
        (tmp_path / "seed.txt").write_text(str(init_seed))
        (tmp_path / "width.txt").write_text(str(width))
        return dict(plugins.user_plan(f"{module}:build").model_kwargs)["fingerprint"]

    changed = {"source": {"source": PLUGIN_READING_FILES + "# edited\n"}, "data": {"data_seed": 1},
               "model width": {"width": 24}, "initial weights only": {"init_seed": 1}}[change]
    assert fingerprint() == fingerprint()
    assert (fingerprint() != fingerprint(**changed)) == renames


@pytest.mark.parametrize("spec, words", [
    ("no_colon_here", "form"),
    ("missing_module_xyz:build", "cannot import"),
    ("{dir}/nowhere.py:build", "does not exist"),
    ("{file}:absent", "no function"),
    ("{file}:not_a_result", "dict or dataclass"),
])
def test_bad_specs_are_one_sentence(spec, words, plugin_file, registries_untouched):
    spec = spec.format(dir=plugin_file.parent, file=plugin_file)
    with pytest.raises(EdgepruneError) as info:
        plugins.user_plan(spec)
    assert words in str(info.value) and "\n" not in str(info.value)


def test_amount_outside_zero_one_is_refused(plugin_file, registries_untouched):
    with pytest.raises(EdgepruneError, match="--amount"):
        plugins.user_plan(f"{plugin_file}:build", amount=1.5)


def test_example_small_cnn_builds_and_trains_on_synthetic_images(tmp_path, registries_untouched):
    spec = f"{ROOT / 'examples' / 'small_cnn.py'}:build_synthetic"
    plan = plugins.user_plan(spec, rounds=1)
    task = plan.load(None, None, None)
    assert task.eval_x.shape[1:] == (1, 20, 20)
    ts = TrainSettings(task=plan.task, model=plan.model, model_kwargs=plan.model_kwargs, epochs=2, lr=0.01)
    variants = repeated_pruning(tmp_path, ts, PruneSettings(), plan.rounds, task, quiet=True)
    assert variants[0].metrics["accuracy"] > 0.9
    assert variants[1].metrics["sparsity"] == pytest.approx(0.33, abs=0.01)   # convs and the Linear
    assert export_variant(variants[1], task).checks["onnx_max_abs_diff"] < 1e-4


def test_cli_reports_a_bad_spec_in_one_line(tmp_path):
    harness = Path(sys.executable).parent / "harness"
    done = subprocess.run([str(harness), "export", "--model", "no_such_module_xyz:build", "--runs-dir",
                           str(tmp_path / "runs"), "--out", str(tmp_path / "bundle")],
                          capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.startswith("error: ") and done.stderr.count("\n") == 1
    assert not (tmp_path / "bundle").exists()


@pytest.mark.parametrize("source, spec, words", [
    ("def build(:\n", "{file}:build", "importing {file} raised SyntaxError"),
    ("import no_such_package_xyz\n", "{file}:build", "raised ModuleNotFoundError"),
    ("def build():\n    raise ValueError('no data here')\n", "{file}:build",
     "calling build() raised ValueError: no data here (at {file}:2)"),
    ("def build(size):\n    return None\n", "{file}:build", "calling build() raised TypeError"),
])
def test_a_failing_user_module_or_function_is_one_sentence(source, spec, words, tmp_path, registries_untouched):
    path = tmp_path / "broken_plugin.py"
    path.write_text(source)
    with pytest.raises(EdgepruneError) as info:
        plugins.user_plan(spec.format(file=path))
    assert words.format(file=path) in str(info.value) and "\n" not in str(info.value)


PLUGIN_WITH_CHOICES = textwrap.dedent('''
    import numpy as np
    import torch
    from torch import nn

    CALLS = []

    def counting_loss(logits, labels):
        CALLS.append(len(labels))
        return nn.functional.cross_entropy(logits, labels)

    def build():
        rng = np.random.default_rng(0)
        x = rng.standard_normal((300, 8)).astype(np.float32)
        y = (x[:, 0] > 0).astype(int)
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
        return {"name": "choosy-user", "model": model, "train": (x[:200], y[:200]), "eval": (x[200:], y[200:]),
                "training": {"epochs": 3, "lr": 0.01, "optimizer": "sgd", "batch_size": 32, "loss": counting_loss,
                             "schedule": "cosine"},
                "plan": {"experiments": ["baseline", "imp"], "imp": ["l1", "snip"], "amount": 0.5,
                         "structured_ratios": [0.5],
                         "structured": {"finetune_epochs": 2, "finetune_lr": 0.003, "finetune_schedule": "cosine"}}}

    def bad_key():
        result = build()
        result["training"] = {"epoch": 3}
        return result

    def bad_schedule():
        result = build()
        result["training"] = {"schedule": "warm restarts"}
        return result

    def bad_finetune_schedule():
        result = build()
        result["plan"] = {"structured": {"finetune_schedule": "step"}}
        return result
''')


def test_a_plugin_chooses_its_training_and_plan(tmp_path, registries_untouched):
    from harness.experiments.settings import task_loss
    from harness.experiments.settings import PROFILES
    from harness.experiments.structured import finetune_config
    from harness.pipeline import train_settings

    path = tmp_path / "choosy_plugin.py"
    path.write_text(PLUGIN_WITH_CHOICES)
    plan = plugins.user_plan(f"{path}:build")
    assert plan.experiments == ("baseline", "imp") and [s.method for s in plan.imp] == ["l1", "snip"]
    assert plan.amount == 0.5 and [s.ratio for s in plan.structured] == [0.5]
    ts = train_settings(plan, PROFILES["full"], seed=0)
    assert (ts.epochs, ts.lr, ts.optimizer, ts.batch_size, ts.loss) == (3, 0.01, "sgd", 32, "counting_loss")
    assert ts.schedule == ts.train_config.schedule == "cosine"
    finetune = finetune_config(ts, plan.structured[0])
    assert (finetune.epochs, finetune.lr, finetune.schedule, finetune.optimizer) == (2, 0.003, "cosine", "sgd")
    assert train_settings(plan, PROFILES["quick"], seed=0).epochs == 1        # quick stays quick
    task = plan.load(None, None, None)
    calls = sys.modules["edgeprune_user_choosy_plugin"].CALLS
    base = trained_baseline(tmp_path / "runs", ts, task, quiet=True)
    assert task_loss(task).__name__ == "counting_loss" and len(calls) == 3 * 7      # 3 epochs of 7 batches
    assert base.metrics["train"]["steps"] == 21
    with pytest.raises(EdgepruneError, match="'epoch'; known: epochs"):
        plugins.user_plan(f"{path}:bad_key")
    with pytest.raises(EdgepruneError, match="schedule 'warm restarts' is not one of constant, cosine"):
        plugins.user_plan(f"{path}:bad_schedule")
    with pytest.raises(EdgepruneError, match="finetune_schedule 'step' is not one of constant, cosine"):
        plugins.user_plan(f"{path}:bad_finetune_schedule")


def _export(*args, tmp_path):
    harness = Path(sys.executable).parent / "harness"
    return subprocess.run([str(harness), "export", "--profile", "quick", "--runs-dir", str(tmp_path / "runs"),
                           "--out", str(tmp_path / "bundle"), "--quiet", *args], capture_output=True, text=True)


def test_imp_on_a_user_model_runs_every_registered_method(tmp_path):
    spec = f"{ROOT / 'examples' / 'small_cnn.py'}:build_synthetic"
    done = _export("--model", spec, "--experiments", "imp", "--rounds", "1", tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    manifest = json.loads((tmp_path / "bundle" / "manifest.json").read_text())
    imp = {(m["method"], m["iteration"]) for m in manifest["models"] if m["experiment"] == "imp"}
    assert {m for m, it in imp if it == 1} == set(METHODS)


def test_an_export_that_would_produce_nothing_is_one_sentence(tmp_path):
    spec = f"{ROOT / 'examples' / 'small_cnn.py'}:build_synthetic"
    for experiments, words in (("sensitivity", "produced no model"), ("baseline,heads", "unknown experiment")):
        done = _export("--model", spec, "--experiments", experiments, tmp_path=tmp_path)
        assert done.returncode == 2 and words in done.stderr and done.stderr.count("\n") == 1, done.stderr
        assert not (tmp_path / "bundle").exists()


def test_a_gru_model_opting_in_its_recurrent_weights_exports_benches_and_reaches_the_sparsity(tmp_path):
    spec = f"{ROOT / 'examples' / 'gru_text.py'}:build_synthetic"
    done = _export("--model", spec, "--experiments", "baseline,repeated", "--rounds", "2", "--amount", "0.5",
                   tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    manifest = json.loads((tmp_path / "bundle" / "manifest.json").read_text())
    it2 = next(m for m in manifest["models"] if m["experiment"] == "repeated" and m["iteration"] == 2)
    per = it2["sparsity_per_parameter"]
    assert it2["sparsity"] == pytest.approx(0.75, abs=0.005)           # of the prunable weights: GRU + fc
    recurrent = [per[k] for k in ("gru.weight_ih_l0", "gru.weight_hh_l0")]
    # embeddings were not opted in: their only zeros are the padding row (1 of 40)
    assert min(recurrent) > 0.6 and per["embedding.weight"] == pytest.approx(1 / 40)
    assert it2["sparsity_overall"] < it2["sparsity"]
    result = tmp_path / "result.json"
    subprocess.run([sys.executable, str(tmp_path / "bundle" / "runner"), "bench", str(tmp_path / "bundle"),
                    "--out", str(result), "--min-runs", "3", "--min-seconds", "0", "--warmup", "1"], check=True,
                   capture_output=True)
    models = json.loads(result.read_text())["models"]
    assert models and all(m["status"] == "ok" for m in models)


def test_a_structured_user_variant_rebuilds_in_a_fresh_process_and_says_what_it_left(tmp_path, registries_untouched):
    from harness.experiments.structured import structured_pruning

    spec = f"{ROOT / 'examples' / 'small_cnn.py'}:build_synthetic"
    plan = plugins.user_plan(spec)
    task = plan.load(None, None, None)
    ts = TrainSettings(task=plan.task, model=plan.model, model_kwargs=plan.model_kwargs, epochs=1)
    half = structured_pruning(tmp_path / "runs", ts, plan.structured[1], task, quiet=True)
    dense = trained_baseline(tmp_path / "runs", ts, task, quiet=True)
    e = half.extra
    assert half.metrics["params"] < 0.35 * dense.metrics["params"] and e["structure_ratio"] == 0.5
    assert not e["under_pruned"] and e["kept_widths"]["stem.0"] == [8, 4] and e["macs"] < e["dense_macs"] / 3
    assert [s["root"] for s in e["skipped_groups"]] == ["fc"]
    assert export_variant(half, task, int8=False).checks["onnx_max_abs_diff"] < 1e-4
    # a fresh process rebuilds the variant from its run folder alone and gets the same torch outputs
    code = textwrap.dedent(f'''
        import json, torch
        from pathlib import Path
        from harness.experiments.variant import load_variant
        from harness.plugins import load_plugin
        v = load_variant(Path({str(half.folder)!r}))
        task = load_plugin(v.model["kwargs"]["spec"]).task
        print(json.dumps(v.build(task)(torch.from_numpy(task.eval_x[:5])).detach().numpy().tolist()))
    ''')
    fresh = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    want = half.build(task)(__import__("torch").from_numpy(task.eval_x[:5])).detach().numpy()
    np.testing.assert_allclose(np.array(json.loads(fresh.stdout)), want, rtol=0, atol=1e-6)


def test_the_plugins_example_is_the_batch_the_export_traces(tmp_path, plugin_file, registries_untouched):
    from exporters.bundle import trace_example

    with_example = tmp_path / "with_example.py"
    with_example.write_text(PLUGIN.replace('"eval": (x[200:], y[200:])}',
                                           '"eval": (x[200:], y[200:]), "example": np.full((3, 8), 0.5)}'))
    traced = trace_example(plugins.load_plugin(f"{with_example}:build").task)
    assert traced.dtype == np.float32 and traced.tolist() == [[0.5] * 8] * 3
    plain = plugins.load_plugin(f"{plugin_file}:build").task
    np.testing.assert_array_equal(trace_example(plain), plain.eval_x[:2])
