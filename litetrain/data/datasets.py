"""MNIST and Fashion-MNIST from their IDX files: a local folder, or downloaded once.

Files are looked for in ``data_dir`` (named as published, ``.gz`` or not). Without
``data_dir`` they come from the cache folder (``$LITETRAIN_CACHE`` or
``~/.cache/litetrain``), downloaded there on first use from the published addresses;
every downloaded file must match its published MD5 before it is moved into the cache
(so a cache never holds a partial or corrupt file). Offline, or on a checksum mismatch,
the error says where to put the files by hand.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DatasetError
from .idx import read_idx


@dataclass(frozen=True)
class _Source:
    mirrors: tuple[str, ...]
    md5: dict[str, str]  # file name -> published MD5 of the .gz file
    classes: tuple[str, ...]


_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
          "t10k-labels-idx1-ubyte")

SOURCES: dict[str, _Source] = {
    "mnist": _Source(
        ("https://ossci-datasets.s3.amazonaws.com/mnist/",
         "https://storage.googleapis.com/cvdf-datasets/mnist/"),
        dict(zip(_FILES, ("f68b3c2dcbeaaa9fbdd348bbdeb94873", "d53e105ee54ea40749a09fcbcd1e9432",
                          "9fb629c4189551a2d022fa330f9573f3", "ec29112dd5afa0611ce80d1b7f02629c"),
                 strict=True)),
        tuple(str(d) for d in range(10))),
    "fashion-mnist": _Source(
        ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
         "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"),
        dict(zip(_FILES, ("8d4fb7e6c68d591d4c3dfef9ec88bf0d", "25c81989df183df01b3e8a0aad5dffbe",
                          "bef4ecab320f06d8554ea6380940ec79", "bb300cfdad3c16e7a12a480ee83cd310"),
                 strict=True)),
        ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
         "Bag", "Ankle boot")),
}

Split = tuple[np.ndarray, np.ndarray]


def cache_dir() -> Path:
    return Path(os.environ.get("LITETRAIN_CACHE") or Path.home() / ".cache" / "litetrain")


def class_names(name: str) -> tuple[str, ...]:
    return _source(name).classes


def _source(name: str) -> _Source:
    key = name.lower().replace("_", "-")
    if key not in SOURCES:
        raise DatasetError(f"unknown data set '{name}'; known: {', '.join(SOURCES)}")
    return SOURCES[key]


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(name: str, src: _Source, stem: str, folder: Path, timeout: float) -> Path:
    """Fetch ``stem.gz`` into ``folder`` atomically, verified against its MD5."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{stem}.gz"
    problems = []
    for base in src.mirrors:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{stem}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out, \
                    urllib.request.urlopen(base + f"{stem}.gz", timeout=timeout) as resp:
                for block in iter(lambda: resp.read(1 << 20), b""):
                    out.write(block)
            got = _md5(Path(tmp))
            if got != src.md5[stem]:
                problems.append(f"{base}: checksum {got} != published {src.md5[stem]}")
                continue
            os.replace(tmp, target)
            return target
        except OSError as e:
            problems.append(f"{base}: {getattr(e, 'reason', None) or e}")
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    raise DatasetError(
        f"could not download {name} file {stem}.gz ({'; '.join(problems)}). Without network, "
        f"download the four files {', '.join(f + '.gz' for f in _FILES)} elsewhere and pass "
        f"their folder as data_dir (CLI: --data-dir DIR), or put them in {folder}")


def _find(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / f"{stem}.gz", folder / stem):
        if candidate.is_file():
            return candidate
    return None


def load_dataset(name: str, data_dir: str | Path | None = None, download: bool = True,
                 timeout: float = 30.0) -> tuple[Split, Split]:
    """``((train_images, train_labels), (test_images, test_labels))`` of ``name``
    ("mnist" or "fashion-mnist"): images float32 in [0, 1], ``[n, 28, 28]``; labels int64.
    """
    src = _source(name)
    folder = Path(data_dir) if data_dir is not None else cache_dir() / name.lower()
    arrays = []
    for stem in _FILES:
        path = _find(folder, stem)
        if path is None:
            if data_dir is not None:
                raise DatasetError(f"{folder}: no {stem}[.gz]; the folder needs the four "
                                   f"published {name} IDX files ({', '.join(_FILES)})")
            if not download:
                raise DatasetError(f"{stem}.gz is not in the cache {folder} and download=False")
            path = _download(name, src, stem, folder, timeout)
        arrays.append(read_idx(path))
    (tx, ty, vx, vy) = arrays
    for images, labels, split in ((tx, ty, "train"), (vx, vy, "test")):
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise DatasetError(f"{folder}: {split} images {list(images.shape)} and labels "
                               f"{list(labels.shape)} do not pair up as [n, h, w] and [n]")
    scale = np.float32(1 / 255)
    return ((tx.astype(np.float32) * scale, ty.astype(np.int64)),
            (vx.astype(np.float32) * scale, vy.astype(np.int64)))
