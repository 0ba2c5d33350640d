"""Carried wheels: the runner's requirements as wheel files inside a bundle, per device platform and CPython
version, so ``runner install`` works on a device without network (runners/install.py).

    python -m exporters.wheels build/bundle --platform linux_x86_64,linux_aarch64 --python 3.9,3.10,3.11,3.12,3.13
    make wheels                                  # the same, with WHEEL_PLATFORMS / WHEEL_PYTHONS

For each target (platform x Python) pip downloads the requirements plus pip itself (the device bootstraps its venv
with it, so it needs neither network nor ensurepip) into a cache keyed by requirements.txt, then the files are
copied to ``wheels/<target>/`` and listed with their sha256 in ``wheels/index.json`` (``edgeprune.wheels/1``,
runners.contract). A target PyPI has no wheels for (linux_armv7l: no onnxruntime or numpy wheels) gets one sentence
in the index's ``unavailable`` and on stderr; the others are still added.

Why several --platform tags at once: pip takes the listed tags as the device's whole compatibility set, and with one
manylinux tag it either finds nothing or an onnxruntime below the runner's floor; the four below cover every wheel
these packages ship for glibc 2.17 to 2.28 (Debian 10+, Raspberry Pi OS bullseye+, Ubuntu 18.10+).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Sequence

import click

from runners.contract import WHEELS_INDEX, WHEELS_SCHEMA, ContractError, validate_wheel_index, wheel_target
from runners.files import atomic_write, sha256_file

REPO = Path(__file__).resolve().parents[1]
REQUIREMENTS = REPO / "runners" / "requirements.txt"
DEFAULT_CACHE = REPO / "build" / "wheel-cache"
PYTHONS = ("3.9", "3.10", "3.11", "3.12", "3.13")
# pip --platform tags per device platform: what a device of that platform accepts, newest first.
PLATFORM_TAGS = {
    "linux_x86_64": ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux2014_x86_64",
                     "manylinux_2_17_x86_64"),
    "linux_aarch64": ("manylinux_2_28_aarch64", "manylinux_2_27_aarch64", "manylinux2014_aarch64",
                      "manylinux_2_17_aarch64"),
    "linux_armv7l": ("manylinux_2_31_armv7l", "manylinux_2_28_armv7l", "manylinux_2_17_armv7l",
                     "manylinux2014_armv7l", "linux_armv7l"),
}
COMPLETE = "complete.json"   # written last into a cache folder: its download finished


class WheelsError(Exception):
    """A request that cannot be served at all (unknown platform, unreadable bundle); one sentence."""


@dataclass
class TargetResult:
    target: str
    files: list[Path] = field(default_factory=list)
    unavailable: str | None = None      # one sentence when there are no wheels for this target


def requirement_names(requirements: Path = REQUIREMENTS) -> list[str]:
    """Distribution names of a requirements file (normalised as in wheel file names), plus pip."""
    names = []
    for line in requirements.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            names.append(_normalise(re.split(r"[<>=!~;\[ ]", line, maxsplit=1)[0]))
    return names + ["pip"]


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def wheel_name(path: Path) -> tuple[str, str]:
    """numpy-2.0.2-cp39-cp39-manylinux...whl -> ("numpy", "2.0.2")."""
    name, version = path.name.split("-")[:2]
    return _normalise(name), version


def requirements_key(requirements: Path = REQUIREMENTS) -> str:
    return hashlib.sha256(requirements.read_bytes()).hexdigest()


def _unavailable_sentence(pip_output: str, platform: str, python: str) -> str:
    """pip's "No matching distribution found for onnxruntime>=1.18" as one sentence about the target."""
    m = re.search(r"No matching distribution found for ([^\s]+)", pip_output)
    if m:
        return (f"PyPI has no wheel of {m.group(1)} for {platform} and CPython {python}, so this bundle carries none "
                f"for it (on such a device build onnxruntime from source, or use a 64-bit OS)")
    lines = [ln.strip() for ln in pip_output.splitlines() if ln.strip().startswith("ERROR")]
    last = (lines or [ln.strip() for ln in pip_output.splitlines() if ln.strip()] or ["no output"])[-1]
    return f"pip could not download the wheels for {platform} and CPython {python}: {last}"


def download(platform: str, python: str, cache: Path, requirements: Path = REQUIREMENTS) -> TargetResult:
    """The wheels of one target, from the cache when a finished download is there, else with pip download."""
    target = wheel_target(platform.split("_", 1)[1], python, platform.split("_", 1)[0])
    folder = cache / requirements_key(requirements)[:16] / target
    marker = folder / COMPLETE
    if marker.is_file():
        listed = json.loads(marker.read_text())
        if listed.get("unavailable"):
            return TargetResult(target, unavailable=listed["unavailable"])
        files = [folder / name for name in listed["files"]]
        if all(f.is_file() for f in files):
            return TargetResult(target, files)
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--only-binary=:all:",
           "--implementation", "cp", "--python-version", python, "-d", str(folder), "-r", str(requirements), "pip"]
    for tag in PLATFORM_TAGS[platform]:
        cmd += ["--platform", tag]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sentence = _unavailable_sentence(proc.stdout + proc.stderr, platform, python)
        if "No matching distribution" in proc.stdout + proc.stderr:   # a fact about PyPI: remember it
            atomic_write(marker, lambda tmp: tmp.write_text(json.dumps({"unavailable": sentence})))
        return TargetResult(target, unavailable=sentence)
    files = sorted(folder.glob("*.whl"))
    found = {wheel_name(f)[0] for f in files}
    missing = [n for n in requirement_names(requirements) if n not in found]
    if missing:
        return TargetResult(target, unavailable=f"pip downloaded no wheel of {', '.join(missing)} for {target}")
    atomic_write(marker, lambda tmp: tmp.write_text(json.dumps({"files": [f.name for f in files]})))
    return TargetResult(target, files)


def _read_index(bundle: Path) -> dict:
    path = bundle / WHEELS_INDEX
    if not path.is_file():
        return {"schema": WHEELS_SCHEMA, "targets": {}, "unavailable": {}}
    try:
        return validate_wheel_index(json.loads(path.read_text()))
    except (ValueError, ContractError) as exc:
        raise WheelsError(f"{path} cannot be extended ({exc}); delete it and run the command again") from None


def add_wheels(bundle: Path, platforms: Sequence[str], pythons: Sequence[str], cache: Path = DEFAULT_CACHE,
               requirements: Path = REQUIREMENTS, progress=print) -> dict:
    """Add the wheels of every (platform, python) target to ``bundle/wheels/`` and update wheels/index.json
    (targets added before and not named now are kept). Returns the index."""
    bundle = Path(bundle)
    if not (bundle / "manifest.json").is_file():
        raise WheelsError(f"{bundle} is not an edgeprune bundle (it has no manifest.json); run make export first")
    unknown = [p for p in platforms if p not in PLATFORM_TAGS]
    if unknown:
        raise WheelsError(f"unknown platform {', '.join(unknown)}; choose from {', '.join(PLATFORM_TAGS)}")
    bad = [v for v in pythons if not re.fullmatch(r"3\.\d{1,2}", v)]
    if bad:
        raise WheelsError(f"Python version {', '.join(bad)} is not of the form 3.N (e.g. 3.11)")
    if (bundle / "requirements.txt").is_file() and (bundle / "requirements.txt").read_bytes() != requirements.read_bytes():
        raise WheelsError(f"{bundle / 'requirements.txt'} differs from {requirements}; export the bundle again")
    index = _read_index(bundle)
    for platform in platforms:
        for python in pythons:
            result = download(platform, python, Path(cache), requirements)
            dest = bundle / "wheels" / result.target
            if dest.exists():
                shutil.rmtree(dest)
            index["targets"].pop(result.target, None)
            index["unavailable"].pop(result.target, None)
            if result.unavailable:
                index["unavailable"][result.target] = result.unavailable
                progress(f"{result.target}: {result.unavailable}.")
                continue
            dest.mkdir(parents=True)
            entries = []
            for src in result.files:
                shutil.copyfile(src, dest / src.name)
                name, version = wheel_name(src)
                entries.append({"path": f"wheels/{result.target}/{src.name}", "name": name, "version": version,
                                "bytes": src.stat().st_size, "sha256": sha256_file(dest / src.name)})
            index["targets"][result.target] = {"platform": platform, "python": python,
                                               "pip_platform_tags": list(PLATFORM_TAGS[platform]), "files": entries}
            versions = {e["name"]: e["version"] for e in entries}
            progress(f"{result.target}: {len(entries)} wheels, {sum(e['bytes'] for e in entries) / 1e6:.1f} MB "
                     f"(onnxruntime {versions.get('onnxruntime')}, numpy {versions.get('numpy')})")
    index.update(schema=WHEELS_SCHEMA, requirements_sha256=requirements_key(requirements),
                 created=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    atomic_write(bundle / WHEELS_INDEX, lambda tmp: tmp.write_text(json.dumps(index, indent=2) + "\n"))
    return index


def _split(values: Iterable[str]) -> list[str]:
    return [v.strip() for value in values for v in value.replace(" ", ",").split(",") if v.strip()]


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--platform", "platforms", multiple=True, default=("linux_x86_64", "linux_aarch64"), show_default=True,
              help=f"Device platforms, repeatable or comma-separated: {', '.join(PLATFORM_TAGS)}.")
@click.option("--python", "pythons", multiple=True, default=PYTHONS, show_default=True,
              help="CPython versions of the device, repeatable or comma-separated.")
@click.option("--cache", type=click.Path(path_type=Path), default=DEFAULT_CACHE, show_default=True,
              help="Downloads are kept here, keyed by requirements.txt, so a second bundle needs no network.")
def main(bundle: Path, platforms: tuple[str, ...], pythons: tuple[str, ...], cache: Path) -> None:
    """Add the runner's wheels for the named device platforms and Pythons to BUNDLE (wheels/, wheels/index.json)."""
    try:
        index = add_wheels(bundle, _split(platforms), _split(pythons), cache,
                           progress=lambda line: click.echo(line, err=True))
    except WheelsError as exc:
        raise click.UsageError(f"{exc}.") from None
    click.echo(f"{bundle / WHEELS_INDEX}: {len(index['targets'])} targets with wheels, "
               f"{len(index['unavailable'])} without", err=True)


if __name__ == "__main__":  # pragma: no cover
    main()
