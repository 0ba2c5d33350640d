"""harness.plugins: a user's module (model + data) through baseline, repeated pruning and ONNX export."""

from __future__ import annotations

import dataclasses
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
    assert dict(plan.model_kwargs)["spec"] == spec and plan.experiments == ("baseline", "repeated", "structured")
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
