"""harness.data: the IDX reader, MNIST location/download (no network), preprocessing, data-folder resolution."""

from __future__ import annotations

import gzip
import hashlib
import struct
from pathlib import Path

import numpy as np
import pytest

from harness.data import load_task, resolve_data_dir
from harness.data import mnist
from harness.data.registry import cache_dir
from harness.errors import EdgepruneError


def idx_bytes(array: np.ndarray) -> bytes:
    """Serialise a uint8 array as IDX: magic 2051 with rows/cols for images, 2049 for labels."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    if array.ndim == 3:
        header = struct.pack(">IIII", 2051, *array.shape)
    elif array.ndim == 1:
        header = struct.pack(">II", 2049, len(array))
    else:
        raise ValueError(array.shape)
    return header + array.tobytes()


def write_idx(path: Path, array: np.ndarray, gz: bool) -> Path:
    data = idx_bytes(array)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def fake_mnist(n_train: int = 6, n_test: int = 4, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "train_images": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train_labels": rng.integers(0, 10, n_train, dtype=np.uint8),
        "test_images": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "test_labels": rng.integers(0, 10, n_test, dtype=np.uint8),
    }


def write_mnist_folder(folder: Path, arrays: dict[str, np.ndarray], gz: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for key, stem in mnist.FILES.items():
        write_idx(folder / (stem + ".gz" if gz else stem), arrays[key], gz)
    return folder


# --- read_idx -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "raw"])
def test_read_idx_round_trips_images_and_labels(tmp_path, gz):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (3, 5, 7), dtype=np.uint8)
    labels = np.array([9, 0, 4], dtype=np.uint8)
    suffix = ".gz" if gz else ""
    got_images = mnist.read_idx(write_idx(tmp_path / f"img{suffix}", images, gz))
    got_labels = mnist.read_idx(write_idx(tmp_path / f"lbl{suffix}", labels, gz))
    assert got_images.shape == (3, 5, 7) and got_images.dtype == np.uint8
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)


def test_read_idx_rejects_wrong_magic_naming_the_file(tmp_path):
    path = tmp_path / "bad-magic-idx1-ubyte"
    path.write_bytes(struct.pack(">II", 2050, 2) + b"\x01\x02")
    with pytest.raises(EdgepruneError, match="2050") as info:
        mnist.read_idx(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("extra", [-5, +3], ids=["truncated", "trailing-bytes"])
def test_read_idx_rejects_data_length_not_matching_header(tmp_path, extra):
    data = idx_bytes(np.zeros((2, 4, 4), dtype=np.uint8))
    data = data[:extra] if extra < 0 else data + b"\0" * extra
    path = tmp_path / "images-idx3-ubyte"
    path.write_bytes(data)
    with pytest.raises(EdgepruneError) as info:
        mnist.read_idx(path)
    assert str(path) in str(info.value)
    assert "32" in str(info.value)   # what the header promises: 2 * 4 * 4 bytes


def test_read_idx_rejects_a_truncated_gzip_stream_naming_the_file(tmp_path):
    blob = gzip.compress(idx_bytes(np.arange(200, dtype=np.uint8)))
    path = tmp_path / "labels-idx1-ubyte.gz"
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(EdgepruneError) as info:
        mnist.read_idx(path)
    assert str(path) in str(info.value)


def test_read_idx_rejects_a_damaged_deflate_stream_naming_the_file(tmp_path):
    """Zeroed bytes inside the compressed data: zlib.error, not OSError, underneath."""
    blob = bytearray(gzip.compress(idx_bytes((np.arange(20000) % 251).astype(np.uint8))))
    blob[40:60] = bytes(20)
    path = tmp_path / "labels-idx1-ubyte.gz"
    path.write_bytes(bytes(blob))
    with pytest.raises(EdgepruneError) as info:
        mnist.read_idx(path)
    assert str(path) in str(info.value)


def test_read_idx_rejects_a_gz_name_that_is_not_gzip(tmp_path):
    path = tmp_path / "labels-idx1-ubyte.gz"
    path.write_bytes(idx_bytes(np.arange(4, dtype=np.uint8)))
    with pytest.raises(EdgepruneError) as info:
        mnist.read_idx(path)
    assert str(path) in str(info.value)


def test_read_idx_rejects_a_file_shorter_than_any_header(tmp_path):
    path = tmp_path / "tiny-idx1-ubyte"
    path.write_bytes(b"\x00\x00\x08")
    with pytest.raises(EdgepruneError) as info:
        mnist.read_idx(path)
    assert str(path) in str(info.value)


def test_read_idx_rejects_an_image_header_cut_after_the_count(tmp_path):
    path = tmp_path / "cut-idx3-ubyte"
    path.write_bytes(struct.pack(">II", 2051, 3) + b"\x00\x1c")   # magic + count, then 2 of the 8 rows/cols bytes
    with pytest.raises(EdgepruneError) as info:
        mnist.read_idx(path)
    assert str(path) in str(info.value)


# --- preprocess ---------------------------------------------------------------------------------------------

def test_preprocess_crops_the_centre_and_normalises():
    images = np.zeros((2, 28, 28), dtype=np.uint8)
    images[:, 4:24, 4:24] = 255            # the centre 20x20 is white, the 4-pixel border black
    images[1, 4, 4] = 0                     # first pixel of the crop of image 1
    out = mnist.preprocess(images)
    assert out.shape == (2, 400) and out.dtype == np.float32
    white = (1.0 - mnist.PIXEL_MEAN) / mnist.PIXEL_STD
    black = (0.0 - mnist.PIXEL_MEAN) / mnist.PIXEL_STD
    np.testing.assert_allclose(out[0], white, rtol=1e-6)      # no border pixel made it in
    assert out[1, 0] == pytest.approx(black) and out[1, 1] == pytest.approx(white)


def test_preprocess_keeps_row_major_pixel_order():
    images = np.arange(28 * 28, dtype=np.int64).reshape(1, 28, 28) % 256
    out = mnist.preprocess(images.astype(np.uint8))
    pixels = out[0] * mnist.PIXEL_STD + mnist.PIXEL_MEAN
    expected = (images[0, 4:24, 4:24].reshape(-1) % 256) / 255.0
    np.testing.assert_allclose(pixels, expected, atol=1e-6)


# --- locate / download --------------------------------------------------------------------------------------

def test_locate_uses_a_complete_data_folder_over_the_cache(tmp_path):
    data_dir = tmp_path / "data"
    write_mnist_folder(data_dir / "mnist", fake_mnist(), gz=True)
    cache = tmp_path / "cache"
    write_mnist_folder(cache / "mnist", fake_mnist(seed=1), gz=True)
    assert mnist.locate(data_dir, cache) == data_dir / "mnist"


def test_locate_reads_raw_idx_files_in_the_data_folder(tmp_path):
    arrays = fake_mnist()
    write_mnist_folder(tmp_path / "mnist", arrays, gz=False)
    folder = mnist.locate(tmp_path, tmp_path / "cache", allow_download=False)
    x, y = mnist.load_split(folder, "test")
    assert x.shape == (4, 400) and x.dtype == np.float32
    np.testing.assert_array_equal(y, arrays["test_labels"].astype(np.int64))
    assert y.dtype == np.int64


def test_locate_falls_back_to_a_complete_cache(tmp_path):
    cache = tmp_path / "cache"
    write_mnist_folder(cache / "mnist", fake_mnist())
    incomplete = tmp_path / "data"
    (incomplete / "mnist").mkdir(parents=True)
    assert mnist.locate(incomplete, cache, allow_download=False) == cache / "mnist"
    assert mnist.locate(None, cache, allow_download=False) == cache / "mnist"


def test_locate_offline_says_how_to_supply_the_data(tmp_path, monkeypatch):
    monkeypatch.setattr(mnist, "MIRRORS", ("http://127.0.0.1:9/",))
    cache = tmp_path / "cache"
    with pytest.raises(EdgepruneError) as info:
        mnist.locate(None, cache)
    message = str(info.value)
    assert "EDGEPRUNE_DATA" in message and "--data-dir" in message
    assert not any(p.is_file() for p in cache.rglob("*")), "a failed download must leave no file behind"


def test_locate_without_download_says_how_to_supply_the_data(tmp_path):
    with pytest.raises(EdgepruneError) as info:
        mnist.locate(tmp_path, tmp_path / "cache", allow_download=False)
    message = str(info.value)
    assert "EDGEPRUNE_DATA" in message and "--data-dir" in message
    assert str(tmp_path / "mnist") in message


def test_download_rejects_a_checksum_mismatch_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(mnist, "MIRRORS", ("http://mirror.invalid/",))
    monkeypatch.setattr(mnist, "_fetch", lambda url, quiet: b"not the official file")
    with pytest.raises(EdgepruneError, match="checksum mismatch"):
        mnist.download(tmp_path / "mnist", quiet=True)
    assert list((tmp_path / "mnist").iterdir()) == []


def test_download_verifies_and_stores_files_that_locate_then_finds(tmp_path, monkeypatch):
    arrays = fake_mnist()
    blobs = {stem + ".gz": gzip.compress(idx_bytes(arrays[key])) for key, stem in mnist.FILES.items()}
    monkeypatch.setattr(mnist, "OFFICIAL_MD5", {name: hashlib.md5(b).hexdigest() for name, b in blobs.items()})
    monkeypatch.setattr(mnist, "MIRRORS", ("http://mirror.invalid/",))
    fetched = []

    def fake_fetch(url, quiet):
        fetched.append(url)
        return blobs[url.rsplit("/", 1)[-1]]

    monkeypatch.setattr(mnist, "_fetch", fake_fetch)
    folder = mnist.locate(None, tmp_path / "cache")
    assert folder == tmp_path / "cache" / "mnist"
    assert sorted(p.name for p in folder.iterdir()) == sorted(blobs)    # no temporary files left
    x, y = mnist.load_split(folder, "train")
    assert x.shape == (6, 400)
    np.testing.assert_array_equal(y, arrays["train_labels"])
    assert len(fetched) == 4
    mnist.download(folder, quiet=True)           # verified files already there are not fetched again
    assert len(fetched) == 4


# --- registry -----------------------------------------------------------------------------------------------

def test_resolve_data_dir_cli_value_beats_the_environment(tmp_path, monkeypatch):
    cli, env = tmp_path / "cli", tmp_path / "env"
    cli.mkdir()
    env.mkdir()
    monkeypatch.setenv("EDGEPRUNE_DATA", str(env))
    assert resolve_data_dir(str(cli)) == cli
    assert resolve_data_dir(None) == env
    monkeypatch.delenv("EDGEPRUNE_DATA")
    assert resolve_data_dir(None) is None


def test_resolve_data_dir_rejects_a_missing_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("EDGEPRUNE_DATA", raising=False)
    missing = tmp_path / "nowhere"
    with pytest.raises(EdgepruneError) as info:
        resolve_data_dir(missing)
    assert str(missing) in str(info.value)
    monkeypatch.setenv("EDGEPRUNE_DATA", str(missing))
    with pytest.raises(EdgepruneError):
        resolve_data_dir(None)


def test_cache_dir_follows_xdg_cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_dir() == tmp_path / "edgeprune"


def test_load_task_mnist_from_a_data_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    arrays = fake_mnist(n_train=6, n_test=4)
    write_mnist_folder(tmp_path / "data" / "mnist", arrays)
    task = load_task("mnist", tmp_path / "data")
    assert task.num_classes == 10 and task.input_shape == [None, 400]
    assert task.train_x.shape == (6, 400) and task.eval_x.shape == (4, 400)
    np.testing.assert_array_equal(task.eval_y, arrays["test_labels"])
    np.testing.assert_allclose(task.eval_x, mnist.preprocess(arrays["test_images"]))
    limited = load_task("mnist", tmp_path / "data", train_limit=3, eval_limit=2)
    assert len(limited.train_x) == len(limited.train_y) == 3 and len(limited.eval_x) == 2
    assert not (tmp_path / "cache").exists(), "a complete data folder must not touch the user cache"


def test_load_task_unknown_name():
    with pytest.raises(EdgepruneError, match="mnist"):
        load_task("imagenet", None)


def test_locate_offline_with_a_data_folder_lacking_mnist_names_that_folder(tmp_path, monkeypatch):
    monkeypatch.setenv(mnist.MIRRORS_ENV, "http://127.0.0.1:9/")
    with pytest.raises(EdgepruneError) as info:
        mnist.locate(tmp_path, tmp_path / "cache")
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'mnist'} does not hold the four MNIST IDX files, and MNIST could not")
    assert "--data-dir" in message and "\n" not in message
