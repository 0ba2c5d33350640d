"""The packaged runner works in a fresh environment that has only the runner's requirements.txt (no torch).

Builds a venv with ``python -m venv`` + ``pip install -r requirements.txt`` (cached at build/test-runner-venv,
keyed by a hash of requirements.txt and the Python version, so only the first run pays for pip), then runs
``python BUNDLE/runner bench BUNDLE --out r.json`` on the synthetic fixture bundle. Needs the package registry
the first time; skips with the reason when pip cannot reach it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from runner_fixtures import build_bundle, expected_accuracy  # noqa: E402

REQUIREMENTS = REPO / "runners" / "requirements.txt"
CACHE = REPO / "build" / "test-runner-venv"
NETWORK_HINTS = ("could not find a version", "no matching distribution", "connection", "network", "resolve",
                 "name or service", "timed out", "timeout", "proxy", "ssl", "403", "404", "http error",
                 "max retries")


def _bin(venv: Path, name: str) -> Path:
    return venv / ("Scripts" if os.name == "nt" else "bin") / (name + (".exe" if os.name == "nt" else ""))


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PYTHONNOUSERSITE"] = "1"
    return env


def _key() -> str:
    h = hashlib.sha256(REQUIREMENTS.read_bytes())
    h.update(f"{sys.version_info[:3]} {sys.platform} {os.uname().machine if hasattr(os, 'uname') else ''}".encode())
    return h.hexdigest()[:16]


def _usable(venv: Path, key: str) -> bool:
    if not (venv / "KEY").is_file() or (venv / "KEY").read_text().strip() != key:
        return False
    proc = subprocess.run([str(_bin(venv, "python")), "-c", "import click, numpy, onnxruntime, psutil, tqdm"],
                          capture_output=True, env=_clean_env(), timeout=120)
    return proc.returncode == 0


def runner_venv() -> Path:
    """A venv holding only runners/requirements.txt; built once per requirements hash."""
    key = _key()
    if _usable(CACHE, key):
        return CACHE
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="test-runner-venv.", dir=CACHE.parent))
    try:
        proc = subprocess.run([sys.executable, "-m", "venv", str(tmp)], capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            pytest.skip(f"python -m venv is unavailable here: {proc.stderr.strip().splitlines()[-1:]}")
        proc = subprocess.run([str(_bin(tmp, "python")), "-m", "pip", "install", "-q", "-r", str(REQUIREMENTS)],
                              capture_output=True, text=True, env=_clean_env(), timeout=600)
        if proc.returncode != 0:
            text = (proc.stdout + proc.stderr).strip()
            last = text.splitlines()[-1] if text else "no output"
            if any(h in text.lower() for h in NETWORK_HINTS):
                pytest.skip(f"pip could not install runners/requirements.txt from the package registry: {last}")
            pytest.fail(f"pip install -r runners/requirements.txt failed: {last}")
        (tmp / "KEY").write_text(key + "\n")
        if CACHE.exists():
            shutil.rmtree(CACHE, ignore_errors=True)
        try:
            os.replace(tmp, CACHE)
        except OSError:  # another process installed it meanwhile; use ours from its temporary place
            return tmp
        return CACHE
    except BaseException:
        if tmp.exists() and tmp != CACHE:
            shutil.rmtree(tmp, ignore_errors=True)
        raise


def test_packaged_runner_in_torch_free_venv(tmp_path: Path) -> None:
    venv = runner_venv()
    python = str(_bin(venv, "python"))
    env = _clean_env()

    proc = subprocess.run([python, "-c", "import torch"], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode != 0, "torch is importable in the runner-only venv"
    proc = subprocess.run([python, "-c", "import runners"], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=120)
    assert proc.returncode != 0, "the runners package must come from the zipapp, not from the environment"

    bundle = tmp_path / "bundle"
    build_bundle(bundle, with_runner=True)
    out = tmp_path / "r.json"
    proc = subprocess.run([python, str(bundle / "runner"), "bench", str(bundle), "--out", str(out),
                           "--min-runs", "8", "--min-seconds", "0", "--warmup", "1", "--threads", "1"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    result = json.loads(out.read_text())
    assert result["schema"] == "edgeprune.result/1"
    assert result["bundle"] == json.loads((bundle / "manifest.json").read_text())["bundle_id"]
    assert result["settings"]["threads"] == 1
    # two files and the A/A control, each measured once in a fresh process that found runners inside the zipapp
    assert [m["status"] for m in result["models"]] == ["ok", "ok", "ok"]
    assert all(m["memory_mb"]["isolation"] == "process" for m in result["models"])
    for m in result["models"]:
        assert m["accuracy"] == expected_accuracy(bundle, m["file"])
        assert m["latency_ms"]["n"] >= 8 and m["latency_ms"]["p50"] > 0
    assert result["device"]["onnxruntime"] and "CPUExecutionProvider" in result["device"]["providers"]

    # A wrong-schema manifest through the packaged runner: exit 2, one sentence, nothing written.
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["schema"] = "edgeprune.manifest/999"
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    out2 = tmp_path / "r2.json"
    proc = subprocess.run([python, str(bundle / "runner"), "bench", str(bundle), "--out", str(out2)],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert proc.returncode == 2 and "edgeprune.manifest/999" in proc.stderr and "Traceback" not in proc.stderr
    assert not out2.exists()
