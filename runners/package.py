"""Package the runner for the device: an executable zipapp ``runner`` plus its ``requirements.txt``.

``write_runner(dest)`` is what the bundle exporter calls; afterwards ``python3 DEST/runner install`` (or
``sh DEST/install.sh``) makes ``DEST/.venv`` and ``python3 DEST/runner bench DEST --out result.json`` works.
The archive is reproducible (sorted entries, fixed timestamps), so its sha256 depends only on the runner's source.
"""

from __future__ import annotations

import io
import shutil
import zipapp
import zipfile
from pathlib import Path

from runners.files import atomic_write

PACKAGE_DIR = Path(__file__).resolve().parent
INTERPRETER = "/usr/bin/env python3"
ENTRY_POINT = "runners.cli:main"
_FIXED_TIME = (2020, 1, 1, 0, 0, 0)

# The archive's entry: `runner install` first (standard library only: it creates the venv the other commands
# need), then runners.cli:main (as zipapp's own template would call it). Where a dependency is missing and the
# bundle holds the venv `runner install` made, the runner starts again under that venv's Python, so
# `python3 runner bench ...` works after an install; otherwise one sentence says how to install.
_MAIN_PY = """\
# -*- coding: utf-8 -*-
import os
import sys

if sys.argv[1:2] == ["install"]:
    from runners.install import main
    sys.exit(main(sys.argv[2:]))
from runners.privacy import keep_onnxruntime_offline

keep_onnxruntime_offline()   # before onnxruntime is imported, or its telemetry has already started
try:
    import click, numpy, onnxruntime, psutil, tqdm  # noqa: F401  the runner's requirements.txt
except ImportError as exc:
    here = os.path.dirname(os.path.abspath(sys.argv[0]))
    python = os.path.join(here, ".venv", "Scripts" if os.name == "nt" else "bin",
                          "python.exe" if os.name == "nt" else "python")
    if os.path.exists(python) and not os.environ.get("EDGEPRUNE_RUNNER_REEXEC"):
        os.environ["EDGEPRUNE_RUNNER_REEXEC"] = "1"
        os.execv(python, [python, os.path.abspath(sys.argv[0])] + sys.argv[1:])
    sys.stderr.write("runner: missing Python package %r; install the runner's requirements into a venv beside "
                     "the bundle with: %s %s install (offline from the bundle's carried wheels where they match "
                     "this device)\\n" % (exc.name or str(exc), os.path.basename(sys.executable) or "python3",
                                          os.path.abspath(sys.argv[0])))
    sys.exit(2)

import runners.cli
runners.cli.main()
"""

# install.sh: the bundle's install step for people who look for a script; the same as `python3 runner install`.
_INSTALL_SH = """\
#!/bin/sh
# Creates .venv/ beside this bundle with the runner's requirements: from the carried wheels in wheels/ (pip
# --no-index) when they match this device, else from the package registry. Options: --offline, --registry,
# --venv DIR. Another Python: PYTHON=python3.12 sh install.sh
here=$(cd "$(dirname "$0")" && pwd)
exec "${PYTHON:-python3}" "$here/runner" install "$here" "$@"
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


RUNNER_FILES = ("runner", "requirements.txt", "install.sh")   # what write_runner puts in a bundle


def write_runner(dest_dir: Path) -> list[Path]:
    """Write ``dest_dir/runner`` (executable zipapp, shebang ``/usr/bin/env python3``, entry runners.cli:main),
    ``dest_dir/requirements.txt`` (a copy of runners/requirements.txt) and ``dest_dir/install.sh``. Returns the
    three paths."""
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    runner, requirements, install_sh = (dest_dir / name for name in RUNNER_FILES)
    archive = build_archive()

    def write_zipapp(tmp: Path) -> None:
        # stdlib zipapp adds the shebang to the prepared archive and sets the executable bit.
        zipapp.create_archive(io.BytesIO(archive), tmp, interpreter=INTERPRETER)
        tmp.chmod(0o755)

    atomic_write(runner, write_zipapp)
    atomic_write(requirements, lambda tmp: (shutil.copyfile(PACKAGE_DIR / "requirements.txt", tmp),
                                             tmp.chmod(0o644)))
    atomic_write(install_sh, lambda tmp: (tmp.write_text(_INSTALL_SH, encoding="utf-8"), tmp.chmod(0o755)))
    return [runner, requirements, install_sh]
