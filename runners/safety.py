"""What the runner and the host do with paths and text they did not write themselves.

One function for each rule, used by every command it applies to:

* :func:`confine` -- a bundle-relative path as the real file it names, refused when it leaves the bundle (``..``, an
  absolute path, or a symbolic link anywhere along it that points outside).
* :func:`output_problem` -- why a command must not write to ``--out`` (a folder, a device node or FIFO, a file the
  command reads or the bundle owns), so a result never replaces what it measures.
* :func:`os_error_reason` -- an OSError as words, naming a full disk as such and the file being written.
* :func:`terminal_safe` -- text from a manifest or a result made harmless for a terminal (escape sequences shown,
  not obeyed).

Standard library only and Python 3.9 syntax at run time: this module travels in the runner's zipapp.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path, PurePath
from typing import Iterable

# ------------------------------------------------------------------------------------------------ confinement


class OutsideBundle(ValueError):
    """A manifest path that does not name a file inside the bundle; the message is a predicate of the path."""


def _real(path: Path | str) -> str:
    return os.path.realpath(os.fspath(path))


def _is_within(path: str, root: str) -> bool:
    """Whether real path ``path`` is ``root`` or lies under it (both already real)."""
    try:
        return os.path.commonpath([path, root]) == root
    except ValueError:      # different drives (Windows)
        return False


def confine(bundle: Path, rel: object) -> Path:
    """The real path of bundle-relative ``rel``, every symbolic link along it followed, if that lies inside the real
    bundle folder; else OutsideBundle saying why ("'../x' leaves the bundle").

    The file is then opened by this real path, so what is checked is what is read: a link to /etc/passwd, an eval
    set linked from elsewhere or a models/ folder that is a link to another folder are refused before they are
    opened, hashed or loaded. A link that stays inside the bundle is followed.
    """
    if not isinstance(rel, str) or not rel:
        raise OutsideBundle("is not a path (the manifest entry has no 'path' text)")
    if "\x00" in rel:
        raise OutsideBundle(f"{rel!r} holds a NUL character, which no file name can")
    pure = PurePath(rel)
    if pure.is_absolute() or pure.drive or rel.startswith(("/", "\\")):
        raise OutsideBundle(f"{rel!r} is absolute, so it points outside the bundle")
    if ".." in pure.parts or ".." in rel.replace("\\", "/").split("/"):
        raise OutsideBundle(f"{rel!r} points outside the bundle through '..'")
    root = _real(bundle)
    real = _real(Path(root) / pure)
    if not _is_within(real, root) or real == root:
        raise OutsideBundle(f"{rel!r} points outside the bundle through a symbolic link (to {real})")
    return Path(real)


# ------------------------------------------------------------------------------------------------ output paths


def _kind_of(mode: int) -> str | None:
    """What a non-regular, non-folder file is, in words; None for a regular file or a folder."""
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device node"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return None


def output_problem(out: Path, folder: bool = False, reads: Iterable[Path] = (), owned: Iterable[Path] = (),
                   owner: str = "the bundle") -> str | None:
    """Why ``out`` must not be written, as the end of a sentence that starts "--out OUT "; None when it may.

    The one check of every command that writes (``runner bench`` a result file, ``harness export`` a bundle folder,
    ``harness report`` a report folder), made before anything is measured or trained:

    * ``folder=False`` (a file, replaced atomically): not a folder, a device node, a FIFO or a socket (an atomic
      replace would put a regular file where ``/dev/null`` was), and its folder exists and is writable;
    * ``folder=True`` (a folder, replaced whole): not a file of any kind;
    * not one of ``owned`` (files that belong to ``owner``, e.g. the bundle being measured: its manifest, models,
      eval sets and runner), followed through symbolic links;
    * not a path that is, holds or lies inside one of ``reads`` (what the command reads: a folder replaced whole
      would delete a result or a runs folder kept inside it).
    """
    out = Path(out)
    try:
        st = os.stat(out)       # follows a link: a link to /dev/null is a device node here
    except FileNotFoundError:
        st = None
    except NotADirectoryError:
        above = next((p for p in out.absolute().parents if p.exists()), None)
        return f"lies under {above}, which is a file, not a folder; choose another --out"
    except OSError as exc:
        return f"cannot be inspected ({os_error_reason(exc)}); choose another --out"
    if st is not None:
        kind = _kind_of(st.st_mode)
        if kind:
            return (f"is {kind}, not a regular {'folder' if folder else 'file'}, and writing there would replace "
                    f"it; choose a file name in a folder")
        if folder and not stat.S_ISDIR(st.st_mode):
            return "is a file, not a folder; choose another --out"
        if not folder and stat.S_ISDIR(st.st_mode):
            return f"is a folder; give a file name such as {out / 'result.json'}"
    real_out = _real(out)
    for path in owned:
        if _real(path) == real_out:
            return (f"is {Path(path).name}, a file of {owner}, and the result would replace it; choose a name that "
                    f"is not one of {owner}'s files, such as result.json")
    for path in reads:
        real_in = _real(path)
        if real_in == real_out or (folder and _is_within(real_in, real_out)):
            return (f"holds {path}, which this command reads, and writing --out would replace it; choose another "
                    f"--out")
    if not folder:
        parent = Path(real_out).parent
        if not parent.is_dir():
            return f"lies in {out.parent}, a folder that does not exist; create it or choose another --out"
        if not os.access(parent, os.W_OK):
            return f"lies in {out.parent}, a folder that is not writable; choose another --out"
    return None


# ------------------------------------------------------------------------------------------------ errors as words

_DISK_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


def os_error_reason(exc: OSError, writing: Path | str | None = None) -> str:
    """An OSError in words for a one-sentence message: a full disk (or quota) is named as such, with the file being
    written (``writing``, else the exception's destination: shutil.copyfile reports the source as its filename and
    the destination as filename2), so "no space left" never points at a file that was only read."""
    target = writing if writing is not None else (exc.filename2 or exc.filename)
    if exc.errno in _DISK_FULL:
        return "the disk is full (no space left on the device)" + (f" while writing {target}" if target else "")
    reason = exc.strerror or str(exc) or type(exc).__name__
    return f"{reason}: {target}" if target else reason


def is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in _DISK_FULL


# ------------------------------------------------------------------------------------------------ terminal text


def terminal_safe(text: object) -> str:
    """``text`` with every control and invisible formatting character written as its escape (``\\x1b``,
    ``\\u202e``, ``\\n``), so a model name or an error read from a file cannot clear the screen, set the window title,
    overwrite a progress line, reorder what is shown (bidi overrides) or break a one-line message."""
    text = str(text)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape", "backslashreplace").decode("ascii")
                   for c in text)
