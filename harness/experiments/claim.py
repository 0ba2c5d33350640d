"""One writer per run folder: a process claims a folder before it writes there, across threads, processes and
machines that share the runs folder.

The claim is an exclusive `flock` on `<folder>/.claim`. The kernel drops it when the holder's process ends in any
way, SIGKILL included, so a killed worker leaves no claim behind, only what its atomic writes leave: finished files
and no `variant.json` for the unfinished run. Whoever claims the folder next removes the temporary files those
writes left (`.<name>.<random>.tmp`, runners.files.atomic_path) and resumes. Written with fcntl rather than the
`filelock` package because a claim must never turn into a lock file that outlives a killed process, which
filelock's soft-lock fallback does. On NFS (v4, or v3 with lockd) Linux maps flock onto byte-range locks, which
hold across machines; a filesystem without locks (sshfs) makes the claim fail with one sentence.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
from pathlib import Path
from typing import Iterable, Iterator

from harness.errors import EdgepruneError

CLAIM_FILE = ".claim"


def _lock(fd: int, blocking: bool) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        return True
    except BlockingIOError:
        return False


@contextlib.contextmanager
def claim(folder: Path, label: str = "", quiet: bool = True) -> Iterator[Path]:
    """Hold the folder's claim for the block; wait (blocking) while another process holds it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / CLAIM_FILE, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            got = _lock(fd, blocking=False)
            if not got:
                if not quiet:
                    print(f"  waiting for {label or folder}: another process is writing it", file=sys.stderr)
                _lock(fd, blocking=True)
        except OSError as exc:          # ENOLCK and friends: a filesystem without locks
            raise EdgepruneError(f"the runs folder {folder} cannot be locked ({exc.strerror}); put the runs folder "
                                 f"on a local disk or a filesystem with working locks (NFSv4).") from exc
        yield folder
    finally:
        os.close(fd)                    # closing the only descriptor releases the flock


def is_claimed(folder: Path) -> bool:
    """Whether another process holds the folder's claim now (for tests and diagnostics)."""
    path = Path(folder) / CLAIM_FILE
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDWR)
    try:
        if _lock(fd, blocking=False):
            return False
        return True
    finally:
        os.close(fd)


def remove_stale_temporaries(folders: Iterable[Path]) -> list[Path]:
    """Delete atomic-write temporaries (`.<name>.<random>.tmp`) directly in these folders; call only while holding
    the claim that covers them. Returns what was removed."""
    removed = []
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            continue
        for path in folder.glob(".*.tmp"):
            if path.is_file():
                path.unlink(missing_ok=True)
                removed.append(path)
    return removed

