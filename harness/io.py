"""Atomic file writes and hashing shared by every writer of results, manifests and checkpoints."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# One definition of each, shared with the device side.
from runners.files import atomic_path, sha256_file  # noqa: F401


def write_json(path: Path, data: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")


def write_bytes(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
