"""Package the runner for the device: an executable zipapp ``runner`` plus its ``requirements.txt``.

``write_runner(dest)`` is what the bundle exporter calls; afterwards
``python3 DEST/runner bench DEST --out result.json`` works wherever only ``DEST/requirements.txt`` is installed.
The archive is reproducible (sorted entries, fixed timestamps), so its sha256 depends only on the runner's source.
"""

from __future__ import annotations

import io
import os
import shutil
import zipapp
import zipfile
from pathlib import Path

from runners.files import atomic_write

PACKAGE_DIR = Path(__file__).resolve().parent
INTERPRETER = "/usr/bin/env python3"
ENTRY_POINT = "runners.cli:main"
_FIXED_TIME = (2020, 1, 1, 0, 0, 0)

# The archive's entry: runners.cli:main (as zipapp's own template would call it), preceded by a check that
# turns a missing dependency into one sentence instead of an ImportError traceback.
_MAIN_PY = """\
# -*- coding: utf-8 -*-
import os
import sys

try:
    import click, numpy, onnxruntime, psutil, tqdm  # noqa: F401  the runner's requirements.txt
except ImportError as exc:
    req = os.path.join(os.path.dirname(os.path.abspath(sys.argv[0])), "requirements.txt")
    sys.stderr.write("runner: missing Python package %r; install the runner's requirements first: "
                     "python3 -m pip install -r %s\\n" % (exc.name or str(exc), req))
    sys.exit(2)

import runners.cli
runners.cli.main()
"""


def _package_files() -> list[Path]:
    """The runners package's Python sources (no __pycache__, no tests, nothing else)."""
    return sorted(p for p in PACKAGE_DIR.glob("*.py") if p.is_file())


def build_archive() -> bytes:
    """The zip (without the shebang) holding ``runners/*.py`` and the entry ``__main__.py``."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for path in _package_files():
            info = zipfile.ZipInfo(f"runners/{path.name}", date_time=_FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            z.writestr(info, path.read_bytes())
        info = zipfile.ZipInfo("__main__.py", date_time=_FIXED_TIME)
        info.compress_type = zipfile.ZIP_DEFLATED
        info.external_attr = 0o644 << 16
        z.writestr(info, _MAIN_PY)
    return buf.getvalue()


RUNNER_FILES = ("runner", "requirements.txt")   # what write_runner puts in a bundle


def write_runner(dest_dir: Path) -> list[Path]:
    """Write ``dest_dir/runner`` (executable zipapp, shebang ``/usr/bin/env python3``, entry runners.cli:main)
    and ``dest_dir/requirements.txt`` (a copy of runners/requirements.txt). Returns both paths."""
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    runner, requirements = (dest_dir / name for name in RUNNER_FILES)
    archive = build_archive()

    def write_zipapp(tmp: Path) -> None:
        # stdlib zipapp adds the shebang to the prepared archive and sets the executable bit.
        zipapp.create_archive(io.BytesIO(archive), tmp, interpreter=INTERPRETER)
        tmp.chmod(0o755)

    atomic_write(runner, write_zipapp)
    atomic_write(requirements, lambda tmp: (shutil.copyfile(PACKAGE_DIR / "requirements.txt", tmp),
                                             tmp.chmod(0o644)))
    return [runner, requirements]
