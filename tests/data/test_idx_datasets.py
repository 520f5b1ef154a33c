"""IDX files and the MNIST / Fashion-MNIST loaders, on small files the tests write."""

from __future__ import annotations

import gzip
import hashlib

import numpy as np
import pytest

from litetrain.data import datasets, load_dataset, read_idx, write_idx
from litetrain.errors import DatasetError

R = np.random.default_rng(0)


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32,
                                   np.float64])
@pytest.mark.parametrize("name", ["a.idx", "a.idx.gz"])
def test_round_trip(tmp_path, dtype, name):
    a = (R.normal(size=(3, 4, 5)) * 50).astype(dtype)
    write_idx(tmp_path / name, a)
    b = read_idx(tmp_path / name)
    assert b.dtype == np.dtype(dtype) and b.dtype.isnative
    np.testing.assert_array_equal(a, b)


def test_header_is_the_published_layout(tmp_path):
    write_idx(tmp_path / "l", np.array([7, 2], np.uint8))
    assert (tmp_path / "l").read_bytes() == b"\0\0\x08\x01\0\0\0\x02\x07\x02"


@pytest.mark.parametrize("data, match", [
    (b"\x01\x02\x08\x01", "not an IDX file"),
    (b"\0\0\x07\x01\0\0\0\x01\x00", "unknown IDX type code 0x07"),
    (b"\0\0\x08\x02\0\0\0\x01", "truncated header"),
    (b"\0\0\x08\x01\0\0\0\x05\x01\x02", r"needs 13 bytes, the file has 10"),
])
def test_bad_files_are_named_errors(tmp_path, data, match):
    path = tmp_path / "bad-idx"
    path.write_bytes(data)
    with pytest.raises(DatasetError, match=match) as e:
        read_idx(path)
    assert str(path) in str(e.value)


def test_corrupt_gzip(tmp_path):
    (tmp_path / "x.gz").write_bytes(gzip.compress(b"\0\0\x08\x01\0\0\0\x01\x05")[:-6])
    with pytest.raises(DatasetError, match="corrupt gzip"):
        read_idx(tmp_path / "x.gz")


def _write_set(folder, n_train=6, n_test=4, gz=True):
    folder.mkdir(parents=True, exist_ok=True)
    ext = ".gz" if gz else ""
    tx = R.integers(0, 256, (n_train, 28, 28), dtype=np.uint8)
    vx = R.integers(0, 256, (n_test, 28, 28), dtype=np.uint8)
    ty, vy = R.integers(0, 10, n_train, dtype=np.uint8), R.integers(0, 10, n_test,
                                                                       dtype=np.uint8)
    for stem, a in zip(datasets._FILES, (tx, ty, vx, vy), strict=True):
        write_idx(folder / (stem + ext), a)
    return tx, ty, vx, vy


@pytest.mark.parametrize("gz", [True, False])
def test_load_from_a_folder(tmp_path, gz):
    tx, _, _, vy = _write_set(tmp_path / "f", gz=gz)
    (x, y), (_, yt) = load_dataset("fashion-mnist", data_dir=tmp_path / "f")
    assert x.dtype == np.float32 and x.shape == (6, 28, 28) and y.dtype == np.int64
    np.testing.assert_allclose(x, tx / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(yt, vy)


def test_folder_missing_a_file(tmp_path):
    _write_set(tmp_path / "f")
    (tmp_path / "f" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DatasetError, match="no t10k-labels-idx1-ubyte"):
        load_dataset("mnist", data_dir=tmp_path / "f")


def test_mismatched_images_and_labels(tmp_path):
    _write_set(tmp_path / "f")
    write_idx(tmp_path / "f" / "train-labels-idx1-ubyte.gz", np.zeros(5, np.uint8))
    with pytest.raises(DatasetError, match="do not pair up"):
        load_dataset("mnist", data_dir=tmp_path / "f")


def test_unknown_name():
    with pytest.raises(DatasetError, match="known: mnist, fashion-mnist"):
        load_dataset("cifar")


def _mirror(tmp_path, monkeypatch, md5_override=None):
    """A file:// mirror holding a small published-looking set, and an empty cache."""
    _write_set(tmp_path / "mirror")
    md5 = {s: hashlib.md5((tmp_path / "mirror" / f"{s}.gz").read_bytes()).hexdigest()
           for s in datasets._FILES}
    md5.update(md5_override or {})
    src = datasets._Source(("file:///nonexistent/", (tmp_path / "mirror").as_uri() + "/"),
                           md5, tuple("0123456789"))
    monkeypatch.setitem(datasets.SOURCES, "mnist", src)
    monkeypatch.setenv("LITETRAIN_CACHE", str(tmp_path / "cache"))


def test_download_verifies_and_caches(tmp_path, monkeypatch):
    _mirror(tmp_path, monkeypatch)
    (x, _), _ = load_dataset("mnist")  # first mirror fails, the second serves
    cached = sorted(p.name for p in (tmp_path / "cache" / "mnist").iterdir())
    assert cached == sorted(f"{s}.gz" for s in datasets._FILES)
    for f in (tmp_path / "mirror").iterdir():
        f.unlink()
    (x2, _), _ = load_dataset("mnist", download=False)  # served from the cache now
    np.testing.assert_array_equal(x, x2)


def test_checksum_mismatch_leaves_no_file_and_says_what_to_do(tmp_path, monkeypatch):
    _mirror(tmp_path, monkeypatch, {"train-images-idx3-ubyte": "0" * 32})
    with pytest.raises(DatasetError, match=r"checksum .* != published 0{32}.*data_dir"):
        load_dataset("mnist")
    folder = tmp_path / "cache" / "mnist"
    assert not list(folder.glob("train-images*")) and not list(folder.glob(".*part"))


def test_offline_without_cache(tmp_path, monkeypatch):
    _mirror(tmp_path, monkeypatch)
    with pytest.raises(DatasetError, match="download=False"):
        load_dataset("mnist", download=False)
