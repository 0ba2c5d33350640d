"""The second architecture for real (devices/emulated-arm64.sh): a small bundle installed offline in an arm64 Debian
root and benched under qemu-aarch64, its accuracies equal to the host's, the run recorded as emulated.

Marker ``emulated``: needs root, Debian's qemu-user-static/debootstrap (installed by the script) and minutes of
emulation (the first run also builds the root), so ``make test`` leaves it out; ``make test-emulated`` runs it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from runner_fixtures import build_bundle, expected_accuracy  # noqa: E402

pytestmark = pytest.mark.emulated
SCRIPT = REPO / "devices" / "emulated-arm64.sh"


@pytest.fixture(scope="module")
def emulated_result(tmp_path_factory) -> tuple[Path, dict, subprocess.CompletedProcess]:
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        pytest.skip("the emulated flow needs root on Linux")
    tmp = tmp_path_factory.mktemp("emulated")
    bundle = tmp / "bundle"
    build_bundle(bundle, with_runner=True, layers=(16, 32, 4), n_eval=200)
    out = tmp / "arm64.json"
    proc = subprocess.run(["bash", str(SCRIPT), str(bundle), str(out)], capture_output=True, text=True,
                          timeout=3600, env={**os.environ, "HOST_PYTHON": sys.executable})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return bundle, json.loads(out.read_text()), proc


def test_installed_offline_from_the_carried_aarch64_wheels(emulated_result) -> None:
    bundle, result, proc = emulated_result
    index = json.loads((bundle / "wheels" / "index.json").read_text())
    target = result["device"]["install"]["target"]
    assert target.startswith("linux_aarch64-cp3") and target in index["targets"]
    assert result["device"]["install"]["source"] == "carried-wheels"
    assert "(pip --no-index)" in proc.stderr and "with no network" in proc.stderr


def test_every_file_ok_with_the_hosts_accuracy(emulated_result) -> None:
    bundle, result, _ = emulated_result
    assert result["device"]["machine"] == "aarch64"
    assert len(result["models"]) == 2
    for m in result["models"]:
        assert m["status"] == "ok", m["error"]
        assert m["accuracy"] == expected_accuracy(bundle, m["file"])


def test_recorded_as_emulated_with_the_cpu_qemu_emulates(emulated_result) -> None:
    _, result, _ = emulated_result
    device = result["device"]
    assert device["emulated"] is True and "modalias" in device["emulation_evidence"]
    assert device["cpu_model"] == "Cortex-A72" and device["isa_flags"]["neon"] is True
    assert result["settings"]["threads"] == 1 and result["settings"]["spinning"] is False


def test_the_script_refuses_bad_input_in_one_sentence(tmp_path: Path) -> None:
    proc = subprocess.run(["bash", str(SCRIPT), str(tmp_path), str(tmp_path / "r.json")], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "is not a bundle" in proc.stderr
