"""File helpers shared by the runner and the host (which imports them; the runner never imports the host)."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

# Limits of the JSON files that cross between machines (manifest, result): far above what edgeprune writes (a full
# export's manifest is under 1 MB and 6 levels deep), far below what would exhaust memory or Python's stack.
MAX_JSON_BYTES = 256 * 2**20
MAX_JSON_DEPTH = 32


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; when the block finishes it is fsynced and renamed over `path`.

    A failure or an interrupt leaves `path` as it was and no temporary file behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)   # mkstemp makes 0600; give the file the permissions open() would
        yield Path(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        if exc.filename is None:        # a failed write() names no file: a full disk should name the one written
            exc.filename = str(path)
        raise
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write(path: Path, write: Callable[[Path], object]) -> Path:
    """Call write(tmp) inside atomic_path(path)."""
    with atomic_path(path) as tmp:
        write(tmp)
    return Path(path)


class JSONFileError(ValueError):
    """A JSON file that cannot be used; the message is a predicate: "<file> " + message reads as one sentence."""


def _reject_constant(name: str) -> Any:
    raise JSONFileError(f"holds {name}, which is not a JSON number")


def _depth_exceeds(value: Any, limit: int) -> bool:
    """Whether containers nest deeper than ``limit`` (iterative, so a deep value cannot exhaust the stack)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def read_json(path: Path, max_bytes: int = MAX_JSON_BYTES, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """The value in a JSON file that came from elsewhere (a manifest, a device result), or JSONFileError saying
    what is wrong: missing, a folder, unreadable, larger than ``max_bytes``, not UTF-8, not JSON, NaN/Infinity
    (not JSON, though Python writes them), or nested deeper than ``max_depth`` (which would otherwise raise
    RecursionError in json or in any reader that walks it)."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            data = fh.read(max_bytes + 1)
    except FileNotFoundError:
        raise JSONFileError("does not exist") from None
    except IsADirectoryError:
        raise JSONFileError("is a folder, not a JSON file") from None
    except OSError as exc:
        raise JSONFileError(f"cannot be read ({exc.strerror or exc})") from None
    if len(data) > max_bytes:
        raise JSONFileError(f"is larger than {max_bytes // 2**20} MiB, far more than edgeprune writes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise JSONFileError(f"is not UTF-8 text (byte {exc.start})") from None
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise JSONFileError(f"is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except RecursionError:
        raise JSONFileError(f"nests deeper than {max_depth} levels, far more than edgeprune writes") from None
    if _depth_exceeds(value, max_depth):
        raise JSONFileError(f"nests deeper than {max_depth} levels, far more than edgeprune writes")
    return value
