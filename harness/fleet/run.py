"""``harness bench``: every device in parallel, each through the same four steps, each failure one sentence.

Per device, over one ssh connection (harness.fleet.ssh):

1. sync: the device lists what it holds, only the rest is sent (harness.fleet.sync);
2. install: ``runner install`` in the device's bundle folder when its venv is missing or the requirements or carried
   wheels changed (``install = offline`` adds --offline, ``registry`` --registry, ``skip`` never installs);
3. bench: ``runner bench`` with the device's options and ``--label NAME``, the result written on the device;
4. fetch: the result read back, checked against the result contract and written atomically to RESULTS/NAME.json.

A device that cannot be reached, fails to install or fails mid-run stops at that step with one sentence; what it
received stays on it (a cut-off copy resumes at its last byte), and every other device is still measured.
"""

from __future__ import annotations

import json
import shlex
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from harness.errors import EdgepruneError
from harness.fleet import sync
from harness.fleet.device_side import FLEET_DIR
from harness.fleet.devices import Device
from harness.fleet.ssh import EXIT_SSH_FAILED, Completed, Ssh
from runners.contract import ContractError, validate_result
from runners.files import JSONFileError, atomic_path, read_json
from runners.safety import terminal_safe

REMOTE_RESULT = f"{FLEET_DIR}/result.json"     # in the device's bundle folder: never a file of the bundle
MAX_PARALLEL = 16


class DeviceFailed(Exception):
    """One device's failure, as one sentence (without the device's name, which the summary puts first)."""


class DevicesFailed(EdgepruneError):
    """Some devices could not be measured (the others' results are written): exit code 1."""

    exit_code = 1


@dataclass
class Outcome:
    device: Device
    ok: bool = False
    sentence: str = ""
    sent: sync.Sent = field(default_factory=sync.Sent)
    result: Path | None = None
    measured: str = ""
    seconds: float = 0.0


class Reporter:
    """One line per step and device ("[pi4] sync: ..."), from every device's thread without interleaving."""

    def __init__(self, quiet: bool = False, echo: Callable[[str], None] | None = None):
        self.quiet = quiet
        self.echo = echo or (lambda line: print(line, file=sys.stderr, flush=True))
        self.lock = threading.Lock()

    def __call__(self, device: Device, text: str) -> None:
        if self.quiet:
            return
        with self.lock:
            self.echo(terminal_safe(f"[{device.name}] {text}"))


def megabytes(n: int) -> str:
    return f"{n:,} bytes" if n < 10**5 else f"{n:,} bytes ({n / 1e6:.1f} MB)"


def _failed_connection(proc: Completed, step: str) -> DeviceFailed:
    return DeviceFailed(f"lost the connection during {step} ({proc.last_line()})")


def _inventory(ssh: Ssh, files: Sequence[sync.BundleFile]) -> dict:
    device = ssh.device
    proc = ssh.run(sync.remote_program("inventory", device.path, device.python), feed=sync.inventory_request(files))
    if proc.returncode == EXIT_SSH_FAILED:
        raise _failed_connection(proc, "the sync")
    if proc.returncode == 127:
        raise DeviceFailed(f"the device has no {device.python} ({proc.last_line()}); install Python 3 there or name "
                           f"its interpreter with python = \"...\" in the devices file")
    if proc.returncode != 0:
        raise DeviceFailed(f"the device could not list its copy of the bundle ({proc.last_line()})")
    try:
        held = json.loads(proc.stdout.decode("utf-8").strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise DeviceFailed("the device's answer to the sync was not the expected JSON") from None
    if held.get("state") not in ("new", "bundle"):
        what = "a file" if held.get("state") == "not-a-folder" else "a folder of other files (no manifest.json)"
        raise DeviceFailed(f"{device.path} on the device is {what}, so no bundle is copied into it; name another "
                           f"folder in the address")
    return held


def _send(ssh: Ssh, bundle: Path, files: Sequence[sync.BundleFile], sends: Sequence[sync.Send],
          say: Callable[[str], None]) -> sync.Sent:
    device = ssh.device
    answers: list[dict] = []
    counted = [0]

    def on_answer(line: str) -> None:
        try:
            answer = json.loads(line)
        except ValueError:
            return
        answers.append(answer)
        if answer.get("path"):
            done = sum(1 for a in answers if a.get("path"))
            say(f"sync: {answer['path']} {'arrived' if answer.get('ok') else 'arrived DAMAGED'} "
                f"({done} of {len(sends)})")

    def progress(n: int) -> None:
        counted[0] += n

    feed = sync.stream(bundle, sends, [f.path for f in files], progress)
    proc = ssh.run(sync.remote_program("receive", device.path, device.python), feed=feed, on_stdout=on_answer)
    sent = sync.summarize(sends, answers, counted[0])
    if proc.returncode == EXIT_SSH_FAILED:
        raise DeviceFailed(f"lost the connection during the copy after {sent.files} of {len(sends)} files "
                           f"({proc.last_line()}); the files that arrived are kept and the next run resumes the copy")
    if proc.returncode != 0 or not any(a.get("end") for a in answers):
        raise DeviceFailed(f"the copy stopped after {sent.files} of {len(sends)} files ({proc.last_line()}); the files "
                           f"that arrived are kept and the next run resumes the copy")
    damaged = [s.file.path for s in sends if s.file.path not in sent.paths]
    if damaged:
        raise DeviceFailed(f"{len(damaged)} file(s) arrived damaged (their sha256 did not match), first {damaged[0]}; "
                           f"they were not kept, the next run sends them again")
    return sent


def _install(ssh: Ssh, say: Callable[[str], None]) -> None:
    device = ssh.device
    flag = {"offline": ["--offline"], "registry": ["--registry"]}.get(device.install, [])
    proc = ssh.run(sync.remote_program("supervise", device.path, device.python,
                                       [device.python, "runner", "install", ".", *flag]),
                   on_stderr=lambda line: say(f"install: {line.removeprefix('runner install: ')}"), hold_stdin=True)
    if proc.returncode == EXIT_SSH_FAILED:
        raise _failed_connection(proc, "the install")
    if proc.returncode != 0:
        raise DeviceFailed(f"the install failed ({proc.last_line().removeprefix('runner install: ')}); the bundle "
                           f"stays on the device, the next run installs again")


def _bench(ssh: Ssh, say: Callable[[str], None]) -> int:
    device = ssh.device
    options = " ".join(shlex.quote(arg) for arg in device.bench)
    command = (f"cd {shlex.quote(device.path)} && mkdir -p {shlex.quote(FLEET_DIR)} && "
               f"rm -f {shlex.quote(REMOTE_RESULT)} && "
               + sync.remote_program("supervise", ".", device.python,
                                     [device.python, "runner", "bench", ".", "--out", REMOTE_RESULT,
                                      "--label", device.name, *device.bench]))
    say(f"bench: runner bench{' ' + options if options else ''}")
    proc = ssh.run(command, on_stderr=lambda line: say(f"bench: {line}"), hold_stdin=True)
    if proc.returncode == EXIT_SSH_FAILED:
        raise _failed_connection(proc, "the bench")
    if proc.returncode not in (0, 1):      # 1: --strict and some file could not be measured; the result is written
        raise DeviceFailed(f"runner bench failed ({proc.last_line()}); the bundle stays on the device")
    return proc.returncode


def _fetch(ssh: Ssh, results: Path) -> tuple[Path, str]:
    device = ssh.device
    proc = ssh.run(f"cd {shlex.quote(device.path)} && cat {shlex.quote(REMOTE_RESULT)}")
    if proc.returncode == EXIT_SSH_FAILED:
        raise _failed_connection(proc, "the fetch")
    if proc.returncode != 0:
        raise DeviceFailed(f"the result could not be read on the device ({proc.last_line()})")
    dest = results / f"{device.name}.json"
    try:
        with atomic_path(dest) as tmp:
            tmp.write_bytes(proc.stdout)
            result = validate_result(read_json(tmp))
    except (JSONFileError, ContractError) as exc:
        raise DeviceFailed(f"the device's result {exc}, so it was not kept") from None
    n_error = sum(1 for m in result["models"] if m.get("status") != "ok")
    return dest, f"{len(result['models']) - n_error} file(s) measured ok, {n_error} error"


def bench_device(device: Device, bundle: Path, files: Sequence[sync.BundleFile], results: Path, control_dir: Path,
                 index: int, config: Path | None, connect_timeout: int, report: Reporter) -> Outcome:
    """Sync, install, bench and fetch one device; any failure becomes the outcome's one sentence."""
    started = time.perf_counter()
    outcome = Outcome(device)
    ssh = Ssh(device, control_dir / str(index), config=config, connect_timeout=connect_timeout)

    def say(text: str) -> None:
        report(device, text)

    step = "connecting"
    try:
        say(f"connecting to {device.describe()}")
        proc = ssh.connect()
        if proc.returncode != 0:
            raise DeviceFailed(f"could not connect to {device.describe()} ({proc.last_line()})")
        step = "the sync"
        held = _inventory(ssh, files)
        sends = sync.plan(files, held)
        say(f"sync: {len(files) - len(sends)} of {len(files)} files already there, sending {len(sends)} "
            f"({megabytes(sum(s.bytes for s in sends))}"
            + (f", {sum(1 for s in sends if s.offset)} resumed" if any(s.offset for s in sends) else "") + ")")
        if sends:
            outcome.sent = _send(ssh, bundle, files, sends, say)
        installing = device.install != "skip" and (not held.get("installed") or sync.needs_install(sends))
        if installing:
            step = "the install"
            _install(ssh, say)
        step = "the bench"
        code = _bench(ssh, say)
        step = "the fetch"
        outcome.result, outcome.measured = _fetch(ssh, results)
        say(f"result: {outcome.result} ({outcome.measured})")
        if code == 1:
            raise DeviceFailed(f"runner bench --strict: some files could not be measured (the result is in "
                               f"{outcome.result})")
        outcome.ok = True
    except DeviceFailed as exc:
        outcome.sentence = str(exc)
    except OSError as exc:
        outcome.sentence = f"failed during {step} ({exc.strerror or exc})"
    except Exception as exc:  # noqa: BLE001 - one device's surprise must not stop the others' measurements
        outcome.sentence = f"failed during {step} ({type(exc).__name__}: {exc})"
    finally:
        ssh.close()
        outcome.seconds = time.perf_counter() - started
    if not outcome.ok:
        say(f"failed: {outcome.sentence}")
    return outcome


def bench_fleet(devices: Sequence[Device], bundle: Path, results: Path, config: Path | None = None,
                connect_timeout: int = 10, report: Reporter | None = None) -> list[Outcome]:
    """Every device at once (threads: each one mostly waits on its ssh); outcomes in the devices' order."""
    report = report or Reporter()
    files = sync.bundle_files(bundle)
    results.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="edgeprune-ssh-") as control_dir:   # 0700: the sockets are ours only
        with ThreadPoolExecutor(max_workers=min(len(devices), MAX_PARALLEL)) as pool:
            futures = [pool.submit(bench_device, device, bundle, files, results, Path(control_dir), i, config,
                                   connect_timeout, report) for i, device in enumerate(devices)]
            return [f.result() for f in futures]


def summary(outcomes: Sequence[Outcome]) -> list[str]:
    """One line for the fleet, then one per device: what was sent and measured, or the one sentence of its
    failure."""
    failed = [o for o in outcomes if not o.ok]
    lines = [f"harness bench: {len(outcomes) - len(failed)} of {len(outcomes)} device(s) measured"
             + (f", {len(failed)} failed." if failed else ".")]
    for o in outcomes:
        sent = (f"sent {o.sent.files} file(s), {megabytes(o.sent.bytes)}, {o.sent.model_files} model file(s)"
                + (f", removed {o.sent.pruned} the bundle no longer lists" if o.sent.pruned else ""))
        if o.ok:
            lines.append(f"  {o.device.name}: ok in {o.seconds:.1f} s, {sent}; {o.measured} -> {o.result}")
        else:
            lines.append(f"  {o.device.name}: FAILED: {o.sentence}. ({sent})")
    return [terminal_safe(line) for line in lines]
