"""Reading a bundle on the device: its manifest, the files it lists (checked against their sha256 before use) and
its evaluation sets.

A problem with the manifest raises BundleError (the run stops); a problem with one listed file raises ModelError
(that file becomes an error entry and the others are still measured).
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from runners.contract import WHEELS_INDEX, ContractError, validate_manifest, validate_wheel_index
from runners.errors import BundleError, ModelError, one_line
from runners.files import sha256_file


def load_manifest(bundle: Path) -> dict[str, Any]:
    """Read and validate ``bundle/manifest.json``; any problem raises BundleError with one sentence."""
    bundle = Path(bundle)
    if not bundle.exists():
        raise BundleError(f"Bundle folder {bundle} does not exist.")
    if not bundle.is_dir():
        raise BundleError(f"Bundle {bundle} is not a folder; pass the folder that holds manifest.json.")
    path = bundle / "manifest.json"
    if not path.is_file():
        raise BundleError(f"{path} is missing, so {bundle} is not an edgeprune bundle (make export writes one).")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise BundleError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}).") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BundleError(f"{path} cannot be read ({one_line(exc)}).") from None
    try:
        return validate_manifest(manifest)
    except ContractError as exc:
        raise BundleError(f"{path} {exc}.") from None


def carried_wheel_paths(bundle: Path) -> set[str]:
    """Bundle-relative paths of the carried wheels and their index (wheels/index.json); empty without a readable
    index. The bundle owns these files as it owns the manifest's."""
    path = Path(bundle) / WHEELS_INDEX
    try:
        index = validate_wheel_index(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError):   # ContractError is a ValueError too
        return set()
    return {WHEELS_INDEX} | {f["path"] for t in index["targets"].values() for f in t["files"]}


def resolve(bundle: Path, rel: Any) -> Path:
    """A manifest path inside the bundle; refuses absolute paths and paths that leave the bundle."""
    if not isinstance(rel, str) or not rel:
        raise ModelError("manifest entry has no 'path'")
    p = Path(rel)
    if p.is_absolute() or ".." in p.parts:
        raise ModelError(f"path {rel!r} points outside the bundle")
    return bundle / p


def check_file(bundle: Path, entry: dict[str, Any]) -> tuple[Path, int, str]:
    """Check existence, size and sha256 of a bundle file against its manifest entry.

    Returns (path, size, sha256). Raises ModelError (one line) for a missing or mismatching file.
    """
    path = resolve(bundle, entry.get("path"))
    if not path.is_file():
        raise ModelError(f"file {entry.get('path')} is missing from the bundle")
    size = path.stat().st_size
    want_bytes = entry.get("bytes")
    if want_bytes is not None and int(want_bytes) != size:
        raise ModelError(f"size mismatch for {entry['path']}: manifest says {want_bytes} bytes, file has {size}")
    want_sha = entry.get("sha256")
    if not want_sha:
        raise ModelError(f"manifest gives no sha256 for {entry['path']}, so it cannot be checked")
    try:
        got = sha256_file(path)
    except OSError as exc:
        raise ModelError(f"cannot read {entry['path']}: {one_line(exc)}") from None
    if got != str(want_sha).lower():
        raise ModelError(f"sha256 mismatch for {entry['path']}: manifest {str(want_sha)[:12]}..., file {got[:12]}...")
    return path, size, got


class EvalSets:
    """Loads each eval npz once (after checking its sha256); remembers failures as one-line reasons.

    Several model files share one eval set, so it is read and hashed once per run, and a broken one gives every
    model that needs it the same error without being read again.
    """

    def __init__(self, bundle: Path, evals: dict[str, Any]) -> None:
        self.bundle = bundle
        self.evals = evals
        self._cache: dict[str, tuple[np.ndarray, np.ndarray] | ModelError] = {}

    def get(self, key: Any) -> tuple[np.ndarray, np.ndarray]:
        """(inputs, labels) of eval set ``key``; raises ModelError (the same one each time) if it is unusable."""
        if key not in self._cache:
            try:
                self._cache[key] = self._load(key)
            except ModelError as exc:
                self._cache[key] = exc
        value = self._cache[key]
        if isinstance(value, ModelError):
            raise value
        return value

    def _load(self, key: Any) -> tuple[np.ndarray, np.ndarray]:
        if key is None:
            raise ModelError("manifest names no eval set for this model")
        entry = self.evals.get(key)
        if not isinstance(entry, dict):
            raise ModelError(f"eval set {key!r} is not listed in the manifest's evals")
        try:
            path, _, _ = check_file(self.bundle, entry)
        except ModelError as exc:
            raise ModelError(f"eval set {key!r}: {exc}") from None
        if not zipfile.is_zipfile(path):  # np.load would call a non-zip file "pickled data"
            raise ModelError(f"eval set {key!r} ({entry['path']}) is not an npz archive")
        try:
            with np.load(path, allow_pickle=False) as npz:
                inputs, labels = npz["inputs"], npz["labels"]
        except Exception as exc:  # noqa: BLE001 - corrupt npz, missing arrays
            raise ModelError(f"eval set {key!r} ({entry['path']}) cannot be read: {one_line(exc)}") from None
        if inputs.ndim == 0 or labels.ndim == 0:
            raise ModelError(f"eval set {key!r} ({entry['path']}) holds scalars, not arrays of rows")
        if len(inputs) == 0 or len(inputs) != len(labels):
            raise ModelError(f"eval set {key!r} has {len(inputs)} inputs and {len(labels)} labels")
        return inputs, labels
