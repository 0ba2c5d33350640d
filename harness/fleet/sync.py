"""Copying a bundle to a device, sending only the files whose sha256 the device does not already hold.

The file list is the bundle's own (runners.bundle.owned_files: the manifest, the files it lists, the runner and its
install script, the carried wheels and their index), each hashed here once per fleet run. The device answers with
what it holds (harness.fleet.device_side ``inventory``); only the rest is sent, over the same ssh connection, in
one stream, the manifest last, each file checked against its sha256 on the device before it takes its name. A copy
that was cut off resumes at the byte where it stopped. Not rsync: it needs nothing on the device but Python, which
the runner needs anyway.
"""

from __future__ import annotations

import base64
import json
import shlex
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Callable, Sequence

from harness.errors import EdgepruneError
from harness.fleet import device_side
from runners.bundle import load_manifest, owned_files
from runners.errors import BundleError
from runners.files import sha256_file
from runners.package import RUNNER_FILES
from runners.safety import OutsideBundle, confine

MANIFEST = "manifest.json"
MODEL_FOLDER = "models/"
INSTALL_INPUTS = ("requirements.txt", "wheels/")   # a change here means the device's venv is installed again


@dataclass(frozen=True)
class BundleFile:
    path: str          # bundle-relative, '/'-separated
    bytes: int
    sha256: str
    executable: bool = False

    def as_request(self) -> dict:
        return {"path": self.path, "bytes": self.bytes, "sha256": self.sha256}


@dataclass(frozen=True)
class Send:
    file: BundleFile
    offset: int = 0     # bytes an interrupted copy already left on the device

    @property
    def bytes(self) -> int:
        return self.file.bytes - self.offset


@dataclass
class Sent:
    files: int = 0
    bytes: int = 0
    model_files: int = 0
    pruned: int = 0
    paths: tuple[str, ...] = ()


def bundle_files(bundle: Path) -> list[BundleFile]:
    """Every file of the bundle, hashed, the manifest last; EdgepruneError when the bundle is not whole (a file the
    manifest lists is missing or does not match its sha256: the device would refuse it anyway)."""
    try:
        manifest = load_manifest(bundle)
    except BundleError as exc:
        raise EdgepruneError(str(exc)) from None
    listed = {f["path"]: f["sha256"] for m in manifest["models"] for f in m.get("files", [])}
    listed.update({e["path"]: e["sha256"] for e in manifest.get("evals", {}).values()})
    files = []
    for path in owned_files(bundle, manifest):
        rel = path.relative_to(bundle).as_posix()
        try:
            real = confine(bundle, rel)
        except OutsideBundle as exc:
            raise EdgepruneError(f"the bundle's file {exc}, so it is not copied to any device.") from None
        if not real.is_file():
            if rel in RUNNER_FILES or rel in listed:
                raise EdgepruneError(f"{bundle / rel} is missing, so {bundle} is not a whole bundle; export again.")
            continue
        digest = sha256_file(real)
        if rel in listed and listed[rel] != digest:
            raise EdgepruneError(f"{bundle / rel} does not match its sha256 in the manifest, so {bundle} is not the "
                                 f"bundle it says; export again.")
        files.append(BundleFile(rel, real.stat().st_size, digest, executable=rel == "runner"))
    return sorted(files, key=lambda f: (f.path == MANIFEST, f.path))


def remote_program(command: str, root: str, python: str = "python3", args: Sequence[str] = ()) -> str:
    """The remote shell command that runs device_side's ``command`` on ``root``: its source travels compressed in
    the command line (base64: no quote or newline for any login shell to misread), so the device needs nothing
    installed."""
    source = Path(device_side.__file__).read_bytes()
    blob = base64.b64encode(zlib.compress(source, 9)).decode("ascii")
    return f"{shlex.quote(python)} -c 'import base64,zlib;exec(zlib.decompress(base64.b64decode(\"{blob}\")))' " \
           f"{command} {shlex.quote(root)}" + "".join(f" {shlex.quote(arg)}" for arg in args)


def inventory_request(files: Sequence[BundleFile]) -> bytes:
    return json.dumps({"files": [f.as_request() for f in files]}).encode()


def plan(files: Sequence[BundleFile], held: dict) -> list[Send]:
    """What to send, given the device's inventory: every file it does not hold, from where a cut-off copy stopped."""
    by_path = {f["path"]: f for f in held.get("files", [])}
    sends = []
    for f in files:
        state = by_path.get(f.path, {})
        if not state.get("have"):
            offset = state.get("offset", 0)
            sends.append(Send(f, offset if isinstance(offset, int) and 0 <= offset < f.bytes else 0))
    return sends


def needs_install(sends: Sequence[Send]) -> bool:
    return any(s.file.path == p or (p.endswith("/") and s.file.path.startswith(p))
               for s in sends for p in INSTALL_INPUTS)


def stream(bundle: Path, sends: Sequence[Send], keep: Sequence[str],
           progress: Callable[[int], None] | None = None) -> Callable[[IO[bytes]], None]:
    """The writer of device_side ``receive``'s input: per file a header line and its bytes from the offset, then the
    end line naming every file the bundle keeps."""
    def feed(pipe: IO[bytes]) -> None:
        for send in sends:
            header = {**send.file.as_request(), "offset": send.offset, "executable": send.file.executable}
            pipe.write(json.dumps(header).encode() + b"\n")
            with open(confine(bundle, send.file.path), "rb") as fh:    # a link swapped in since the hashing
                fh.seek(send.offset)
                left = send.bytes
                while left:
                    block = fh.read(min(1 << 20, left))
                    if not block:
                        raise EdgepruneError(f"{bundle / send.file.path} became shorter while it was being sent.")
                    pipe.write(block)
                    left -= len(block)
                    if progress is not None:
                        progress(len(block))
        pipe.write(json.dumps({"end": True, "keep": list(keep)}).encode() + b"\n")
        pipe.flush()
    return feed


def summarize(sends: Sequence[Send], answers: Sequence[dict], sent_bytes: int) -> Sent:
    """What arrived, from the device's per-file answers (a file that failed its sha256 check is not counted as
    arrived; its bytes were sent all the same)."""
    ok = {a["path"] for a in answers if a.get("ok")}
    end = next((a for a in answers if a.get("end")), {})
    arrived = [s for s in sends if s.file.path in ok]
    return Sent(files=len(arrived), bytes=sent_bytes,
                model_files=sum(1 for s in arrived if s.file.path.startswith(MODEL_FOLDER)),
                pruned=int(end.get("pruned", 0)), paths=tuple(s.file.path for s in arrived))
