"""Fashion-MNIST from Debian's package, and the errors when it is not there."""

import gzip

import numpy as np
import pytest

from tosc_cache import datasets
from tosc_sionna.data import load_fashion_mnist


def test_real_fashion_mnist_loads():
    x, y = load_fashion_mnist("test")
    assert x.shape == (10000, 28, 28, 1) and x.dtype == np.float32
    assert 0.0 <= x.min() and x.max() <= 1.0
    np.testing.assert_array_equal(np.bincount(y), np.full(10, 1000))
    x_train, y_train = datasets.load_fashion_mnist("train")
    assert x_train.shape == (60000, 28, 28) and x_train.dtype == np.uint8
    assert y_train[:5].tolist() == [9, 0, 0, 3, 0]  # the published first labels


def test_missing_dataset_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets, "DEBIAN_DIR", tmp_path / "none")
    monkeypatch.setattr(datasets, "KERAS_DIR", tmp_path / "none2")
    monkeypatch.delenv("TOSC_DATA_DIR", raising=False)
    with pytest.raises(datasets.DatasetNotFoundError, match="apt-get install dataset-fashion"):
        datasets.load_fashion_mnist("train")
    with pytest.raises(datasets.DatasetNotFoundError, match=str(tmp_path / "empty")):
        datasets.load_fashion_mnist("train", data_dir=tmp_path / "empty")


def _write_idx(path, array):
    header = bytes([0, 0, 8, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_truncated_file_is_refused(tmp_path):
    for images, labels, count in datasets.SPLITS.values():
        _write_idx(tmp_path / images, np.zeros((count, 28, 28)))
        _write_idx(tmp_path / labels, np.zeros(count))
    x, _ = datasets.load_fashion_mnist("test", data_dir=tmp_path)
    assert x.shape == (10000, 28, 28)
    raw = gzip.open(tmp_path / "t10k-images-idx3-ubyte.gz").read()
    with gzip.open(tmp_path / "t10k-images-idx3-ubyte.gz", "wb") as f:
        f.write(raw[:-100])
    with pytest.raises(datasets.DatasetFormatError, match="truncated or corrupted"):
        datasets.load_fashion_mnist("test", data_dir=tmp_path)
    with pytest.raises(ValueError, match="split must be one of"):
        datasets.load_fashion_mnist("validation", data_dir=tmp_path)


def test_hugging_face_datasets_missing_says_what_to_install(monkeypatch, tmp_path):
    import sys

    from tosc_cache.errors import MissingDependencyError

    monkeypatch.setitem(sys.modules, "datasets", None)  # as if it were not installed
    with pytest.raises(MissingDependencyError, match=r"pip install 'tosc-sionna\[hf\]'"):
        datasets.load_dataset(str(tmp_path), "train")
