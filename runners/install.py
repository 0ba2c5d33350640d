"""``runner install``: a venv beside the bundle holding the runner's requirements, so ``runner bench`` works on a
device with no network and under PEP 668 (Debian 12, Raspberry Pi OS bookworm refuse ``pip install`` into the
system Python).

Standard library only: it runs before numpy, onnxruntime, psutil or click exist (the zipapp's entry calls it before
importing them). What it does, in order:

1. This device's wheel target, ``linux_aarch64-cp311`` (runners.contract.wheel_target), and the bundle's
   ``wheels/index.json``.
2. Carried wheels for that target, every one checked against its sha256: installed with ``pip --no-index
   --find-links`` and the pip wheel carried beside them, so neither the network nor ensurepip (Debian's separate
   python3-venv package) is needed. Without a match (no wheels for this target, or a damaged one) it says so in one
   sentence and uses the package registry instead, unless ``--offline``.
3. The venv is built at its final path while an existing one waits beside it; if anything fails (pip, or the
   requirements do not import) the new one is removed and the old one put back, so nothing is lost or half-made.

Exit codes: 0 installed, 2 bad input (no such bundle), 3 nothing could be installed (runners.errors).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import venv
from pathlib import Path
from typing import Any, Sequence

from runners.contract import INSTALL_VENV, WHEELS_INDEX, ContractError, validate_wheel_index, wheel_target
from runners.errors import EXIT_BAD_INPUT, EXIT_INSTALL_FAILED, EXIT_OK
from runners.files import sha256_file

IMPORT_CHECK = "import click, numpy, onnxruntime, psutil; print(onnxruntime.__version__, numpy.__version__)"
INSTALL_RECORD = "edgeprune-install.json"    # in the venv: how it was made (device facts report it)


class InstallError(Exception):
    """Nothing could be installed; the message is one sentence."""


def say(line: str) -> None:
    print(f"runner install: {line}", file=sys.stderr, flush=True)


def venv_python(env: Path) -> Path:
    return env / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def this_target() -> str:
    system = sys.platform if sys.platform != "linux" else "linux"
    return wheel_target(platform.machine() or "unknown", sys.version_info[:2], system)


def read_index(bundle: Path) -> dict[str, Any] | None:
    """The bundle's carried-wheel index, or None (with one sentence) when it has none or it is unreadable."""
    path = bundle / WHEELS_INDEX
    if not path.is_file():
        say(f"{bundle} carries no wheels ({WHEELS_INDEX} is missing; 'make wheels' adds them).")
        return None
    try:
        return validate_wheel_index(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, ContractError) as exc:
        say(f"{path} cannot be used ({exc}), so the carried wheels are not used.")
        return None


def carried_wheels(bundle: Path, index: dict[str, Any] | None, target: str) -> Path | None:
    """The folder of checked wheels for ``target``, or None with one sentence saying why they are not used."""
    if index is None:
        return None
    wanted = index.get("requirements_sha256")
    if wanted and (bundle / "requirements.txt").is_file() and sha256_file(bundle / "requirements.txt") != wanted:
        say(f"the carried wheels were downloaded for another requirements.txt than this bundle's, so they are not "
            f"used (add them again with make wheels).")
        return None
    entry = index["targets"].get(target)
    if entry is None:
        why = (index.get("unavailable") or {}).get(target)
        have = ", ".join(sorted(index["targets"])) or "none"
        say(f"this bundle carries no wheels for this device ({target})"
            + (f": {why}" if why else f"; it carries {have}") + ".")
        return None
    folders = set()
    for f in entry["files"]:
        path = bundle / f["path"]
        if ".." in Path(f["path"]).parts or not path.is_file():
            say(f"carried wheel {f['path']} is missing, so the wheels for {target} are not used.")
            return None
        if sha256_file(path) != f["sha256"]:
            say(f"carried wheel {f['path']} does not match its sha256 in {WHEELS_INDEX} (damaged in the copy?), "
                f"so the wheels for {target} are not used.")
            return None
        folders.add(path.parent)
    if len(folders) != 1:
        say(f"{WHEELS_INDEX} spreads the wheels of {target} over several folders, so they are not used.")
        return None
    return folders.pop()


def _run(cmd: Sequence[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=env)


def _last_line(proc: subprocess.CompletedProcess) -> str:
    lines = [ln.strip() for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("ERROR")]
    return (errors or lines or ["no output"])[-1]


def _pip_wheel(folder: Path) -> Path | None:
    wheels = sorted(folder.glob("pip-*.whl"))
    return wheels[-1] if wheels else None


def _isolated_env() -> dict[str, str]:
    """The environment for an offline pip: no user or site pip configuration (an index, extra find-links or a
    constraints file there must not change what the carried wheels install)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") and k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
    return env


def install_from_wheels(env_dir: Path, requirements: Path, wheels: Path) -> None:
    """pip from the carried pip wheel (run as a zip, so the venv needs no ensurepip), --no-index."""
    pip = _pip_wheel(wheels)
    if pip is None:
        raise InstallError(f"the carried wheels in {wheels} hold no pip wheel to install them with")
    venv.EnvBuilder(with_pip=False, symlinks=os.name != "nt").create(env_dir)
    proc = _run([venv_python(env_dir), pip / "pip", "install", "--no-index", "--find-links", wheels,
                 "--no-cache-dir", "--quiet", "-r", requirements, pip], env=_isolated_env())
    if proc.returncode != 0:
        raise InstallError(f"pip could not install the carried wheels from {wheels}: {_last_line(proc)}")


def install_from_registry(env_dir: Path, requirements: Path, pip_wheels: Path | None) -> None:
    """The package registry, as the device's pip is configured (index, proxy); pip from ensurepip, else from a
    carried pip wheel."""
    has_ensurepip = _run([sys.executable, "-c", "import ensurepip"]).returncode == 0
    pip = _pip_wheel(pip_wheels) if pip_wheels else None
    if not has_ensurepip and pip is None:
        raise InstallError("this Python has no ensurepip (on Debian and Raspberry Pi OS: sudo apt install "
                           "python3-venv) and the bundle carries no pip for it")
    venv.EnvBuilder(with_pip=has_ensurepip, symlinks=os.name != "nt").create(env_dir)
    cmd = [venv_python(env_dir), "-m", "pip"] if has_ensurepip else [venv_python(env_dir), pip / "pip"]
    proc = _run([*cmd, "install", "--quiet", "-r", requirements] + ([] if has_ensurepip else [pip]))
    if proc.returncode != 0:
        raise InstallError(f"pip could not install {requirements.name} from the package registry: {_last_line(proc)}")


def install(bundle: Path, offline: bool = False, registry: bool = False, dest: Path | None = None) -> Path:
    """Install the runner's requirements into ``dest`` (default BUNDLE/.venv); returns it. Raises InstallError."""
    requirements = bundle / "requirements.txt"
    if not requirements.is_file():
        raise InstallError(f"{requirements} is missing, so {bundle} is not a complete edgeprune bundle")
    dest = dest or bundle / INSTALL_VENV
    target = this_target()
    wheels = None if registry else carried_wheels(bundle, read_index(bundle), target)
    if wheels is None and offline:
        raise InstallError(f"--offline was given and there are no usable carried wheels for {target}; add them on "
                           f"the workstation with: make wheels BUNDLE=... WHEEL_PLATFORMS={target.split('-')[0]} "
                           f"WHEEL_PYTHONS={sys.version_info[0]}.{sys.version_info[1]}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    # Built at its final path (a venv's scripts hold that path); an existing one waits beside it and comes back if
    # anything fails, so a failed install loses nothing.
    kept = dest.with_name(dest.name + ".old")
    if kept.exists():
        shutil.rmtree(kept)
    if dest.exists():
        dest.rename(kept)
    try:
        started = time.time()
        if wheels is not None:
            install_from_wheels(dest, requirements, wheels)
            how = f"the carried wheels in {wheels.relative_to(bundle)} (pip --no-index)"
        else:
            install_from_registry(dest, requirements, None)
            how = "the package registry"
        check = _run([venv_python(dest), "-c", IMPORT_CHECK], env=_isolated_env())
        if check.returncode != 0:
            raise InstallError(f"the new venv cannot import the runner's requirements: {_last_line(check)}")
        ort_version, numpy_version = check.stdout.split()[:2]
        record = {"source": "carried-wheels" if wheels is not None else "registry", "target": target,
                  "wheels": str(wheels.relative_to(bundle)) if wheels is not None else None,
                  "python": platform.python_version(), "onnxruntime": ort_version, "numpy": numpy_version,
                  "seconds": round(time.time() - started, 1)}
        (dest / INSTALL_RECORD).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        if kept.exists():
            kept.rename(dest)
        raise
    shutil.rmtree(kept, ignore_errors=True)
    say(f"installed onnxruntime {ort_version}, numpy {numpy_version} for {target} from {how} into {dest}.")
    return dest


def main(argv: Sequence[str] | None = None) -> int:
    here = Path(sys.argv[0]).resolve().parent
    parser = argparse.ArgumentParser(
        prog="runner install",
        description="Create a venv beside the bundle holding the runner's requirements: from the bundle's carried "
                    "wheels (pip --no-index) when they match this device, from the package registry otherwise.")
    parser.add_argument("bundle", nargs="?", type=Path, default=here,
                        help="the bundle folder (default: the folder holding this runner)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--offline", action="store_true", help="never use the package registry")
    group.add_argument("--registry", action="store_true", help="ignore carried wheels, install from the registry")
    parser.add_argument("--venv", type=Path, default=None, help=f"where the venv goes (default: BUNDLE/{INSTALL_VENV})")
    args = parser.parse_args(argv)
    bundle = args.bundle.resolve()
    if not (bundle / "manifest.json").is_file():
        say(f"{bundle} is not an edgeprune bundle (it has no manifest.json).")
        return EXIT_BAD_INPUT
    try:
        dest = install(bundle, offline=args.offline, registry=args.registry, dest=args.venv)
    except InstallError as exc:
        say(f"nothing was installed: {exc}.")
        return EXIT_INSTALL_FAILED
    say(f"run: {venv_python(dest)} {bundle / 'runner'} bench {bundle} --out result.json")
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
