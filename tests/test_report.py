"""harness.report on a synthetic bundle: two devices, seeds, two file formats, one failed model; bad inputs."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import pytest

from harness.report import ReportError, build_report, load_frame

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
BUNDLE_ID = "b" * 64
THREADS_1 = "pi5 (threads 1, batch 1)"
THREADS_AUTO = "pi5 (threads auto, batch 1)"


def model(name, experiment, method, iteration, seed, sparsity, accuracy):
    params = 10_000
    nonzero = round(params * (1 - sparsity))
    return {
        "name": name, "task": "mnist", "eval": "mnist", "experiment": experiment, "method": method,
        "iteration": iteration, "seed": seed, "sparsity": sparsity, "params": params, "nonzero_params": nonzero,
        "accuracy": accuracy,
        "storage": {"dense": params * 4, "lab_coo": nonzero * 20, "csr": nonzero * 8 + 404,
                    "entropy_bound": nonzero * 3},
        "files": [
            {"path": f"models/{name}.onnx", "format": "onnx", "bytes": 40_500, "sha256": "0" * 64},
            {"path": f"models/{name}.sparse.onnx", "format": "onnx-sparse",
             "bytes": 1_000 + nonzero * 12, "sha256": "1" * 64},
        ],
    }


def synthetic_manifest():
    models = [model("mnist-ffn-baseline-it0", "baseline", "none", 0, 0, 0.0, 0.9800)]
    for iteration, sparsity in ((1, 0.5), (2, 0.75)):
        for seed in (0, 1):
            accuracy = 0.975 - 0.01 * iteration + 0.002 * seed
            models.append(model(f"mnist-ffn-repeated-l1-it{iteration}-s{seed}", "repeated", "l1", iteration, seed,
                                sparsity + 0.001 * seed, accuracy))
    return {
        "schema": "edgeprune.manifest/1", "bundle_id": BUNDLE_ID, "created": "2026-11-25T10:00:00+00:00",
        "edgeprune_version": "0.1.0", "profile": "quick",
        "host": {"hostname": "ws", "label": "ws", "cpu_model": "Workstation CPU 9000", "machine": "x86_64",
                 "physical_cores": 8, "logical_cores": 16, "cpu_freq_mhz": {"current": 3000, "min": 800, "max": 5000},
                 "isa_flags": {"avx2": True, "avx512f": True, "neon": False}, "memory_total_mb": 64000,
                 "os": "Linux-6.1", "os_release": "Debian GNU/Linux 12", "python": "3.11.7"},
        "evals": {"mnist": {"path": "eval/mnist.npz", "bytes": 1, "sha256": "2" * 64, "n": 1000}},
        "models": models,
    }


def measurement(m, file, latency_ms, accuracy):
    return {
        "name": m["name"], "file": file["path"], "format": file["format"], "status": "ok", "error": None,
        "sha256_ok": True, "disk_bytes": file["bytes"], "session_ms": 3.0, "first_ms": 0.5,
        "latency_ms": {"n": 100, "mean": latency_ms, "std": 0.001, "min": latency_ms * 0.9, "p50": latency_ms,
                       "p90": latency_ms * 1.1, "p99": latency_ms * 1.3, "max": latency_ms * 2,
                       "p50_ci95": [latency_ms * 0.99, latency_ms * 1.01]},
        "memory_mb": {"rss_before": 50, "rss_after_load": 52, "rss_peak": 53, "peak_method": "vmhwm"},
        "accuracy": accuracy, "eval_n": 1000,
    }


def synthetic_result(manifest, threads, accuracy_shift):
    """accuracy_shift maps (model name, format) -> device accuracy minus host accuracy (fraction)."""
    models = []
    for m in manifest["models"]:
        for file in m["files"]:
            latency = 0.05 * (1.0 if file["format"] == "onnx" else 1.6) * (2 if threads == 1 else 1)
            shift = accuracy_shift.get((m["name"], file["format"]), 0.0)
            models.append(measurement(m, file, latency, m["accuracy"] + shift))
    return {
        "schema": "edgeprune.result/1", "bundle": manifest["bundle_id"], "bundle_path": "/home/pi/bundle",
        "runner_version": "0.1.0", "created": "2026-11-26T10:00:00+00:00",
        "device": {"hostname": "pi5", "label": "pi5", "cpu_model": "Cortex-A76", "machine": "aarch64",
                   "physical_cores": 4, "logical_cores": 4, "cpu_freq_mhz": {"current": 2400, "min": 1500, "max": 2400},
                   "isa_flags": {"avx2": False, "neon": True, "asimddp": True, "sve": False},
                   "memory_total_mb": 8000, "os": "Linux-6.6-aarch64", "os_release": "Debian GNU/Linux 12",
                   "python": "3.11.2", "onnxruntime": "1.20.0", "providers": ["CPUExecutionProvider"],
                   "numpy": "2.0"},
        "settings": {"threads": threads, "batch_size": 1, "warmup": 10, "min_runs": 100, "min_seconds": 1.0,
                     "provider": "CPUExecutionProvider", "api": "iobinding"},
        "models": models,
    }


def write_json(path: Path, data) -> Path:
    path.write_text(json.dumps(data, indent=1))
    return path


@pytest.fixture
def inputs(tmp_path):
    """Bundle folder and two results of one machine with other thread settings."""
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    manifest = synthetic_manifest()
    write_json(bundle / "manifest.json", manifest)
    flagged_shift = {
        ("mnist-ffn-repeated-l1-it2-s1", "onnx-sparse"): -0.003,  # 0.3 points: flagged
        ("mnist-ffn-baseline-it0", "onnx"): -0.0005,  # 0.05 points: not flagged
    }
    result_threads_1 = synthetic_result(manifest, 1, flagged_shift)
    result_auto = synthetic_result(manifest, 0, {})
    failed = result_auto["models"][3]
    failed.update(status="error", error="onnxruntime: Unsupported sparse initializer", latency_ms=None,
                  accuracy=None, session_ms=None, first_ms=None)
    r1 = write_json(tmp_path / "pi5-t1.json", result_threads_1)
    r2 = write_json(tmp_path / "pi5-auto.json", result_auto)
    return {"bundle": bundle, "results": [r1, r2], "manifest": manifest, "failed": failed, "tmp": tmp_path}


def section(markdown: str, heading: str) -> str:
    """The text from a heading line to the next heading."""
    start = markdown.index(heading + "\n")
    rest = markdown[start + len(heading) + 1:]
    end = rest.find("\n#")
    return rest if end < 0 else rest[:end]


def test_load_frame_one_row_per_device_and_file(inputs):
    frame = load_frame(inputs["results"], inputs["bundle"])
    files = sum(len(m["files"]) for m in inputs["manifest"]["models"])
    assert len(frame) == 2 * files
    assert list(dict.fromkeys(frame["device"])) == [THREADS_1, THREADS_AUTO]
    flagged = frame[frame["accuracy_mismatch"]]
    assert list(zip(flagged["device"], flagged["name"], flagged["format"])) == [
        (THREADS_1, "mnist-ffn-repeated-l1-it2-s1", "onnx-sparse")]
    baseline = frame[(frame["name"] == "mnist-ffn-baseline-it0") & (frame["format"] == "onnx")]
    assert baseline["accuracy_delta_pp"].round(6).tolist() == [-0.05, 0.0]
    assert frame.attrs["host"]["cpu_model"] == "Workstation CPU 9000"


def test_results_of_older_runners_are_labelled_as_sess_run_calls(inputs):
    """Before runner 0.2 results had no settings.api and timed sess.run: they must not pass as iobinding numbers."""
    old = json.loads(inputs["results"][0].read_text())
    del old["settings"]["api"]
    old_path = write_json(inputs["tmp"] / "pi5-old.json", old)
    frame = load_frame([old_path, inputs["results"][1]], inputs["bundle"])
    assert list(dict.fromkeys(frame["device"])) == ["pi5 (threads 1, batch 1, run calls)", THREADS_AUTO]
    out = inputs["tmp"] / "report-old"
    build_report([old_path, inputs["results"][1]], inputs["bundle"], out)
    devices = section((out / "report.md").read_text(), "## Devices")
    calls = next(line for line in devices.splitlines() if line.startswith("| Bench calls"))
    assert [c.strip() for c in calls.strip("|").split("|")][1:] == ["—", "run", "iobinding"]


def test_bench_rounds_row_counts_one_window_for_results_without_the_key(inputs):
    several = json.loads(inputs["results"][0].read_text())
    several["settings"]["rounds"] = 5
    path = write_json(inputs["tmp"] / "pi5-rounds.json", several)
    old = json.loads(inputs["results"][1].read_text())
    old["settings"].pop("rounds", None)
    old_path = write_json(inputs["tmp"] / "pi5-one.json", old)
    out = inputs["tmp"] / "report-rounds"
    build_report([path, old_path], inputs["bundle"], out)
    devices = section((out / "report.md").read_text(), "## Devices")
    rounds = next(line for line in devices.splitlines() if line.startswith("| Bench rounds"))
    assert [c.strip() for c in rounds.strip("|").split("|")][1:] == ["—", "5", "1"]


def test_report_contents(inputs):
    out = inputs["tmp"] / "report"
    report = build_report(inputs["results"], inputs["bundle"], out)
    assert report == out / "report.md"
    md = report.read_text()

    devices = section(md, "## Devices")
    for text in ("Workstation (training ran here)", THREADS_1, THREADS_AUTO, "Cortex-A76", "Workstation CPU 9000",
                 "asimddp, neon", "CPUExecutionProvider", "auto (0)"):
        assert text in devices
    assert "sve" not in devices and "avx2" in devices  # only true flags; the host has avx2

    header = ("| Method | Iteration | Format | Seeds | Sparsity (%) | Accuracy (%) host | Accuracy (%) device "
              "| Latency p50 (ms) | Disk Size (MB) | Parameters (nonzero/params) |")
    assert md.count(header) == 4  # 2 devices x 2 experiments

    repeated_t1 = section(md, f"### {THREADS_1} · repeated")
    assert "⚠" in repeated_t1 and "mnist-ffn-repeated-l1-it2-s1 (onnx-sparse)" in repeated_t1
    assert "-0.30 points" in repeated_t1
    # Two seeds aggregated: sparsity 75.0 and 75.1 -> mean ± std; latency p50 2 x 0.05 ms = 0.1 ms.
    assert "| l1 | 2 | onnx | 0, 1 | 75.05 ± 0.07 |" in repeated_t1
    assert "| 0.1 ± 0 |" in repeated_t1
    assert "≈4,995/10,000" in repeated_t1  # nonzero 5,000 and 4,990

    baseline_t1 = section(md, f"### {THREADS_1} · baseline")
    assert "97.95" in baseline_t1  # the 0.05-point difference is shown ...
    assert "⚠" not in baseline_t1  # ... but not flagged
    assert "| none | 0 | onnx | 0 | 0.00 | 98.00 | 97.95 | 0.1 | 0.0405 | 10,000/10,000 |" in baseline_t1

    auto = section(md, f"### {THREADS_AUTO} · repeated")
    assert "error: onnxruntime: Unsupported sparse initializer" in auto
    assert "⚠" not in auto and "⚠" not in section(md, f"### {THREADS_AUTO} · baseline")

    storage = section(md, "## Host storage")
    assert "| dense (MB) | lab_coo (MB) | csr (MB) | entropy_bound (MB) |" in storage
    assert "Why the lab's COO file is not 25% of the dense one" in storage
    assert "indices [2, nnz] int64" in storage and "0.0498 MB" in storage  # lab_coo of the 75.1% model, 2,490 x 20 bytes

    provenance = section(md, "## Provenance")
    assert str(inputs["results"][0]) in provenance and str(inputs["results"][1]) in provenance
    assert "torch" in provenance and "runner" in provenance


def test_report_files_csv_png_html(inputs):
    out = inputs["tmp"] / "report"
    build_report(inputs["results"], inputs["bundle"], out)
    csvs = sorted(p.name for p in out.glob("*.csv"))
    assert "devices.csv" in csvs and "storage.csv" in csvs
    assert len([c for c in csvs if c.startswith("lab-") and not c.startswith("lab-template-")]) == 4
    # the lab template's columns, the one place with seconds: p50 0.1 ms (threads 1) is 0.0001 s
    template = (out / "lab-template-pi5-threads-1-batch-1-baseline.csv").read_text().splitlines()
    assert template[0] == "Iteration,Format,Sparsity (%),Accuracy (%),Latency (s),Disk Size (MB)"
    assert template[1].split(",")[:2] == ["0", "onnx"] and float(template[1].split(",")[4]) == pytest.approx(1e-4)
    pngs = sorted(out.glob("*.png"))
    assert [p.name for p in pngs if not p.name.startswith("pareto-")] == [
        "mnist-accuracy-vs-disk-size.png", "mnist-accuracy-vs-latency.png", "mnist-accuracy-vs-sparsity.png"]
    html = (out / "report.html").read_text()
    md = (out / "report.md").read_text()
    for png in pngs:
        data = png.read_bytes()
        assert len(data) > 5_000 and data.startswith(PNG_MAGIC)
        assert f'<img src="{png.name}"' in html
        assert f"]({png.name})" in md
    assert "<table" in html and "Accuracy (%) device" in html and "⚠" in html
    lab_csv = (out / "lab-pi5-threads-1-batch-1-repeated.csv").read_text().splitlines()
    assert lab_csv[0].startswith("device,task,experiment,method,iteration,format,seeds,n_seeds,status")
    assert len(lab_csv) == 1 + 4  # iterations 1, 2 x formats onnx, onnx-sparse, seeds merged


def test_rebuild_replaces_report_and_keeps_neighbours(inputs):
    out = inputs["tmp"] / "report"
    neighbour = inputs["tmp"] / "notes.txt"
    neighbour.write_text("mine")
    build_report(inputs["results"], inputs["bundle"], out)
    (out / "stale.png").write_bytes(b"old")
    build_report(inputs["results"][:1], inputs["bundle"], out)
    assert not (out / "stale.png").exists()
    assert THREADS_AUTO not in (out / "report.md").read_text()
    assert neighbour.read_text() == "mine"
    assert sorted(p.name for p in inputs["tmp"].iterdir() if p.name.startswith(".")) == []


@pytest.mark.parametrize("schema", ["edgeprune.result/0", "edgeprune.result/2"])
def test_wrong_result_schema(inputs, schema):
    path = inputs["results"][1]
    data = json.loads(path.read_text())
    data["schema"] = schema
    write_json(path, data)
    with pytest.raises(ReportError) as error:
        build_report(inputs["results"], inputs["bundle"], inputs["tmp"] / "report")
    assert str(error.value) == (f"{path} was written by a different edgeprune version (schema {schema}); "
                                "expected edgeprune.result/1")


def test_result_of_another_bundle(inputs):
    path = inputs["results"][0]
    data = json.loads(path.read_text())
    data["bundle"] = "c" * 64
    write_json(path, data)
    with pytest.raises(ReportError) as error:
        build_report(inputs["results"], inputs["bundle"], inputs["tmp"] / "report")
    assert str(error.value) == f"{path} measures another bundle (cccccccccccc), not {inputs['bundle']} (bbbbbbbbbbbb)"


def test_unreadable_results_and_manifest(inputs):
    tmp, bundle, out = inputs["tmp"], inputs["bundle"], inputs["tmp"] / "report"
    with pytest.raises(ReportError, match="does not exist"):
        build_report([tmp / "nope.json"], bundle, out)
    (tmp / "bad.json").write_text("{not json")
    with pytest.raises(ReportError, match=r"bad.json is not valid JSON \(.* line 1"):
        build_report([tmp / "bad.json"], bundle, out)
    with pytest.raises(ReportError, match="no result files"):
        build_report([], bundle, out)
    with pytest.raises(ReportError, match="has no manifest.json"):
        build_report(inputs["results"], tmp, out)
    manifest = copy.deepcopy(inputs["manifest"])
    manifest["schema"] = "edgeprune.manifest/9"
    write_json(bundle / "manifest.json", manifest)
    with pytest.raises(ReportError) as error:
        build_report(inputs["results"], bundle, out)
    assert "(schema edgeprune.manifest/9); expected edgeprune.manifest/1" in str(error.value)
    assert not out.exists()


def test_failed_build_leaves_previous_report_whole(inputs, monkeypatch):
    out = inputs["tmp"] / "report"
    build_report(inputs["results"], inputs["bundle"], out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    bad = inputs["results"][1]
    write_json(bad, {**json.loads(bad.read_text()), "schema": "edgeprune.result/0"})
    with pytest.raises(ReportError):
        build_report(inputs["results"], inputs["bundle"], out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before

    import harness.report.build as build

    def broken_section(frame, folder):
        (folder / "partial.csv").write_text("half")
        raise RuntimeError("section failed half-way")

    monkeypatch.setattr(build, "SECTIONS", [*build.SECTIONS[:2], broken_section])
    with pytest.raises(RuntimeError):
        build_report(inputs["results"][:1], inputs["bundle"], out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in inputs["tmp"].iterdir() if p.name.startswith(".")] == []


def test_refuses_to_replace_a_folder_that_is_not_a_report(inputs):
    out = inputs["tmp"] / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    with pytest.raises(ReportError, match="not an edgeprune report"):
        build_report(inputs["results"], inputs["bundle"], out)
    assert (out / "thesis.tex").read_text() == "precious"


def test_report_package_does_not_import_torch():
    """Checked in a fresh interpreter: other test modules import torch into this one."""
    import subprocess
    code = "import sys, harness.report.build; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_result_whose_device_is_not_an_object_is_one_sentence(inputs):
    bad = inputs["results"][0]
    write_json(bad, {**json.loads(bad.read_text()), "device": "pi5"})
    with pytest.raises(ReportError, match="'device' entry that is not an object"):
        build_report([bad], inputs["bundle"], inputs["tmp"] / "report")
    assert not (inputs["tmp"] / "report").exists()


def test_manifest_model_files_not_a_list_is_one_sentence(inputs):
    manifest = copy.deepcopy(inputs["manifest"])
    manifest["models"][0]["files"] = 5
    write_json(inputs["bundle"] / "manifest.json", manifest)
    with pytest.raises(ReportError, match="not an object with a list of files"):
        build_report(inputs["results"], inputs["bundle"], inputs["tmp"] / "report")


def test_cli_out_under_a_file_is_one_sentence(inputs):
    import subprocess

    blocker = inputs["tmp"] / "a-file"
    blocker.write_text("mine")
    harness = Path(sys.executable).parent / "harness"
    done = subprocess.run([str(harness), "report", *map(str, inputs["results"]), "--bundle", str(inputs["bundle"]),
                           "--out", str(blocker / "report")], capture_output=True, text=True)
    # the --out check every writing command shares (runners.safety.output_problem) says it before anything is written
    assert done.returncode == 2 and done.stderr.startswith(f"error: --out {blocker / 'report'} lies under {blocker}")
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert blocker.read_text() == "mine"
