"""What the packaged runner opens, sends and leaves behind, seen from outside the process (issue 14, criteria 2 and 4).

* A bundle whose models/ folder, one model file and the eval set are symbolic links to files outside it: nothing
  outside the bundle is opened, checked by Python's audit hook on every ``open`` and, where strace is installed, by
  the kernel's view of every open(2) (which also sees onnxruntime's own, native opens).
* ``runner bench`` for more than 20 s makes no DNS query and no connection (strace on connect/sendto/sendmsg, in a
  network namespace of its own where this machine allows one, so nothing could leave even if the check failed) and
  creates nothing under the user's home (a temporary, empty $HOME).

The runner is started as a device starts it: ``python3 BUNDLE/runner bench ...``, with none of onnxruntime's
opt-out variables and none of the CI variables onnxruntime also treats as an opt-out (.ci/run sets CI=true), so the
runner's own switch is what is tested.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [p for p in (str(REPO), str(REPO / "tests")) if p not in sys.path]

from runner_fixtures import build_bundle  # noqa: E402

STRACE = shutil.which("strace")
# Variables onnxruntime reads as "do not send telemetry" (its own switches and the CI markers it honours).
OPT_OUTS = ("ORT_DISABLE_TELEMETRY", "ORT_TELEMETRY_DISABLED", "ORT_RUNNING_UNIT_TESTS", "CI", "TF_BUILD",
            "GITHUB_ACTIONS", "GITLAB_CI", "CIRCLECI", "TRAVIS", "JENKINS_URL", "CODEBUILD_BUILD_ID", "BUILDKITE",
            "TEAMCITY_VERSION", "APPVEYOR", "BITBUCKET_BUILD_NUMBER", "SYSTEM_TEAMFOUNDATIONCOLLECTIONURI")


def device_env(home: Path, **extra: str) -> dict[str, str]:
    """A device's environment: a fresh $HOME, no cache folder of the host, no opt-out set by anyone but the runner."""
    env = {k: v for k, v in os.environ.items() if k not in OPT_OUTS and k not in ("PYTHONPATH", "XDG_CACHE_HOME")}
    env.update(HOME=str(home), **extra)
    return env


def own_network_namespace() -> list[str]:
    """``unshare -n`` where it works here (root, or user namespaces): the process then has no network at all."""
    if shutil.which("unshare") and subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0:
        return ["unshare", "-n"]
    return []


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# ------------------------------------------------------------------------------------------- criterion 2
AUDIT = r'''
import runpy, sys
log = open(sys.argv[1], "w")
def hook(event, args):
    if event == "open" and isinstance(args[0], (str, bytes)):
        log.write((args[0].decode(errors="replace") if isinstance(args[0], bytes) else args[0]) + "\n")
        log.flush()
sys.addaudithook(hook)
sys.argv = sys.argv[2:]
runpy.run_path(sys.argv[0], run_name="__main__")
'''


@pytest.fixture
def linked_bundle(tmp_path: Path) -> tuple[Path, Path]:
    """(bundle, outside): models/ is a link to outside/models, where toy-0.onnx is itself a link to another file
    outside, and eval/toy.npz is a link to outside/toy.npz."""
    bundle, outside = tmp_path / "bundle", tmp_path / "outside"
    build_bundle(bundle, with_runner=True)
    outside.mkdir()
    shutil.move(bundle / "models", outside / "models")
    (bundle / "models").symlink_to(outside / "models", target_is_directory=True)
    shutil.move(outside / "models/toy-0.onnx", outside / "secret.onnx")
    (outside / "models/toy-0.onnx").symlink_to(outside / "secret.onnx")
    shutil.move(bundle / "eval/toy.npz", outside / "toy.npz")
    (bundle / "eval/toy.npz").symlink_to(outside / "toy.npz")
    return bundle, outside


def opened_outside(paths: list[str], cwd: Path, outside: Path) -> list[str]:
    real_outside = os.path.realpath(outside)
    hits = []
    for path in paths:
        real = os.path.realpath(os.path.join(cwd, path))
        if real == real_outside or real.startswith(real_outside + os.sep) or str(outside) in path:
            hits.append(path)
    return hits


def bench_args(bundle: Path, out: Path, *extra: str) -> list[str]:
    return [str(bundle / "runner"), "bench", str(bundle), "--out", str(out), "--min-runs", "3", "--min-seconds", "0",
            "--warmup", "0", *extra]


def test_nothing_outside_the_bundle_is_opened_python_audit(linked_bundle, tmp_path: Path) -> None:
    bundle, outside = linked_bundle
    log, out = tmp_path / "opened.txt", tmp_path / "r.json"
    proc = subprocess.run([sys.executable, "-c", AUDIT, str(log), *bench_args(bundle, out)], cwd=tmp_path,
                          env=device_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    opened = log.read_text().splitlines()
    assert any(p.endswith("manifest.json") for p in opened)      # the hook sees the runner's opens
    assert opened_outside(opened, tmp_path, outside) == []
    entries = json.loads(out.read_text())["models"]
    assert all(m["status"] == "error" and "outside the bundle" in m["error"] for m in entries)
    assert all(m["sha256_ok"] is None and m["disk_bytes"] is None for m in entries)


@pytest.mark.skipif(not STRACE, reason="strace is not installed (.ci/run installs it)")
def test_nothing_outside_the_bundle_is_opened_strace(linked_bundle, tmp_path: Path) -> None:
    """The kernel's view: every open(2) of the runner and of onnxruntime's native code."""
    bundle, outside = linked_bundle
    trace, out = tmp_path / "open.trace", tmp_path / "r.json"
    proc = subprocess.run([STRACE, "-f", "-qq", "-e", "trace=open,openat,openat2,creat", "-o", str(trace),
                           sys.executable, *bench_args(bundle, out)], cwd=tmp_path, env=device_env(tmp_path),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    opened = re.findall(r'open\w*\((?:AT_FDCWD, |\d+, )?"([^"]*)"', trace.read_text())
    assert any(p.endswith("manifest.json") for p in opened)
    assert opened_outside(opened, tmp_path, outside) == []


# ------------------------------------------------------------------------------------------- criterion 4
def test_bench_creates_nothing_under_home_and_records_telemetry_off(tmp_path: Path) -> None:
    """The runner switches onnxruntime's telemetry off before importing it: no device id, no event store under
    $HOME. The control run, where the user explicitly allows telemetry (ORT_DISABLE_TELEMETRY=0, respected), shows
    that this onnxruntime would otherwise write there, so the check can fail."""
    bundle = tmp_path / "bundle"
    build_bundle(bundle, with_runner=True)
    for name, extra in (("default", {}), ("allowed", {"ORT_DISABLE_TELEMETRY": "0"})):
        home = tmp_path / f"home-{name}"
        home.mkdir()
        out = tmp_path / f"{name}.json"
        proc = subprocess.run([sys.executable, *bench_args(bundle, out)], cwd=tmp_path,
                              env=device_env(home, **extra), capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        telemetry = json.loads(out.read_text())["telemetry"]
        if name == "default":
            assert files_under(home) == []
            assert telemetry["switched_off"] is True and telemetry["set_before_onnxruntime_import"] is True
            assert telemetry["environment"]["ORT_DISABLE_TELEMETRY"] == "1" and telemetry["set_by_user"] == []
        else:
            assert telemetry["switched_off"] is False and telemetry["set_by_user"] == ["ORT_DISABLE_TELEMETRY"]
            control = files_under(home)
    if not any("deviceid" in p for p in control):
        pytest.skip(f"this onnxruntime writes no device id even when allowed ({control}): the check cannot fail here")


NETWORK_CALL = re.compile(r"\b(connect|sendto|sendmsg|sendmmsg)\(.*sa_family=AF_INET6?\b")


@pytest.mark.skipif(not STRACE, reason="strace is not installed (.ci/run installs it)")
def test_long_bench_makes_no_dns_query_or_connection(tmp_path: Path) -> None:
    """More than 20 s of runner bench (onnxruntime's uploader starts after about 8 s): no connect, sendto or
    sendmsg to an internet address, DNS (port 53) included, and nothing under $HOME."""
    bundle, home = tmp_path / "bundle", tmp_path / "home"
    build_bundle(bundle, with_runner=True)
    home.mkdir()
    trace, out = tmp_path / "net.trace", tmp_path / "r.json"
    cmd = [*own_network_namespace(), STRACE, "-f", "-qq", "-e", "trace=connect,sendto,sendmsg,sendmmsg",
           "-o", str(trace), sys.executable, str(bundle / "runner"), "bench", str(bundle), "--out", str(out),
           "--min-seconds", "10.5", "--min-runs", "10", "--warmup", "1",
           "--rounds", "1", "--no-aa-control"]     # one round: each file's 10.5 s window beside the reference's
    proc = subprocess.run(cmd, cwd=tmp_path, env=device_env(home), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert [m["status"] for m in result["models"]] == ["ok", "ok"]
    assert result["settings"]["min_seconds"] * len(result["models"]) > 20     # timed calls alone last > 20 s
    calls = [line for line in trace.read_text().splitlines() if NETWORK_CALL.search(line)]
    assert calls == [], calls[:5]
    assert files_under(home) == []
