"""MNIST from IDX files (gzip or raw): a data folder, or the official files downloaded into a user cache."""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
import sys
import urllib.error
import urllib.request
import zlib
from pathlib import Path

import numpy as np

from harness.errors import EdgepruneError
from harness.io import write_bytes

FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
# md5 of the official .gz files (the same sums torchvision checks); only files we download ourselves are checked.
OFFICIAL_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
MIRRORS_ENV = "EDGEPRUNE_MNIST_MIRRORS"   # space-separated base URLs that replace MIRRORS (a local mirror, a proxy)
EXPECTED_COUNTS = {"train": 60000, "test": 10000}
# Pixels scaled to [0, 1] as torchvision's ToTensor does, with no mean/std shift: the lab's preprocessing.
# (Measured here: 97.6% dense and 93.5% after five 33% rounds, against 97.4% and 90.3% with mean/std normalisation.)
PIXEL_MEAN, PIXEL_STD = 0.0, 1.0
CROP = 20


def find_file(folder: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem, stem.replace("-idx", ".idx")):
        if (folder / name).is_file():
            return folder / name
    return None


def read_idx(path: Path) -> np.ndarray:
    """Parse an IDX file (magic 2049 labels / 2051 images), validating header and length."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as exc:
        raise EdgepruneError(f"{path} is not a readable IDX file ({exc}).") from exc
    if len(raw) < 8:
        raise EdgepruneError(f"{path} is too short to be an IDX file.")
    magic, count = struct.unpack(">II", raw[:8])
    if magic == 2049:
        shape, offset = (count,), 8
    elif magic == 2051:
        if len(raw) < 16:
            raise EdgepruneError(f"{path} ends inside its IDX image header.")
        rows, cols = struct.unpack(">II", raw[8:16])
        shape, offset = (count, rows, cols), 16
    else:
        raise EdgepruneError(f"{path} has IDX magic {magic}, expected 2049 (labels) or 2051 (images).")
    expected = int(np.prod(shape))
    if len(raw) - offset != expected:
        raise EdgepruneError(f"{path} holds {len(raw) - offset} bytes of data, its header promises {expected}.")
    return np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(shape)


def download(folder: Path, quiet: bool = False) -> None:
    """Fetch the four official files with md5 verification and a progress line; atomic per file."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, md5 in OFFICIAL_MD5.items():
        target = folder / name
        if target.is_file() and hashlib.md5(target.read_bytes()).hexdigest() == md5:
            continue
        errors = []
        for mirror in os.environ.get(MIRRORS_ENV, "").split() or MIRRORS:
            try:
                data = _fetch(mirror + name, quiet)
            except (urllib.error.URLError, OSError, TimeoutError) as exc:
                errors.append(f"{mirror}: {getattr(exc, 'reason', exc)}")
                continue
            if hashlib.md5(data).hexdigest() != md5:
                errors.append(f"{mirror}: checksum mismatch")
                continue
            write_bytes(target, data)
            break
        else:
            raise EdgepruneError(
                f"MNIST could not be downloaded ({'; '.join(errors)}): set EDGEPRUNE_DATA or pass --data-dir "
                "to a folder whose mnist/ subfolder holds the four IDX files (train-images-idx3-ubyte.gz, ...)."
            )


def _fetch(url: str, quiet: bool) -> bytes:
    with urllib.request.urlopen(url, timeout=20) as resp:
        total = int(resp.headers.get("Content-Length") or 0)
        chunks, done = [], 0
        while block := resp.read(1 << 16):
            chunks.append(block)
            done += len(block)
            if not quiet and total:
                print(f"\r  {url.rsplit('/', 1)[-1]}: {100 * done // total:3d}%", end="", file=sys.stderr)
        if not quiet:
            print(file=sys.stderr)
    return b"".join(chunks)


def locate(data_dir: Path | None, cache_dir: Path, allow_download: bool = True) -> Path:
    """The folder holding the four files: data_dir/mnist if complete, else the cache (downloading into it)."""
    if data_dir is not None and all(find_file(data_dir / "mnist", s) for s in FILES.values()):
        return data_dir / "mnist"
    cache = cache_dir / "mnist"
    if all(find_file(cache, s) for s in FILES.values()):
        return cache
    if not allow_download:
        where = f"{data_dir / 'mnist'}" if data_dir else "no data folder given"
        raise EdgepruneError(f"MNIST files not found ({where}): set EDGEPRUNE_DATA or pass --data-dir.")
    print(f"MNIST not found locally; downloading the official files into {cache}", file=sys.stderr)
    try:
        download(cache)
    except EdgepruneError as exc:
        if data_dir is None:
            raise
        raise EdgepruneError(f"{data_dir / 'mnist'} does not hold the four MNIST IDX files, and {exc}") from None
    return cache


def preprocess(images: np.ndarray) -> np.ndarray:
    """Centre-crop 28x28 to 20x20, scale to [0,1], flatten to 400 features (float32)."""
    top = (images.shape[1] - CROP) // 2
    left = (images.shape[2] - CROP) // 2
    crop = images[:, top : top + CROP, left : left + CROP].astype(np.float32) / 255.0
    return ((crop - PIXEL_MEAN) / PIXEL_STD).reshape(len(images), CROP * CROP)


def load_split(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    prefix = "train" if split == "train" else "test"
    images = read_idx(find_file(folder, FILES[f"{prefix}_images"]))
    labels = read_idx(find_file(folder, FILES[f"{prefix}_labels"]))
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise EdgepruneError(f"MNIST {split} images and labels in {folder} do not match.")
    return preprocess(images), labels.astype(np.int64)
