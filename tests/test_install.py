"""The offline device bundle (exporters/wheels.py, runners/install.py): carried wheels listed with their sha256, the
install script's choice between them and the registry, one sentence for each way it can fail with nothing lost,
and the real thing: the bundle's zipapp installed with pip --no-index and benched under every CPython 3.9-3.13
this machine has (each skipped where its interpreter is missing).

The real wheels are downloaded once into build/wheel-cache (keyed by requirements.txt; about 40 MB per Python);
with the cache filled, installing and benching takes about 10 s per Python.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from exporters import wheels  # noqa: E402
from runner_fixtures import build_bundle, expected_accuracy  # noqa: E402
from runners.contract import WHEELS_INDEX, wheel_target  # noqa: E402
from runners.install import this_target  # noqa: E402

PYTHONS = ("3.9", "3.10", "3.11", "3.12", "3.13")


def find_python(version: str) -> str | None:
    """A working interpreter of that CPython version: pyenv's, else pythonX.Y on PATH (a pyenv shim for a version
    that is not selected is on PATH but does not run, hence the check)."""
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates = [str(p) for p in sorted(root.glob(f"{version}.*/bin/python{version}"))] if root.is_dir() else []
    candidates += [found for found in [shutil.which(f"python{version}")] if found]
    for python in candidates:
        proc = subprocess.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                              capture_output=True, text=True, timeout=60)
        if proc.returncode == 0 and proc.stdout.strip() == version:
            return python
    return None


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PYTHONNOUSERSITE"] = "1"
    return env


def install(python: str, bundle: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([python, str(bundle / "runner"), "install", *args], capture_output=True, text=True,
                          env=clean_env(), timeout=600)


def fake_wheels(bundle: Path, target: str, damaged: str | None = None) -> None:
    """An index for ``target`` listing two small files (one with a wrong sha256 if ``damaged`` names it)."""
    folder = bundle / "wheels" / target
    folder.mkdir(parents=True)
    files = []
    for name in ("numpy-2.0.0-cp3-none-any.whl", "pip-25.0-py3-none-any.whl"):
        (folder / name).write_bytes(name.encode())
        digest = hashlib.sha256(name.encode()).hexdigest()
        files.append({"path": f"wheels/{target}/{name}", "sha256": "0" * 64 if name == damaged else digest})
    index = {"schema": "edgeprune.wheels/1", "targets": {target: {"files": files}},
             "unavailable": {"linux_armv7l-cp311": "PyPI has no wheel of onnxruntime>=1.18 for linux_armv7l"},
             "requirements_sha256": hashlib.sha256((bundle / "requirements.txt").read_bytes()).hexdigest()}
    (bundle / WHEELS_INDEX).write_text(json.dumps(index))


@pytest.fixture()
def bundle(tmp_path: Path) -> Path:
    build_bundle(tmp_path / "bundle", with_runner=True)
    return tmp_path / "bundle"


def test_wheel_target_names() -> None:
    assert wheel_target("aarch64", (3, 11)) == "linux_aarch64-cp311"
    assert wheel_target("arm64", "3.9") == "linux_aarch64-cp39"
    assert wheel_target("AMD64", "3.13") == "linux_x86_64-cp313"
    assert this_target() == wheel_target(os.uname().machine, sys.version_info[:2])


# ------------------------------------------------------------------------------------------- install failures
def _one_sentence(proc: subprocess.CompletedProcess, words: str) -> None:
    assert "Traceback" not in proc.stderr
    assert any(words in ln for ln in proc.stderr.splitlines()), proc.stderr


def test_a_damaged_wheel_is_one_sentence_and_the_old_venv_is_kept(bundle: Path) -> None:
    target = this_target()
    fake_wheels(bundle, target, damaged="numpy-2.0.0-cp3-none-any.whl")
    old = bundle / ".venv"
    old.mkdir()
    (old / "keep-me").write_text("an environment that worked")
    proc = install(sys.executable, bundle, "--offline")
    assert proc.returncode == 3
    _one_sentence(proc, f"carried wheel wheels/{target}/numpy-2.0.0-cp3-none-any.whl does not match its sha256")
    _one_sentence(proc, "nothing was installed: --offline was given and there are no usable carried wheels")
    assert (old / "keep-me").read_text() == "an environment that worked"
    assert sorted(p.name for p in bundle.iterdir()) == [".venv", "eval", "install.sh", "manifest.json", "models",
                                                          "requirements.txt", "runner", "wheels"]


def test_a_missing_platform_is_one_sentence(bundle: Path) -> None:
    fake_wheels(bundle, "linux_armv7l-cp99")
    proc = install(sys.executable, bundle, "--offline")
    assert proc.returncode == 3 and not (bundle / ".venv").exists()
    _one_sentence(proc, f"this bundle carries no wheels for this device ({this_target()}); it carries "
                        f"linux_armv7l-cp99")


def test_no_wheels_at_all_offline_and_a_bundle_that_is_not_one(bundle: Path, tmp_path: Path) -> None:
    proc = install(sys.executable, bundle, "--offline")
    assert proc.returncode == 3
    _one_sentence(proc, "carries no wheels (wheels/index.json is missing")
    (tmp_path / "empty").mkdir()
    proc = install(sys.executable, bundle, str(tmp_path / "empty"))
    assert proc.returncode == 2
    _one_sentence(proc, "is not an edgeprune bundle")


def test_wheels_for_another_requirements_file_are_not_used(bundle: Path) -> None:
    fake_wheels(bundle, this_target())
    (bundle / "requirements.txt").write_text("onnxruntime>=9\n")
    proc = install(sys.executable, bundle, "--offline")
    assert proc.returncode == 3
    _one_sentence(proc, "downloaded for another requirements.txt")


def test_the_zipapp_says_how_to_install_when_a_package_is_missing(bundle: Path, tmp_path: Path) -> None:
    """A Python without the requirements and no .venv beside the bundle: one sentence naming `runner install`."""
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True, timeout=120)
    proc = subprocess.run([str(bare / "bin" / "python"), str(bundle / "runner"), "bench", str(bundle), "--out",
                           str(tmp_path / "r.json")], capture_output=True, text=True, env=clean_env(), timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "missing Python package" in proc.stderr and f"{bundle / 'runner'} install" in proc.stderr


# ------------------------------------------------------------------------------------------- wheels command
def test_add_wheels_refuses_an_unknown_platform_and_a_bad_version(bundle: Path) -> None:
    with pytest.raises(wheels.WheelsError, match="unknown platform linux_sparc; choose from linux_x86_64"):
        wheels.add_wheels(bundle, ["linux_sparc"], ["3.11"])
    with pytest.raises(wheels.WheelsError, match="not of the form 3.N"):
        wheels.add_wheels(bundle, ["linux_x86_64"], ["311"])


def test_add_wheels_lists_every_file_with_its_sha256_and_keeps_other_targets(bundle: Path, tmp_path: Path,
                                                                              monkeypatch) -> None:
    def fake_download(platform, python, cache, requirements=wheels.REQUIREMENTS):
        target = wheel_target(platform.split("_", 1)[1], python)
        if platform == "linux_armv7l":
            return wheels.TargetResult(target, unavailable="PyPI has no wheel of onnxruntime>=1.18 for linux_armv7l")
        folder = tmp_path / "dl" / target
        folder.mkdir(parents=True, exist_ok=True)
        files = []
        for name in (f"numpy-2.0.2-cp{python.replace('.', '')}-x.whl", "pip-25.0-py3-none-any.whl"):
            (folder / name).write_bytes(name.encode())
            files.append(folder / name)
        return wheels.TargetResult(target, files)

    monkeypatch.setattr(wheels, "download", fake_download)
    lines: list[str] = []
    wheels.add_wheels(bundle, ["linux_x86_64"], ["3.9"], progress=lines.append)
    index = wheels.add_wheels(bundle, ["linux_aarch64", "linux_armv7l"], ["3.11"], progress=lines.append)
    assert set(index["targets"]) == {"linux_x86_64-cp39", "linux_aarch64-cp311"}
    assert index["unavailable"] == {"linux_armv7l-cp311": "PyPI has no wheel of onnxruntime>=1.18 for linux_armv7l"}
    for target in index["targets"].values():
        for f in target["files"]:
            assert hashlib.sha256((bundle / f["path"]).read_bytes()).hexdigest() == f["sha256"]
    assert any(line.startswith("linux_armv7l-cp311: PyPI has no wheel") for line in lines)
    assert json.loads((bundle / WHEELS_INDEX).read_text()) == index


def test_pip_messages_become_one_sentence() -> None:
    text = "ERROR: Could not find a version that satisfies ...\nERROR: No matching distribution found for numpy>=1.24"
    assert wheels._unavailable_sentence(text, "linux_armv7l", "3.11").startswith(
        "PyPI has no wheel of numpy>=1.24 for linux_armv7l and CPython 3.11")
    assert "pip could not download" in wheels._unavailable_sentence("ERROR: connection refused", "linux_x86_64", "3.9")


def test_a_reexport_keeps_the_carried_wheels(bundle: Path, tmp_path: Path) -> None:
    from exporters.bundle import carry_wheels
    from runners.bundle import carried_wheel_paths

    fake_wheels(bundle, "linux_x86_64-cp311")
    new = tmp_path / "new"
    shutil.copytree(bundle, new, ignore=shutil.ignore_patterns("wheels"))
    carry_wheels(bundle, new)
    assert carried_wheel_paths(new) == carried_wheel_paths(bundle) and len(carried_wheel_paths(new)) == 3
    other = tmp_path / "other"
    shutil.copytree(bundle, other, ignore=shutil.ignore_patterns("wheels"))
    (other / "requirements.txt").write_text("onnxruntime>=9\n")
    carry_wheels(bundle, other)
    assert not (other / "wheels").exists()


def test_exporting_over_a_bundle_with_carried_wheels_is_not_refused(bundle: Path) -> None:
    """The --out check (harness export) counts the carried wheels as the bundle's own files, a stray file not."""
    from harness.cli import _files_not_in_bundle

    fake_wheels(bundle, "linux_x86_64-cp311")
    assert _files_not_in_bundle(bundle) == []
    (bundle / "wheels" / "my-notes.txt").write_text("mine")
    assert _files_not_in_bundle(bundle) == ["wheels/my-notes.txt"]


# ------------------------------------------------------------------------------------------- the real thing
@pytest.mark.parametrize("version", PYTHONS)
def test_offline_install_and_bench_under_each_python(version: str, tmp_path: Path) -> None:
    python = find_python(version)
    if python is None:
        pytest.skip(f"no CPython {version} on this machine")
    bundle = tmp_path / "bundle"
    build_bundle(bundle, with_runner=True)
    index = wheels.add_wheels(bundle, ["linux_x86_64"], [version], progress=lambda line: None)
    target = wheel_target(os.uname().machine, version)
    if target not in index["targets"]:
        pytest.skip(f"no wheels for {target}: {index['unavailable'].get(target)}")
    proc = install(python, bundle, "--offline")
    assert proc.returncode == 0, proc.stderr
    assert f"for {target} from the carried wheels in wheels/{target} (pip --no-index)" in proc.stderr
    record = json.loads((bundle / ".venv" / "edgeprune-install.json").read_text())
    assert record["source"] == "carried-wheels" and record["python"].startswith(version)

    out = tmp_path / "r.json"   # the system interpreter: the zipapp moves itself into the venv it finds
    proc = subprocess.run([python, str(bundle / "runner"), "bench", str(bundle), "--out", str(out), "--min-runs", "5",
                           "--min-seconds", "0", "--warmup", "1"], capture_output=True, text=True, env=clean_env(),
                          cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert result["device"]["python"].startswith(version)
    assert result["device"]["install"]["source"] == "carried-wheels"
    for m in result["models"]:
        assert m["status"] == "ok" and m["accuracy"] == expected_accuracy(bundle, m["file"])
