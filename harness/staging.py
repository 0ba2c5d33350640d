"""Folders that are written whole and then swapped in: the bundle (exporters.bundle) and the report
(harness.report.render).

The folder is written into a staging folder beside ``--out`` and swapped in at the end, so a reader never sees half
of it. Three things make that hold when a process is killed (kill -9 included) at any point:

* one writer at a time per ``--out``: an exclusive lock (flock on ``.<name>.lock`` beside it) held from the cleanup
  to the swap; the kernel releases it when the holder dies, so a second export waits instead of sharing the folder;
* the next writer, holding that lock, removes every staging folder a killed writer left (58 to 176 MB for a full
  bundle), old-style names included, and first puts back a folder that a killed swap had moved aside;
* the swap itself exchanges the two folders in one step (renameat2 RENAME_EXCHANGE on Linux, renamex_np
  RENAME_SWAP on macOS), so ``--out`` always holds a complete folder, the old or the new; where neither call
  exists it falls back to two renames, and the cleanup above repairs a kill between them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import re
import shutil
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no lock, the swap still never leaves half a folder
    fcntl = None  # type: ignore[assignment]

STAGING, RETIRED = "staging", "retired"


def _leftover_pattern(name: str) -> re.Pattern[str]:
    """Names a writer of ``name`` may leave beside it: this module's staging and retired folders, and those of
    earlier edgeprune versions (bundle: .<name>.<8 random characters> and .<name>.old; report: .<name>.new-*, .old-*)."""
    n = re.escape(name)
    return re.compile(rf"^\.{n}\.(({STAGING}|{RETIRED}|new|old)-.+|[a-z0-9_]{{8}}|old)$")


@contextmanager
def _exclusive(parent: Path, name: str) -> Iterator[None]:
    """Hold the lock of ``parent/name`` while the block runs; removes the lock file afterwards (a waiter that
    opened the removed file notices and takes the new one)."""
    if fcntl is None:
        yield
        return
    path = parent / f".{name}.lock"
    while True:
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    try:
        yield
    finally:
        try:
            os.unlink(path)
        finally:
            os.close(fd)


# What a bundle or report folder holds; a folder with an old-style leftover name (.<name>.<8 characters>, .<name>.old)
# is taken for a leftover only when it is empty or holds one of these (itself or in its one child folder), never a
# user's folder that happens to match.
_WRITTEN_FIRST = ("manifest.json", "models", "eval", "runner", "requirements.txt", "report.md", ".edgeprune-report")


def _written_by_us(path: Path, name: str) -> bool:
    if path.name.startswith((f".{name}.{STAGING}-", f".{name}.{RETIRED}-")):
        return True
    if path.is_symlink() or not path.is_dir():
        return False
    children = list(path.iterdir())
    return not children or any(c.name in _WRITTEN_FIRST for c in children) or (
        len(children) == 1 and children[0].is_dir() and any((children[0] / n).exists() for n in _WRITTEN_FIRST))


def _remove(path: Path) -> None:
    if path.is_symlink() or not path.is_dir():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path, ignore_errors=True)


def clean_leftovers(out_dir: Path) -> list[Path]:
    """Repair and remove what killed writers of ``out_dir`` left beside it (call while holding its lock): a folder a
    killed swap had moved aside goes back to ``out_dir`` when that is missing; every staging folder is removed.
    Returns the paths removed."""
    out_dir = Path(out_dir)
    parent, pattern = out_dir.parent, _leftover_pattern(out_dir.name)
    leftovers = sorted((p for p in parent.iterdir() if pattern.match(p.name) and _written_by_us(p, out_dir.name)),
                       key=lambda p: p.lstat().st_mtime, reverse=True) if parent.is_dir() else []
    if not os.path.lexists(out_dir):
        for path in leftovers:
            moved = path / out_dir.name if (path / out_dir.name).is_dir() else None
            if moved is None and path.name == f".{out_dir.name}.old" and path.is_dir():
                moved = path    # edgeprune before 0.2 kept the replaced bundle as .<name>.old
            if moved is not None:
                os.rename(moved, out_dir)
                break
    removed = []
    for path in leftovers:
        if os.path.lexists(path):
            _remove(path)
            removed.append(path)
    return removed


def _swap_call() -> Callable[[str, str], int] | None:
    """The C call that exchanges two paths in one step, or None where the C library has none."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    except OSError:
        return None
    if sys.platform.startswith("linux") and hasattr(libc, "renameat2"):
        at_fdcwd, rename_exchange = -100, 2
        renameat2 = libc.renameat2
        return lambda a, b: renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    if sys.platform == "darwin" and hasattr(libc, "renamex_np"):
        rename_swap = 2
        renamex_np = libc.renamex_np
        return lambda a, b: renamex_np(os.fsencode(a), os.fsencode(b), rename_swap)
    return None


def exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths in one step; False where this system or file system cannot (then nothing moved)."""
    call = _swap_call()
    if call is None:
        return False
    if call(str(a), str(b)) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, getattr(errno, "EOPNOTSUPP", errno.ENOTSUP)):
        return False
    raise OSError(err, os.strerror(err), str(b))


def swap_in(staging: Path, out_dir: Path) -> None:
    """Put ``staging`` at ``out_dir``, replacing what is there, so that ``out_dir`` always holds a whole folder."""
    if not os.path.lexists(out_dir):
        os.rename(staging, out_dir)
    elif exchange(staging, out_dir):
        _remove(staging)          # it now holds the replaced folder
    else:
        retired = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.{RETIRED}-"))
        os.rename(out_dir, retired / out_dir.name)
        try:
            os.rename(staging, out_dir)
        except OSError:
            os.rename(retired / out_dir.name, out_dir)
            raise
        finally:
            _remove(retired)


@contextmanager
def staged_folder(out_dir: Path, check: Callable[[], None] | None = None) -> Iterator[Path]:
    """Yield an empty folder beside ``out_dir``; if the block succeeds it replaces ``out_dir`` (after ``check()``,
    which may raise to refuse), otherwise it vanishes. Leftovers of killed writers are cleaned first."""
    out_dir = Path(out_dir).absolute()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive(out_dir.parent, out_dir.name):
        clean_leftovers(out_dir)
        staging = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.{STAGING}-"))
        try:
            umask = os.umask(0)
            os.umask(umask)
            staging.chmod(0o777 & ~umask)  # mkdtemp makes it 0700; the folder should get normal permissions
            yield staging
            if check is not None:
                check()
            swap_in(staging, out_dir)
        finally:
            if os.path.lexists(staging):
                _remove(staging)
