"""Execution providers and session options (runners/providers.py, runners/session.py): names and aliases, the one
sentence for a provider that is not there, providers benched side by side, a provider that fails on one file, and
every session option that changes timing recorded as onnxruntime holds it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from runner_fixtures import build_bundle, expected_accuracy  # noqa: E402
from runners.bench import run_bench  # noqa: E402
from runners.cli import main  # noqa: E402
from runners.errors import ModelError  # noqa: E402
from runners.providers import check_session_providers, parse_options, resolve, short_name, split_names  # noqa: E402
from runners.settings import BenchSettings  # noqa: E402

FAST = ["--min-runs", "5", "--min-seconds", "0", "--warmup", "1"]
AVAILABLE = ["OpenVINOExecutionProvider", "CPUExecutionProvider"]
EVERY = ["CUDAExecutionProvider", "OpenVINOExecutionProvider", "CPUExecutionProvider"]


@pytest.fixture()
def bundle(tmp_path: Path) -> Path:
    build_bundle(tmp_path / "bundle")
    return tmp_path / "bundle"


def bench(bundle: Path, out: Path, *extra: str):
    res = CliRunner().invoke(main, ["bench", str(bundle), "--out", str(out), *FAST, *extra])
    return res, (json.loads(out.read_text()) if out.exists() else None)


def second_provider() -> str:
    """A provider besides CPU that this onnxruntime build offers (the stock wheel has AzureExecutionProvider,
    which hands every node to the CPU kernels: enough to bench two providers side by side)."""
    import onnxruntime as ort

    others = [p for p in ort.get_available_providers() if p != "CPUExecutionProvider"]
    if not others:
        pytest.skip("this onnxruntime build offers only the CPU provider")
    return others[0]


# ------------------------------------------------------------------------------------------- names
def test_names_aliases_and_order() -> None:
    assert split_names(["openvino,cpu", " cpu ", "cuda"]) == ["openvino", "cpu", "cuda"]
    assert short_name("OpenVINOExecutionProvider") == "openvino"
    r = resolve(["CPU", "openvino", "OpenVINOExecutionProvider"], AVAILABLE, EVERY)
    assert r.chosen == ["CPUExecutionProvider", "OpenVINOExecutionProvider"] and r.unavailable == {}


def test_a_provider_not_built_in_and_a_made_up_one_are_one_sentence_each() -> None:
    r = resolve(["cpu", "cuda", "warp-drive"], ["CPUExecutionProvider"], EVERY)
    assert r.chosen == ["CPUExecutionProvider"]
    assert "CUDAExecutionProvider is not in this onnxruntime build" in r.unavailable["cuda"]
    assert "onnxruntime-cuda" in r.unavailable["cuda"]
    assert "'warp-drive' is not an onnxruntime execution provider" in r.unavailable["warp-drive"]
    assert all("offers CPUExecutionProvider" in s and "\n" not in s for s in r.unavailable.values())


def test_provider_options_parse_and_refuse() -> None:
    assert parse_options(["openvino:device_type=CPU", "OpenVINO:num_of_threads=2"], AVAILABLE) == {
        "OpenVINOExecutionProvider": {"device_type": "CPU", "num_of_threads": "2"}}
    with pytest.raises(ValueError, match="PROVIDER:KEY=VALUE"):
        parse_options(["device_type=CPU"], AVAILABLE)
    with pytest.raises(ValueError, match="not among the providers benched"):
        parse_options(["cuda:device_id=0"], AVAILABLE)


def test_a_silent_fallback_to_another_provider_is_an_error() -> None:
    check_session_providers(["OpenVINOExecutionProvider", "CPUExecutionProvider"], "OpenVINOExecutionProvider")
    with pytest.raises(ModelError, match="did not start CUDAExecutionProvider"):
        check_session_providers(["CPUExecutionProvider"], "CUDAExecutionProvider")


# ------------------------------------------------------------------------------------------- bench
def test_unknown_provider_alone_exit_2_one_sentence_naming_the_available(bundle: Path, tmp_path: Path) -> None:
    res, data = bench(bundle, tmp_path / "r.json", "--provider", "warp-drive")
    assert res.exit_code == 2 and data is None
    err = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(err) == 2 and err[1].startswith("Error: ") and err[1].endswith(".")   # line 1: the run's header
    assert "'warp-drive' is not an onnxruntime execution provider" in err[1] and "CPUExecutionProvider" in err[1]


def test_unknown_provider_beside_cpu_the_rest_is_measured(bundle: Path, tmp_path: Path) -> None:
    res, data = bench(bundle, tmp_path / "r.json", "--provider", "cpu,warp-drive")
    assert res.exit_code == 0, res.output
    assert [m["status"] for m in data["models"]] == ["ok", "ok"]
    assert set(data["settings"]["providers_unavailable"]) == {"warp-drive"}
    assert "not measured: 'warp-drive'" in res.stderr
    res, _ = bench(bundle, tmp_path / "strict.json", "--provider", "cpu,warp-drive", "--strict")
    assert res.exit_code == 1 and (tmp_path / "strict.json").exists()


def test_two_providers_side_by_side(bundle: Path, tmp_path: Path) -> None:
    other = second_provider()
    res, data = bench(bundle, tmp_path / "r.json", "--provider", f"cpu,{short_name(other)}", "--rounds", "2")
    assert res.exit_code == 0, res.output
    assert data["settings"]["providers"] == ["CPUExecutionProvider", other]
    # file-major order: each file with every provider, one after the other
    assert [(m["name"], m["provider"]) for m in data["models"]] == [
        ("toy-0", "CPUExecutionProvider"), ("toy-0", other), ("toy-1", "CPUExecutionProvider"), ("toy-1", other)]
    for m in data["models"]:
        assert m["status"] == "ok" and m["session_providers"][0] == m["provider"]
        assert m["accuracy"] == expected_accuracy(bundle, m["file"])
        assert len(m["latency_ms"]["p50_rounds"]) == 2
    assert set(data["settings"]["provider_options_effective"]) == {"CPUExecutionProvider", other}
    assert "[cpu]" in res.stderr and f"[{short_name(other)}]" in res.stderr


def test_a_provider_that_fails_on_one_file_leaves_the_rest_measured(bundle: Path, monkeypatch) -> None:
    """A provider that cannot take one file (here: it refuses toy-1) makes that file's entry an error."""
    import onnxruntime as ort

    real = ort.InferenceSession

    class Picky(real):   # onnxruntime's own class, refusing one file for the second provider
        def __init__(self, path, sess_options=None, providers=None, **kw):
            name = providers[0] if isinstance(providers[0], str) else providers[0][0]
            if name != "CPUExecutionProvider" and str(path).endswith("toy-1.onnx"):
                raise RuntimeError("[ONNXRuntimeError] : 1 : FAIL : this provider cannot compile the graph\nmore")
            super().__init__(path, sess_options=sess_options, providers=providers, **kw)

    other = second_provider()
    monkeypatch.setattr(ort, "InferenceSession", Picky)
    result = run_bench(bundle, BenchSettings(min_runs=3, min_seconds=0, warmup=0,
                                             providers=("CPUExecutionProvider", other)), progress=lambda line: None)
    status = {(m["name"], m["provider"]): m for m in result["models"]}
    bad = status[("toy-1", other)]
    assert bad["status"] == "error" and f"with {other}" in bad["error"] and "\n" not in bad["error"]
    assert all(m["status"] == "ok" for key, m in status.items() if key != ("toy-1", other))


def test_session_options_are_recorded_as_onnxruntime_holds_them(bundle: Path, tmp_path: Path) -> None:
    res, data = bench(bundle, tmp_path / "r.json", "--graph-optimization", "basic", "--no-spinning",
                      "--threads", "1", "--inter-op-threads", "2", "--execution-mode", "parallel")
    assert res.exit_code == 0, res.output
    s = data["settings"]
    assert (s["graph_optimization"], s["spinning"], s["inter_op_threads"], s["execution_mode"]) == \
        ("basic", False, 2, "parallel")
    assert s["session_options"] == {
        "graph_optimization_level": "ORT_ENABLE_BASIC", "execution_mode": "ORT_PARALLEL",
        "intra_op_num_threads": 1, "inter_op_num_threads": 2, "intra_op_allow_spinning": "0",
        "inter_op_allow_spinning": "0", "enable_cpu_mem_arena": True, "enable_mem_pattern": True,
        "use_deterministic_compute": False}
    res, data = bench(bundle, tmp_path / "d.json")
    so = data["settings"]["session_options"]
    assert so["graph_optimization_level"] == "ORT_ENABLE_ALL" and so["intra_op_allow_spinning"] == "1"
    assert data["device"]["onnxruntime_package"].startswith("onnxruntime")
    assert all(m["provider"] == "CPUExecutionProvider" for m in data["models"])


def test_bad_provider_option_is_one_sentence(bundle: Path, tmp_path: Path) -> None:
    res, data = bench(bundle, tmp_path / "r.json", "--provider-option", "device_type=CPU")
    assert res.exit_code == 2 and data is None and "PROVIDER:KEY=VALUE" in res.stderr


def test_providers_command_lists_this_build() -> None:
    import onnxruntime as ort

    res = CliRunner().invoke(main, ["providers"])
    assert res.exit_code == 0 and res.stdout.split() == ort.get_available_providers()
