"""The device runner (runners/): result contract, integrity checks, errors, device facts, packaging.

Fast and deterministic: a synthetic bundle of two tiny MLPs (tests/runner_fixtures.py, no torch), few timed runs,
and no assertion on how fast anything is.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # also when pytest is started as a script rather than `python -m pytest`
    sys.path.insert(0, str(REPO))

from runner_fixtures import build_bundle, expected_accuracy, refresh_file_entry, write_manifest
from runners import MANIFEST_SCHEMA, RESULT_SCHEMA
from runners.bench import run_bench
from runners.cli import main
from runners.device import ISA_FLAGS, device_facts
from runners.package import write_runner
from runners.settings import BenchSettings
from runners.stats import latency_stats, p50_ci95

# Two rounds (the fewest with an interval), in-process: the fresh processes are tested on their own below.
FAST = ["--min-runs", "8", "--min-seconds", "0", "--warmup", "1", "--rounds", "2", "--memory-isolation", "none"]

TOP_KEYS = {"schema", "bundle", "bundle_path", "runner_version", "created", "device", "settings", "models"}
DEVICE_KEYS = {"hostname", "label", "cpu_model", "machine", "physical_cores", "logical_cores", "cpu_freq_mhz",
               "isa_flags", "memory_total_mb", "os", "os_release", "python", "onnxruntime", "providers", "numpy"}
SETTINGS_KEYS = {"threads", "batch_size", "warmup", "min_runs", "min_seconds", "provider", "api", "rounds",
                 "memory_isolation", "aa_control", "p50_rounds_ci95_method", "ratio_ci95_method"}
MODEL_KEYS = {"name", "file", "format", "status", "error", "sha256_ok", "disk_bytes", "session_ms", "first_ms",
              "latency_ms", "memory_mb", "accuracy", "eval_n", "role", "reference", "ratio_to_reference"}
LATENCY_KEYS = {"n", "mean", "std", "min", "p50", "p90", "p99", "max", "p50_ci95", "p50_rounds", "p50_rounds_ci95"}
MEMORY_KEYS = {"rss_before", "rss_after_load", "rss_peak", "peak_method", "load_increment", "peak_increment",
               "isolation"}


@pytest.fixture()
def bundle(tmp_path: Path) -> Path:
    dest = tmp_path / "bundle"
    build_bundle(dest)
    return dest


def manifest_of(bundle: Path) -> dict:
    return json.loads((bundle / "manifest.json").read_text())


def bench(bundle: Path, out: Path, *extra: str):
    """Run ``runner bench`` in-process; returns (click result, parsed JSON or None)."""
    res = CliRunner().invoke(main, ["bench", str(bundle), "--out", str(out), *FAST, *extra])
    data = json.loads(out.read_text()) if out.exists() else None
    return res, data


def by_name(result: dict) -> dict[str, dict]:
    """The entries by model name, the A/A control (a second entry of the reference file) left out."""
    return {m["name"]: m for m in result["models"] if m.get("role") != "aa-control"}


def assert_no_traceback(res) -> None:
    assert "Traceback" not in res.output and "Traceback" not in (res.stderr or "")
    assert res.exception is None or isinstance(res.exception, SystemExit)


# ------------------------------------------------------------------------------------------- full run
def test_full_bench_gives_every_contract_key(bundle: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    res, data = bench(bundle, out)
    assert res.exit_code == 0, res.output
    assert_no_traceback(res)
    assert TOP_KEYS <= set(data)
    assert data["schema"] == RESULT_SCHEMA
    assert data["bundle"] == manifest_of(bundle)["bundle_id"]
    assert Path(data["bundle_path"]) == bundle.resolve()
    assert DEVICE_KEYS <= set(data["device"])
    assert set(ISA_FLAGS) <= set(data["device"]["isa_flags"])
    assert SETTINGS_KEYS <= set(data["settings"])
    # toy-0 is the group's dense reference (the fixture's models are all unpruned: the first one) and is timed
    # again, last, as the A/A control
    assert [(m["name"], m["role"]) for m in data["models"]] == [("toy-0", "reference"), ("toy-1", "file"),
                                                               ("toy-0", "aa-control")]
    assert all(m["reference"] == "models/toy-0.onnx" for m in data["models"])
    for m in data["models"]:
        assert MODEL_KEYS <= set(m), m
        assert m["status"] == "ok" and m["error"] is None and m["sha256_ok"] is True
        assert m["format"] == "onnx" and m["file"] == f"models/{m['name']}.onnx"
        assert m["disk_bytes"] == (bundle / m["file"]).stat().st_size
        assert m["session_ms"] > 0 and m["first_ms"] > 0
        lat = m["latency_ms"]
        assert LATENCY_KEYS <= set(lat)
        assert lat["n"] >= 8
        assert lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
        assert lat["min"] <= lat["mean"] <= lat["max"] and lat["std"] >= 0
        lo, hi = lat["p50_ci95"]
        assert lo <= lat["p50"] <= hi
        assert len(lat["p50_rounds"]) == 2
        lo, hi = lat["p50_rounds_ci95"]
        assert lo <= hi and lo <= max(lat["p50_rounds"]) and min(lat["p50_rounds"]) <= hi
        mem = m["memory_mb"]
        assert MEMORY_KEYS <= set(mem)
        assert mem["peak_method"] in ("vmhwm", "psutil-samples") and mem["isolation"] == "none"
        assert 0 < mem["rss_before"] and mem["rss_after_load"] <= mem["rss_peak"]
        assert mem["load_increment"] == pytest.approx(mem["rss_after_load"] - mem["rss_before"])
        assert m["eval_n"] == 64 and 0 <= m["accuracy"] <= 1
    # progress: one line per model on stderr, with p50 and accuracy
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("[")]
    assert len(lines) == 3 and all("p50" in ln and "accuracy" in ln for ln in lines)
    assert "[A/A control]" in lines[-1]
    # atomic write leaves nothing beside the result
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle", "r.json"]


def test_accuracy_equals_numpy(bundle: Path, tmp_path: Path) -> None:
    res, data = bench(bundle, tmp_path / "r.json")
    assert res.exit_code == 0, res.output
    models = by_name(data)
    assert models["toy-0"]["accuracy"] == expected_accuracy(bundle, "models/toy-0.onnx") == 56 / 64
    assert models["toy-1"]["accuracy"] == expected_accuracy(bundle, "models/toy-1.onnx")


def test_accuracy_independent_of_eval_batch(bundle: Path, tmp_path: Path) -> None:
    res, data = bench(bundle, tmp_path / "r.json", "--eval-batch-size", "7")
    assert res.exit_code == 0, res.output
    assert by_name(data)["toy-1"]["accuracy"] == expected_accuracy(bundle, "models/toy-1.onnx")


def test_fixed_batch_dimension_model(tmp_path: Path) -> None:
    bundle = tmp_path / "fixed"
    build_bundle(bundle, n_eval=61, fixed_batch=3)  # 61 rows: the last eval batch needs padding
    res, data = bench(bundle, tmp_path / "r.json", "--batch-size", "5", "--eval-batch-size", "16")
    assert res.exit_code == 0, res.output
    for m in data["models"]:
        assert m["status"] == "ok" and m["batch_size"] == 3  # the model's own batch dimension wins
        assert m["accuracy"] == expected_accuracy(bundle, m["file"]) and m["eval_n"] == 61


def test_threads_and_batch_size_recorded(bundle: Path, tmp_path: Path) -> None:
    res, data = bench(bundle, tmp_path / "r.json", "--threads", "1", "--batch-size", "4", "--label", "bench-box")
    assert res.exit_code == 0, res.output
    s = data["settings"]
    assert (s["threads"], s["batch_size"], s["warmup"], s["min_runs"], s["min_seconds"]) == (1, 4, 1, 8, 0.0)
    assert s["provider"] == "CPUExecutionProvider" and s["api"] == "iobinding"
    assert all(m["batch_size"] == 4 for m in data["models"])
    assert data["device"]["label"] == "bench-box"


def test_cli_defaults_are_the_settings_defaults() -> None:
    """`runner bench` without options measures as run_bench(BenchSettings()) does: one place holds each default."""
    import dataclasses

    options = {p.name: p for p in main.commands["bench"].params}
    options["models"] = options.pop("models_glob")
    # provider options are typed as NAME:KEY=VALUE strings on the command line and parsed into a dict
    fields = [f for f in dataclasses.fields(BenchSettings) if f.name != "provider_options"]
    assert {f.name for f in fields} <= set(options)
    assert {f.name: options[f.name].default for f in fields} == {f.name: f.default for f in fields}
    assert tuple(options["api"].type.choices) == ("iobinding", "run")
    assert options["provider_options"].multiple and BenchSettings().provider_options == {}


def test_models_glob_selects(bundle: Path, tmp_path: Path) -> None:
    res, data = bench(bundle, tmp_path / "r.json", "--models", "*-1")
    assert res.exit_code == 0, res.output
    assert [m["name"] for m in data["models"]] == ["toy-1", "toy-1"], "toy-1 is the group's reference now"
    assert [m["role"] for m in data["models"]] == ["reference", "aa-control"]
    res, data = bench(bundle, tmp_path / "none.json", "--models", "nothing-*")
    assert res.exit_code == 2 and data is None
    assert "matches" in res.stderr


def test_a_bundle_without_models_says_so_without_naming_a_filter(bundle: Path, tmp_path: Path) -> None:
    manifest = manifest_of(bundle)
    manifest["models"] = []
    write_manifest(bundle, manifest)
    res, data = bench(bundle, tmp_path / "r.json")
    assert res.exit_code == 2 and data is None
    assert "lists no models" in res.stderr and "--models" not in res.stderr


# ------------------------------------------------------------------------------------------- rounds
def test_rounds_pool_every_window_and_list_each_p50(bundle: Path, tmp_path: Path) -> None:
    res, data = bench(bundle, tmp_path / "r.json", "--rounds", "3")
    assert res.exit_code == 0, res.output
    assert data["settings"]["rounds"] == 3 and "round 3/3 done" in res.stderr
    for m in data["models"]:
        latency = m["latency_ms"]
        # --min-runs 8, --min-seconds 0; the reference has a window beside each of the two other entries
        windows = 2 if m["role"] == "reference" else 1
        assert len(latency["p50_rounds"]) == 3 and latency["n"] == 3 * 8 * windows
        assert latency["min"] <= min(latency["p50_rounds"]) and max(latency["p50_rounds"]) <= latency["max"]
        assert m["accuracy"] == pytest.approx(expected_accuracy(bundle, m["file"]))


def test_each_window_has_a_reference_window_beside_it_and_a_paired_ratio(bundle: Path, tmp_path: Path) -> None:
    res, data = bench(bundle, tmp_path / "r.json", "--rounds", "3")
    assert res.exit_code == 0, res.output
    reference, variant, control = data["models"]
    assert reference["ratio_to_reference"] is None and "reference_p50_rounds" not in reference["latency_ms"]
    for m in (variant, control):
        latency, ratio = m["latency_ms"], m["ratio_to_reference"]
        assert len(latency["reference_p50_rounds"]) == 3
        per_round = [a / b for a, b in zip(latency["p50_rounds"], latency["reference_p50_rounds"])]
        assert ratio["n"] == 3 and ratio["rounds"] == pytest.approx(per_round)
        assert ratio["median"] == pytest.approx(float(np.median(per_round)))
        lo, hi = ratio["ci95"]
        assert lo <= hi and lo <= max(per_round) and min(per_round) <= hi
    # the reference's p50 of a round pools the windows timed beside both other entries
    assert reference["latency_ms"]["n"] == 3 * 2 * 8


def test_one_round_gives_one_window_and_no_interval(bundle: Path, tmp_path: Path) -> None:
    res, data = bench(bundle, tmp_path / "r.json", "--rounds", "1")
    assert res.exit_code == 0 and data["settings"]["rounds"] == 1
    for m in data["models"]:
        assert len(m["latency_ms"]["p50_rounds"]) == 1 and m["latency_ms"]["p50_rounds_ci95"] is None
    assert by_name(data)["toy-1"]["ratio_to_reference"]["ci95"] is None


def test_without_the_control_no_second_entry(bundle: Path, tmp_path: Path) -> None:
    res, data = bench(bundle, tmp_path / "r.json", "--no-aa-control")
    assert res.exit_code == 0, res.output
    assert [m["role"] for m in data["models"]] == ["reference", "file"] and data["settings"]["aa_control"] is False


def test_a_baseline_model_is_the_reference_over_an_earlier_unpruned_one(bundle: Path, tmp_path: Path) -> None:
    manifest = manifest_of(bundle)
    manifest["models"][1]["experiment"] = "baseline"
    write_manifest(bundle, manifest)
    res, data = bench(bundle, tmp_path / "r.json")
    assert res.exit_code == 0, res.output
    assert [(m["name"], m["role"]) for m in data["models"]] == [("toy-0", "file"), ("toy-1", "reference"),
                                                               ("toy-1", "aa-control")]


def test_groups_of_another_task_or_model_get_their_own_reference(bundle: Path, tmp_path: Path) -> None:
    manifest = manifest_of(bundle)
    manifest["models"][1]["model"] = "other-architecture"
    write_manifest(bundle, manifest)
    res, data = bench(bundle, tmp_path / "r.json", "--no-aa-control")
    assert res.exit_code == 0, res.output
    assert [(m["role"], m["reference"]) for m in data["models"]] == [("reference", "models/toy-0.onnx"),
                                                                     ("reference", "models/toy-1.onnx")]


def test_a_file_broken_between_rounds_becomes_an_error_others_go_on(bundle: Path) -> None:
    victim = bundle / manifest_of(bundle)["models"][0]["files"][0]["path"]
    lines = []

    def progress(line: str) -> None:   # after every file was measured once, damage the first file (the reference)
        lines.append(line)
        if line.startswith("[3/3]"):
            victim.write_bytes(victim.read_bytes()[:100])

    settings = BenchSettings(min_runs=5, min_seconds=0, warmup=0, rounds=2, memory_isolation="none")
    result = run_bench(bundle, settings, progress=progress)
    first, second, control = result["models"]
    for broken in (first, control):
        assert broken["status"] == "error" and "later timing round" in broken["error"]
        assert "\n" not in broken["error"]
        assert broken["latency_ms"]["p50"] is None and broken["accuracy"] is None
        assert broken["memory_mb"]["rss_peak"] is None
    # the other file is still timed, on its own once its reference is gone
    assert second["status"] == "ok" and len(second["latency_ms"]["p50_rounds"]) == 2
    assert second["ratio_to_reference"] is None


def test_a_file_swapped_for_another_valid_model_between_rounds_is_not_pooled(bundle: Path) -> None:
    """The other model file loads and runs fine: only its sha256 tells that it is not the file measured."""
    files = [m["files"][0]["path"] for m in manifest_of(bundle)["models"]]
    first, other = (bundle / f for f in files)

    def progress(line: str) -> None:
        if line.startswith("[3/3]"):
            first.write_bytes(other.read_bytes())

    result = run_bench(bundle, BenchSettings(min_runs=5, min_seconds=0, warmup=0, rounds=2, memory_isolation="none"),
                       progress=progress)
    swapped = result["models"][0]
    assert swapped["status"] == "error" and "changed" in swapped["error"] and "sha256" in swapped["error"]
    assert swapped["sha256_ok"] is False and swapped["latency_ms"]["p50"] is None


def test_rounds_below_one_are_refused(bundle: Path, tmp_path: Path) -> None:
    res, data = bench(bundle, tmp_path / "r.json", "--rounds", "0")
    assert res.exit_code == 2 and data is None
    with pytest.raises(ValueError, match="rounds"):
        BenchSettings(rounds=0)


# ------------------------------------------------------------------------------------------- bad model files
def test_truncated_model_is_error_others_measured(bundle: Path, tmp_path: Path) -> None:
    f = bundle / "models/toy-0.onnx"
    f.write_bytes(f.read_bytes()[:100])
    res, data = bench(bundle, tmp_path / "r.json")
    assert res.exit_code == 0, res.output
    bad, good = by_name(data)["toy-0"], by_name(data)["toy-1"]
    assert bad["status"] == "error" and "size mismatch" in bad["error"] and "\n" not in bad["error"]
    assert bad["sha256_ok"] is False and bad["disk_bytes"] == 100
    assert bad["accuracy"] is None and bad["latency_ms"]["p50"] is None and bad["memory_mb"]["rss_peak"] is None
    assert MODEL_KEYS <= set(bad)
    assert good["status"] == "ok" and good["accuracy"] is not None
    assert "ERROR" in res.stderr


def test_corrupt_model_onnxruntime_cannot_load(bundle: Path, tmp_path: Path) -> None:
    f = bundle / "models/toy-0.onnx"
    f.write_bytes(f.read_bytes()[:100])
    refresh_file_entry(bundle, manifest_of(bundle), "models/toy-0.onnx")  # integrity passes, loading fails
    res, data = bench(bundle, tmp_path / "r.json")
    assert res.exit_code == 0, res.output
    bad = by_name(data)["toy-0"]
    assert bad["status"] == "error" and bad["sha256_ok"] is True
    assert "onnxruntime could not load" in bad["error"] and "\n" not in bad["error"]
    assert by_name(data)["toy-1"]["status"] == "ok"


def test_sha_mismatch(bundle: Path, tmp_path: Path) -> None:
    f = bundle / "models/toy-1.onnx"
    data = bytearray(f.read_bytes())
    data[-1] ^= 0xFF  # same size, different content
    f.write_bytes(bytes(data))
    res, result = bench(bundle, tmp_path / "r.json")
    assert res.exit_code == 0, res.output
    bad = by_name(result)["toy-1"]
    assert bad["status"] == "error" and "sha256 mismatch" in bad["error"] and bad["sha256_ok"] is False
    assert by_name(result)["toy-0"]["status"] == "ok"


def test_missing_file(bundle: Path, tmp_path: Path) -> None:
    (bundle / "models/toy-0.onnx").unlink()
    res, result = bench(bundle, tmp_path / "r.json")
    assert res.exit_code == 0, res.output
    bad = by_name(result)["toy-0"]
    assert bad["status"] == "error" and "missing" in bad["error"]
    assert bad["disk_bytes"] is None and bad["sha256_ok"] is None
    assert by_name(result)["toy-1"]["status"] == "ok"


def test_strict_exits_nonzero_on_model_error(bundle: Path, tmp_path: Path) -> None:
    (bundle / "models/toy-0.onnx").unlink()
    res, result = bench(bundle, tmp_path / "r.json", "--strict")
    assert res.exit_code == 1 and result is not None  # the result is still written
    assert_no_traceback(res)


def test_eval_sha_mismatch_fails_its_models(bundle: Path, tmp_path: Path) -> None:
    manifest = manifest_of(bundle)
    manifest["evals"]["toy"]["sha256"] = "0" * 64
    write_manifest(bundle, manifest)
    res, result = bench(bundle, tmp_path / "r.json")
    assert res.exit_code == 0, res.output
    for m in result["models"]:
        assert m["status"] == "error" and "eval set 'toy'" in m["error"] and "sha256 mismatch" in m["error"]


@pytest.mark.parametrize("content, words", [(b"not a zip archive", "is not an npz archive"),
                                            ("scalars", "holds scalars")])
def test_corrupt_eval_npz_fails_its_models_in_one_line(content, words, bundle: Path, tmp_path: Path) -> None:
    manifest = manifest_of(bundle)
    rel = manifest["evals"]["toy"]["path"]
    if content == "scalars":
        np.savez(bundle / rel, inputs=np.float32(1), labels=np.int64(0))
    else:
        (bundle / rel).write_bytes(content)
    data = (bundle / rel).read_bytes()              # the sha256 matches: the file itself is bad
    manifest["evals"]["toy"].update(bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
    write_manifest(bundle, manifest)
    res, result = bench(bundle, tmp_path / "r.json")
    assert res.exit_code == 0, res.output
    assert_no_traceback(res)
    for m in result["models"]:
        assert m["status"] == "error" and words in m["error"] and "\n" not in m["error"]


def test_path_outside_bundle_refused(bundle: Path, tmp_path: Path) -> None:
    manifest = manifest_of(bundle)
    manifest["models"][0]["files"][0]["path"] = "../outside.onnx"
    write_manifest(bundle, manifest)
    res, result = bench(bundle, tmp_path / "r.json")
    assert by_name(result)["toy-0"]["status"] == "error"
    assert "outside the bundle" in by_name(result)["toy-0"]["error"]


def test_only_onnx_formats_are_run(bundle: Path, tmp_path: Path) -> None:
    manifest = manifest_of(bundle)
    manifest["models"][0]["files"].append({"path": "models/toy-0.pt", "format": "state_dict", "bytes": 1,
                                           "sha256": "0" * 64})
    shutil.copyfile(bundle / "models/toy-1.onnx", bundle / "models/toy-1.sparse.onnx")  # one file is listed once
    sparse = dict(manifest["models"][1]["files"][0], format="onnx-sparse", path="models/toy-1.sparse.onnx")
    manifest["models"][1]["files"].append(sparse)
    write_manifest(bundle, manifest)
    res, result = bench(bundle, tmp_path / "r.json")
    assert res.exit_code == 0, res.output
    assert [(m["name"], m["format"], m["status"]) for m in result["models"] if m["role"] != "aa-control"] == [
        ("toy-0", "onnx", "ok"), ("toy-1", "onnx", "ok"), ("toy-1", "onnx-sparse", "ok")]


# ------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("case", ["no-bundle", "no-manifest", "corrupt-json", "wrong-schema", "not-object",
                                  "files-not-list", "no-out-dir", "out-is-dir"])
def test_bad_input_one_sentence_exit_2(case: str, bundle: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    target = bundle
    if case == "no-bundle":
        target = tmp_path / "nope"
    elif case == "no-manifest":
        (bundle / "manifest.json").unlink()
    elif case == "corrupt-json":
        (bundle / "manifest.json").write_text('{"schema": "edgeprune.manifest/1", "models": [')
    elif case == "wrong-schema":
        manifest = manifest_of(bundle)
        manifest["schema"] = "edgeprune.manifest/0"
        write_manifest(bundle, manifest)
    elif case == "not-object":
        (bundle / "manifest.json").write_text("[1, 2]")
    elif case == "files-not-list":
        manifest = manifest_of(bundle)
        manifest["models"][0]["files"] = 5
        write_manifest(bundle, manifest)
    elif case == "no-out-dir":
        out = tmp_path / "missing-dir" / "r.json"
    elif case == "out-is-dir":
        out = tmp_path
    before = sorted(p.name for p in tmp_path.iterdir())
    res = CliRunner().invoke(main, ["bench", str(target), "--out", str(out), *FAST])
    assert res.exit_code == 2, res.output
    assert_no_traceback(res)
    err = [ln for ln in res.stderr.strip().splitlines() if ln.strip()]
    assert len(err) == 1 and err[0].startswith("Error: ") and err[0].rstrip().endswith("."), res.stderr
    if case == "wrong-schema":
        assert "edgeprune.manifest/0" in err[0] and MANIFEST_SCHEMA in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written, not even half a file


def test_wrong_schema_via_subprocess_no_traceback(bundle: Path, tmp_path: Path) -> None:
    manifest = manifest_of(bundle)
    manifest["schema"] = "something-else/9"
    write_manifest(bundle, manifest)
    out = tmp_path / "r.json"
    proc = subprocess.run([sys.executable, "-m", "runners", "bench", str(bundle), "--out", str(out)],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "something-else/9" in proc.stderr
    assert not out.exists()


# ------------------------------------------------------------------------------------------- statistics
def test_p50_ci95_order_statistics() -> None:
    # Classic table value: for n = 100 the 95% interval of the median is (x_(40), x_(61)), 1-based.
    assert p50_ci95(np.arange(100.0)) == [39.0, 60.0]
    assert p50_ci95(np.arange(6.0)) == [0.0, 5.0]  # smallest n with a 95% pair: coverage 1 - 2/64
    assert p50_ci95(np.arange(5.0)) is None
    lo, hi = p50_ci95(np.arange(100_000.0))
    assert lo < 50_000 < hi and abs((hi - lo) - 2 * 1.96 * np.sqrt(100_000) / 2) < 3


def test_latency_stats_numbers() -> None:
    x = np.array([5.0, 1.0, 3.0, 2.0, 4.0, 100.0, 6.0, 7.0, 8.0, 9.0])
    s = latency_stats(x)
    assert s["n"] == 10 and s["min"] == 1.0 and s["max"] == 100.0
    assert s["p50"] == pytest.approx(np.percentile(x, 50)) and s["p99"] == pytest.approx(np.percentile(x, 99))
    assert s["mean"] == pytest.approx(x.mean()) and s["std"] == pytest.approx(x.std(ddof=1))


def test_run_bench_api(bundle: Path) -> None:
    lines: list[str] = []
    result = run_bench(bundle, BenchSettings(min_runs=3, min_seconds=0, warmup=0), progress=lines.append)
    # the defaults: 5 rounds, each file measured once in a fresh process, the A/A control
    assert result["schema"] == RESULT_SCHEMA and len(lines) == 3 + 5 and lines[-1].startswith("round 5/5 done [")
    assert all(m["status"] == "ok" for m in result["models"])
    assert all(m["memory_mb"]["isolation"] == "process" for m in result["models"])
    assert all(len(m["latency_ms"]["p50_rounds"]) == 5 for m in result["models"])


def test_both_call_apis_give_the_same_outputs_and_accuracy(bundle: Path, tmp_path: Path) -> None:
    import onnxruntime as ort

    from runners.session import make_call

    manifest = manifest_of(bundle)
    path = bundle / manifest["models"][0]["files"][0]["path"]
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).random((2, *sess.get_inputs()[0].shape[1:]), dtype=np.float32)
    feed = {sess.get_inputs()[0].name: x}
    via_run = make_call(sess, feed, "run")()[0]
    binding_call = make_call(sess, feed, "iobinding")
    binding_call()  # the outputs stay in the binding
    np.testing.assert_array_equal(binding_call.args[0].copy_outputs_to_cpu()[0], via_run)

    results = {api: bench(bundle, tmp_path / f"{api}.json", "--api", api)[1] for api in ("run", "iobinding")}
    assert [r["settings"]["api"] for r in results.values()] == ["run", "iobinding"]
    assert [m["accuracy"] for m in results["run"]["models"]] == [m["accuracy"] for m in results["iobinding"]["models"]]
    assert all(m["status"] == "ok" for r in results.values() for m in r["models"])


def test_unknown_call_api_refused() -> None:
    with pytest.raises(ValueError, match="unknown call api"):
        BenchSettings(api="grpc")


# ------------------------------------------------------------------------------------------- device facts
def test_device_facts_keys() -> None:
    facts = device_facts("lbl")
    assert DEVICE_KEYS <= set(facts)
    assert facts["label"] == "lbl"
    assert set(facts["isa_flags"]) == set(ISA_FLAGS)
    assert all(v in (True, False, None) for v in facts["isa_flags"].values())
    assert set(facts["cpu_freq_mhz"]) == {"current", "min", "max"}
    assert "CPUExecutionProvider" in facts["providers"]
    json.dumps(facts, allow_nan=False)


def test_device_facts_survive_missing_sources(monkeypatch: pytest.MonkeyPatch) -> None:
    import runners.device as dev

    monkeypatch.setattr(dev, "_read_text", lambda path: None)  # no /proc, no /etc/os-release
    monkeypatch.setattr(dev.platform, "processor", lambda: "")
    facts = dev.device_facts()
    assert DEVICE_KEYS <= set(facts)
    if sys.platform.startswith("linux"):
        assert facts["cpu_model"] is None and facts["os_release"] is None
        assert all(v is None for v in facts["isa_flags"].values())


def test_device_isa_flags_parsing() -> None:
    import runners.device as dev

    arm = dev.isa_flags({"Features": "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp asimddp sve"})
    assert arm["neon"] and arm["asimddp"] and arm["sve"] and not arm["avx2"]
    x86 = dev.isa_flags({"flags": "fpu sse avx2 fma f16c avx512f avx512_vnni amx_tile avx_vnni"})
    assert all(x86[k] for k in ("avx2", "fma", "f16c", "avx512f", "avx512_vnni", "amx", "avx_vnni"))
    assert not x86["neon"]
    assert dev.cpu_model({"CPU part": "0xd08"}) is not None


def test_device_command_prints_json() -> None:
    res = CliRunner().invoke(main, ["device", "--label", "x"])
    assert res.exit_code == 0, res.output
    facts = json.loads(res.stdout)
    assert facts["label"] == "x" and "CPUExecutionProvider" in facts["providers"]
    assert {"cores", "temperatures_c", "throttle_count", "rpi_throttled"} <= set(facts["state_now"])


# ------------------------------------------------------------------------------------------- packaging, torch-free
def test_runner_does_not_import_torch() -> None:
    code = ("import sys; import runners.cli, runners.bench, runners.device, runners.package; "
            "assert 'torch' not in sys.modules, 'torch imported'; "
            "assert not any(m.split('.')[0] in ('harness', 'exporters') for m in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_runner_sources_never_mention_torch_imports() -> None:
    for path in (REPO / "runners").glob("*.py"):
        text = path.read_text()
        assert "import torch" not in text and "from torch" not in text, path
        assert "from harness" not in text and "from exporters" not in text, path


def test_write_runner_zipapp(bundle: Path, tmp_path: Path) -> None:
    paths = write_runner(bundle)
    runner, req, install_sh = bundle / "runner", bundle / "requirements.txt", bundle / "install.sh"
    assert paths == [runner, req, install_sh]
    assert install_sh.stat().st_mode & stat.S_IXUSR and "runner\" install" in install_sh.read_text()
    assert runner.read_bytes().startswith(b"#!/usr/bin/env python3\n")
    assert runner.stat().st_mode & stat.S_IXUSR
    assert req.read_text() == (REPO / "runners" / "requirements.txt").read_text()
    assert "torch" not in req.read_text()
    with zipfile.ZipFile(runner) as z:
        names = z.namelist()
    assert "__main__.py" in names
    assert all(n == "__main__.py" or (n.startswith("runners/") and n.endswith(".py")) for n in names), names
    assert not any("__pycache__" in n for n in names)
    assert {f"runners/{m}.py" for m in ("__init__", "cli", "bench", "bundle", "contract", "cpuinfo", "device", "errors",
                                          "files", "install", "isolation", "memory", "providers", "rounds", "session",
                                          "settings", "stats", "thermal")} <= set(names)
    first = runner.read_bytes()
    write_runner(bundle)
    assert runner.read_bytes() == first  # reproducible archive

    out = tmp_path / "r.json"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    # the zipapp's own fresh processes: the measuring server finds the runners package inside the archive
    in_fresh_processes = [a for a in FAST if a not in ("--memory-isolation", "none")]
    proc = subprocess.run([sys.executable, str(runner), "bench", str(bundle), "--out", str(out), *in_fresh_processes],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert [m["status"] for m in result["models"]] == ["ok", "ok", "ok"]
    assert all(m["memory_mb"]["isolation"] == "process" for m in result["models"])
