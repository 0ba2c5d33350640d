"""Content-addressed run folders (OpenLTH's idea): a folder is named by a hash of the settings that change it.

Only settings that differ from their defaults enter the hash, so adding an optional setting later never renames
existing runs. A folder is finished when its `variant.json` exists; it is written last and atomically.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import os
import shutil
from pathlib import Path

import torch

from harness.io import atomic_path, write_json


def settings_hash(settings) -> str:
    """12 hex digits over the fields of a settings dataclass that differ from their defaults."""
    changed = {}
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else object())
        if value != default:
            changed[f.name] = value
    blob = json.dumps({"type": type(settings).__name__, **changed}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def train_folder(root: Path, ts) -> Path:
    """A trained baseline's folder (TrainSettings name it); every experiment on it lives below it."""
    return Path(root) / f"train-{settings_hash(ts)}"


def experiment_folder(root: Path, ts, experiment: str, settings) -> Path:
    """The folder of one experiment on one trained baseline, named by the experiment's own settings."""
    return train_folder(root, ts) / f"{experiment}-{settings_hash(settings)}"


def variant_name(ts, experiment: str, method: str | None = None, iteration: int | None = None) -> str:
    """task-model-experiment[-method][-it<round>]-s<seed>; the same name without `-s<seed>` is its series."""
    method = method.replace(":", "of") if method else method      # "2:4" -> "2of4": names become file names
    parts = [ts.task, ts.model, experiment, method, f"it{iteration}" if iteration is not None else None, f"s{ts.seed}"]
    return "-".join(p for p in parts if p)


def runs_root(cli_value: str | Path | None = None) -> Path:
    return Path(cli_value or os.environ.get("EDGEPRUNE_RUNS") or "runs")


def save_tensors(path: Path, obj) -> None:
    with atomic_path(path) as tmp:
        try:
            torch.save(obj, tmp)
        except RuntimeError as exc:
            raise failed_write(path, exc) from exc


def failed_write(path: Path, exc: RuntimeError) -> OSError:
    """torch.save's C++ writer reports a full disk as a RuntimeError ("unexpected pos", "file write failed") that
    names neither the disk nor the file: turn it into the OSError the export reports in one sentence, ENOSPC when
    the disk has no room left."""
    try:
        full = shutil.disk_usage(Path(path).parent).free < 2**20
    except OSError:
        full = False
    if full:
        return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
    return OSError(errno.EIO, f"torch.save failed ({str(exc).splitlines()[0] if str(exc) else exc!r})", str(path))


def load_tensors(path: Path):
    return torch.load(path, weights_only=True, map_location="cpu")


def read_json(path: Path):
    return json.loads(Path(path).read_text())


def ensure_config(folder: Path, settings, **record) -> None:
    """config.json: the settings that name the folder, plus what `record` adds (e.g. the derived seed streams)."""
    if not (folder / "config.json").exists():
        write_json(folder / "config.json", {"type": type(settings).__name__, **dataclasses.asdict(settings), **record})
