"""The spine on real MNIST: `harness export --profile quick`, the bundle's own runner, `harness report`.

Runs whenever EDGEPRUNE_DATA holds mnist/ (CI points it at ../shared/datasets); one export per session.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import sigint_as_on_a_terminal

DATA = os.environ.get("EDGEPRUNE_DATA")
needs_mnist = pytest.mark.skipif(not DATA or not (Path(DATA) / "mnist").is_dir(),
                                 reason="EDGEPRUNE_DATA does not hold mnist/")
BIN = Path(sys.executable).parent


def harness(*args, env=None, check=True) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "harness"), *args], capture_output=True, text=True, env=env, check=check)


def bench(bundle: Path, out: Path, *extra: str) -> dict:
    """The bundle's own zipapp, as a device runs it; few runs, since only the fields are checked here."""
    subprocess.run([sys.executable, str(bundle / "runner"), "bench", str(bundle), "--out", str(out),
                    "--min-runs", "5", "--min-seconds", "0", "--warmup", "1", *extra],
                   check=True, capture_output=True, text=True)
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    args = ["export", "--profile", "quick", "--tasks", "mnist", "--runs-dir", str(root / "runs"),
            "--out", str(root / "bundle"), "--quiet"]
    harness(*args)
    return root, args


@needs_mnist
def test_bundle_has_the_lab_variants_with_checked_files(exported):
    root, _ = exported
    bundle = root / "bundle"
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["schema"] == "edgeprune.manifest/1"
    by_key = {(m["experiment"], m["iteration"], m["method"]): m for m in manifest["models"] if m["task"] == "mnist"}
    baseline, pruned = by_key[("baseline", 0, "dense")], by_key[("repeated", 1, "l1")]
    assert pruned["sparsity"] == pytest.approx(0.33, abs=1e-4)
    assert baseline["params"] == pruned["params"] == 400 * 1024 + 1024 + 1024 * 1024 + 1024 + 1024 * 10 + 10
    assert pruned["nonzero_params"] < baseline["nonzero_params"]
    for model in manifest["models"]:
        assert model["onnx_max_abs_diff"] < 1e-4
        for f in model["files"]:
            assert (bundle / f["path"]).stat().st_size == f["bytes"]
    assert {"runner", "requirements.txt"} <= {p.name for p in bundle.iterdir()}
    assert "torch" not in (bundle / "requirements.txt").read_text()


@needs_mnist
def test_second_export_trains_nothing(exported):
    root, args = exported
    states = sorted((root / "runs").rglob("state.pt"))
    before = {p: p.stat().st_mtime_ns for p in states}
    harness(*args)
    assert {p: p.stat().st_mtime_ns for p in states} == before
    assert sorted((root / "runs").rglob("state.pt")) == states


@needs_mnist
def test_device_runs_merge_into_one_report(exported, tmp_path):
    root, _ = exported
    bundle = root / "bundle"
    r1 = bench(bundle, tmp_path / "r1.json", "--models", "mnist-ffn-repeated-*", "--label", "box")
    r2 = bench(bundle, tmp_path / "r2.json", "--models", "mnist-ffn-repeated-*", "--label", "box", "--threads", "1")
    for result in (r1, r2):
        assert result["models"] and all(m["status"] == "ok" for m in result["models"])
        assert all(m["latency_ms"]["n"] >= 5 and m["accuracy"] is not None for m in result["models"])
    out = tmp_path / "report"
    harness("report", str(tmp_path / "r1.json"), str(tmp_path / "r2.json"), "--bundle", str(bundle), "--out", str(out))
    text = (out / "report.md").read_text()
    assert "box (threads 1, batch 1)" in text and "box (threads auto, batch 1)" in text
    assert list(out.glob("*.png"))


@needs_mnist
def test_deployable_bundle_is_a_tenth_of_the_complete_one_and_benches_and_reports(exported, tmp_path):
    """--preset deployable from the same runs (nothing retrained): dense, one structured, one int8 file; at most a
    tenth of the complete bundle; measured by its own runner and reported, with the PDF where a browser is."""
    root, args = exported
    out = tmp_path / "deployable"
    done = harness(*[a if a != str(root / "bundle") else str(out) for a in args if a != "--quiet"],
                   "--preset", "deployable")
    assert f"-> {out}" in done.stderr and " MB " in done.stderr and "\r" not in done.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["selection"]["preset"] == "deployable" and manifest["selection"]["models"] <= 3
    formats = sorted((m["experiment"], f["format"]) for m in manifest["models"] for f in m["files"])
    assert ("baseline", "onnx") in formats and len(formats) <= 3
    assert sum(1 for _, fmt in formats if "int8" in fmt) <= 1
    size = lambda folder: sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())   # noqa: E731
    assert size(out) * 10 <= size(root / "bundle")
    result = bench(out, tmp_path / "r.json")
    measured = {(m["name"], m["format"]) for m in result["models"]}     # the A/A control repeats the baseline's file
    assert len(measured) == len(formats) and all(m["status"] == "ok" for m in result["models"])
    report = tmp_path / "report"
    done = harness("report", str(tmp_path / "r.json"), "--bundle", str(out), "--out", str(report))
    first = "\n".join((report / "report.md").read_text().splitlines()[:40])
    assert "## Summary" in first and "Quick profile" in first and "deployable selection" in first
    assert (report / "report.pdf").exists() or "report.pdf: not written" in done.stderr


@needs_mnist
def test_truncated_model_is_an_error_entry_and_the_rest_is_measured(exported, tmp_path):
    root, _ = exported
    bundle = tmp_path / "bundle"
    shutil.copytree(root / "bundle", bundle)
    victim = bundle / "models" / "mnist-ffn-repeated-l1-it1-s0.onnx"
    victim.write_bytes(victim.read_bytes()[:1000])
    result = bench(bundle, tmp_path / "r.json", "--models", "mnist-ffn-repeated-l1-it[12]-s0")
    status = {m["file"]: m for m in result["models"]}
    broken = status["models/mnist-ffn-repeated-l1-it1-s0.onnx"]
    assert broken["status"] == "error" and broken["error"] and "\n" not in broken["error"]
    others = [m for f, m in status.items() if f != "models/mnist-ffn-repeated-l1-it1-s0.onnx"]
    assert others and all(m["status"] == "ok" for m in others)


@needs_mnist
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_export_stopped_during_imp_resumes_at_the_last_finished_round(tmp_path, sig):
    """Ctrl-C or kill while IMP retrains: the next export keeps every finished round (not recomputed), finishes the
    rest, and no temporary file is left anywhere."""
    runs, out = tmp_path / "runs", tmp_path / "bundle"
    args = [str(BIN / "harness"), "export", "--profile", "quick", "--tasks", "mnist", "--experiments", "imp",
            "--runs-dir", str(runs), "--out", str(out), "--quiet"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=sigint_as_on_a_terminal)
    deadline = time.monotonic() + 300
    while not list(runs.glob("train-*/imp-*/it2/variant.json")) and proc.poll() is None:
        assert time.monotonic() < deadline, "IMP round 2 did not finish in 5 minutes"
        time.sleep(0.05)
    assert proc.poll() is None, "the export finished before it could be stopped"
    proc.send_signal(sig)
    stderr = proc.communicate(timeout=60)[1]
    if sig == signal.SIGINT:
        assert proc.returncode == 130 and "finished runs are kept" in stderr and "Traceback" not in stderr
    finished = {p: p.stat().st_mtime_ns for p in runs.glob("train-*/imp-*/it*/variant.json")}
    assert len(finished) >= 3 and not out.exists()
    harness(*args[1:])
    assert all(p.stat().st_mtime_ns == stamp for p, stamp in finished.items()), "a finished round was recomputed"
    assert len(list(runs.glob("train-*/imp-*/it*/variant.json"))) > len(finished)
    leftovers = [p for p in runs.rglob("*") if p.name.endswith(".tmp")]
    if sig == signal.SIGINT:       # a kill -9 can leave the one temporary file it interrupted; Ctrl-C cleans up
        assert leftovers == []
    manifest = json.loads((out / "manifest.json").read_text())
    assert {m["iteration"] for m in manifest["models"] if m["experiment"] == "imp" and m["method"] == "l1"} == \
        set(range(6))


def test_missing_data_offline_is_one_sentence(tmp_path):
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"), "EDGEPRUNE_MNIST_MIRRORS": "http://127.0.0.1:9/"}
    env.pop("EDGEPRUNE_DATA", None)
    proc = harness("export", "--profile", "quick", "--tasks", "mnist", "--runs-dir", str(tmp_path / "runs"),
                   "--out", str(tmp_path / "bundle"), env=env, check=False)
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "EDGEPRUNE_DATA" in lines[0] and "Traceback" not in proc.stderr
    assert not (tmp_path / "bundle").exists()


@pytest.mark.parametrize("case", ["user-folder", "file", "under-a-file"])
def test_export_out_that_would_lose_files_is_refused_before_training(case, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("precious")
    out = {"user-folder": mine, "file": mine / "thesis.tex", "under-a-file": mine / "thesis.tex" / "bundle"}[case]
    proc = harness("export", "--profile", "quick", "--tasks", "nosuch", "--runs-dir", str(tmp_path / "runs"),
                   "--out", str(out), check=False)   # the unknown task would fail next: nothing trains
    assert proc.returncode == 2 and proc.stderr.startswith(f"error: --out {out} ") and proc.stderr.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"] and (mine / "thesis.tex").read_text() == "precious"
    assert [p.name for p in mine.iterdir()] == ["thesis.tex"]


def test_export_over_a_bundle_holding_a_users_result_is_refused(tmp_path):
    """A result saved inside the bundle folder is not the bundle's to delete: the export names it and stops."""
    out = tmp_path / "bundle"
    (out / "models").mkdir(parents=True)
    (out / "models" / "a.onnx").write_bytes(b"model")
    (out / "eval.npz").write_bytes(b"eval")
    for name in ("runner", "requirements.txt"):
        (out / name).write_text(name)
    (out / "manifest.json").write_text(json.dumps(
        {"schema": "edgeprune.manifest/1", "bundle_id": "0" * 64,
         "models": [{"name": "a", "files": [{"path": "models/a.onnx"}]}],
         "evals": {"toy": {"path": "eval.npz"}}}))
    (out / "results").mkdir()
    (out / "results" / "phone.json").write_text("{}")
    proc = harness("export", "--profile", "quick", "--tasks", "nosuch", "--runs-dir", str(tmp_path / "runs"),
                   "--out", str(out), check=False)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "results/phone.json" in proc.stderr and "models/a.onnx" not in proc.stderr
    assert (out / "results" / "phone.json").read_text() == "{}" and not (tmp_path / "runs").exists()


def test_export_with_runs_dir_naming_a_file_is_one_sentence(tmp_path):
    runs = tmp_path / "runs.json"
    runs.write_text("{}")
    proc = harness("export", "--profile", "quick", "--tasks", "mnist", "--runs-dir", str(runs),
                   "--out", str(tmp_path / "bundle"), check=False)
    assert proc.returncode == 2 and proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr
    assert str(runs) in proc.stderr and runs.read_text() == "{}" and not (tmp_path / "bundle").exists()


def test_runs_that_cannot_be_written_are_one_sentence(tmp_path):
    """runs/ under a file: the first run folder cannot be made; no data needed (the synthetic example model)."""
    blocker = tmp_path / "notes.txt"
    blocker.write_text("mine")
    example = Path(__file__).resolve().parents[1] / "examples" / "small_cnn.py"
    proc = harness("export", "--profile", "quick", "--model", f"{example}:build_synthetic",
                   "--runs-dir", str(blocker / "runs"), "--out", str(tmp_path / "bundle"),
                   "--quiet", check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "could not write a file the export needs" in lines[0] and str(blocker) in lines[0]
    assert blocker.read_text() == "mine" and not (tmp_path / "bundle").exists()


needs_sst2 = pytest.mark.skipif(not DATA or not (Path(DATA) / "sst2").is_dir(), reason="EDGEPRUNE_DATA does not hold sst2/")


@needs_sst2
def test_sst2_transformer_path_on_real_data(tmp_path):
    """SST-2 on the real TSV files: the Transformer with heads and layers removed is smaller, and runs on device."""
    harness("export", "--profile", "quick", "--tasks", "sst2-transformer", "--experiments", "baseline,structured",
            "--runs-dir", str(tmp_path / "runs"), "--out", str(tmp_path / "bundle"), "--quiet")
    manifest = json.loads((tmp_path / "bundle" / "manifest.json").read_text())
    models = {m["method"]: m for m in manifest["models"]}
    assert {m["task"] for m in manifest["models"]} == {"sst2"}
    dense = models["dense"]
    for method in ("heads-l1", "layers"):
        assert models[method]["structure_ratio"] == pytest.approx(0.5)
        assert models[method]["params"] < dense["params"]
        assert models[method]["files"][0]["bytes"] < dense["files"][0]["bytes"]
    result = bench(tmp_path / "bundle", tmp_path / "r.json", "--models", "*-s0")
    assert result["models"] and all(m["status"] == "ok" for m in result["models"])
    host = {m["name"]: m["accuracy"] for m in manifest["models"]}
    for m in result["models"]:
        if m["format"] == "onnx":
            assert m["accuracy"] == pytest.approx(host[m["name"]], abs=0.002)


def test_user_cnn_goes_through_pruning_structure_removal_export_and_runner(tmp_path):
    """A user's module (small residual CNN with BatchNorm) with no change to edgeprune."""
    example = Path(__file__).resolve().parents[1] / "examples" / "small_cnn.py"
    harness("export", "--profile", "quick", "--model", f"{example}:build_synthetic", "--amount", "0.2",
            "--rounds", "2", "--runs-dir", str(tmp_path / "runs"), "--out", str(tmp_path / "bundle"), "--quiet")
    manifest = json.loads((tmp_path / "bundle" / "manifest.json").read_text())
    by_experiment: dict[str, list] = {}
    for m in manifest["models"]:
        by_experiment.setdefault(m["experiment"], []).append(m)
    assert sorted(m["iteration"] for m in by_experiment["repeated"]) == [0, 1, 2]
    assert max(m["sparsity"] for m in by_experiment["repeated"]) == pytest.approx(1 - 0.8 ** 2, abs=1e-3)
    structured = by_experiment["structured"]
    assert structured and all(m["method"].startswith("channels") for m in structured)
    dense = by_experiment["baseline"][0]
    assert all(m["params"] < dense["params"] for m in structured)
    result = bench(tmp_path / "bundle", tmp_path / "r.json")
    measured = [m for m in result["models"] if m["role"] != "aa-control"]
    assert len(measured) == sum(len(m["files"]) for m in manifest["models"])
    assert all(m["status"] == "ok" for m in result["models"])
    # the dense baseline's file is timed a second time, as the A/A control of the comparisons
    (control,) = [m for m in result["models"] if m["role"] == "aa-control"]
    assert control["file"] == control["reference"] and control["ratio_to_reference"]["n"] == 5
