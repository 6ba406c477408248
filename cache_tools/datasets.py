"""Fashion-MNIST from local IDX files (NumPy only; shared by both sides).

Searched, in order: an explicit ``data_dir``; ``$TOSC_DATA_DIR``; Debian's
``dataset-fashion-mnist`` package (``/usr/share/datasets/fashion-mnist``); the
Keras cache (``~/.keras/datasets/fashion-mnist``).
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
KERAS_DIR = Path("~/.keras/datasets/fashion-mnist").expanduser()
SPLITS = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", 60000),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", 10000),
}
HOW_TO_GET = (
    "Install Debian's package (`sudo apt-get install dataset-fashion-mnist`, which puts "
    f"the files in {DEBIAN_DIR}), or pass a folder holding the four IDX .gz files "
    "(data_dir= / --data-dir, or $TOSC_DATA_DIR)."
)


class DatasetNotFoundError(FileNotFoundError):
    """The dataset files are not where we looked."""


class DatasetFormatError(ValueError):
    """A dataset file exists but is not a valid IDX file of the expected size."""


def candidate_dirs(data_dir: str | os.PathLike | None = None) -> list[Path]:
    """Folders searched for the IDX files, in order."""
    if data_dir is not None:
        return [Path(data_dir).expanduser()]
    dirs = []
    if os.environ.get("TOSC_DATA_DIR"):
        dirs.append(Path(os.environ["TOSC_DATA_DIR"]).expanduser())
    return dirs + [DEBIAN_DIR, KERAS_DIR]


def find_fashion_mnist(data_dir: str | os.PathLike | None = None) -> Path:
    """Return the first folder that holds all four Fashion-MNIST IDX files."""
    names = [name for images, labels, _ in SPLITS.values() for name in (images, labels)]
    searched = candidate_dirs(data_dir)
    for folder in searched:
        if all((folder / name).is_file() for name in names):
            return folder
    raise DatasetNotFoundError(
        "Fashion-MNIST not found; looked in " + ", ".join(str(d) for d in searched)
        + ". " + HOW_TO_GET
    )


def read_idx(path: Path) -> np.ndarray:
    """Read a (gzipped) IDX file of unsigned bytes into an array."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as err:
        raise DatasetFormatError(f"{path} cannot be read ({err}); is it truncated?") from err
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DatasetFormatError(f"{path} is not an IDX file of unsigned bytes.")
    ndim = raw[3]
    header = 4 + 4 * ndim
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    if len(raw) != header + int(np.prod(dims)):
        raise DatasetFormatError(
            f"{path} holds {len(raw) - header} bytes of data but its header says {dims}; "
            "the file is truncated or corrupted. " + HOW_TO_GET
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def load_fashion_mnist(
    split: str = "train", data_dir: str | os.PathLike | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Load one split: ``images`` uint8 ``[N, 28, 28]`` and ``labels`` uint8 ``[N]``."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {tuple(SPLITS)}; got {split!r}.")
    folder = find_fashion_mnist(data_dir)
    images_name, labels_name, count = SPLITS[split]
    images = read_idx(folder / images_name)
    labels = read_idx(folder / labels_name)
    if images.shape != (count, 28, 28) or labels.shape != (count,):
        raise DatasetFormatError(
            f"Fashion-MNIST {split} in {folder} has images {images.shape} and labels "
            f"{labels.shape}; expected ({count}, 28, 28) and ({count},)."
        )
    if labels.max() >= len(FASHION_MNIST_CLASSES):
        raise DatasetFormatError(f"{folder / labels_name} has labels outside 0..9.")
    return images, labels


def dataset_digest(images: np.ndarray, labels: np.ndarray, indices: np.ndarray) -> str:
    """sha256 of the exact samples (images and labels) at ``indices``, in that order."""
    import hashlib

    indices = np.asarray(indices, dtype=np.int64)
    h = hashlib.sha256(f"{images.dtype.str}{images.shape[1:]}|{len(indices)}|".encode())
    h.update(np.ascontiguousarray(images[indices]).tobytes())
    h.update(np.ascontiguousarray(labels[indices].astype(np.int64)).tobytes())
    return h.hexdigest()


def row_hashes(images: np.ndarray, labels: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """A 64-bit content hash per sample (uint64 ``[len(indices)]``): BLAKE2b of the
    image's dtype, shape and bytes and its label, so a single altered, moved or
    relabelled sample is found without hashing the whole split again."""
    import hashlib

    indices = np.asarray(indices, dtype=np.int64)
    out = np.empty(len(indices), dtype=np.uint64)
    for i, index in enumerate(indices):
        image = np.ascontiguousarray(images[index])
        h = hashlib.blake2b(f"{image.dtype.str}{image.shape}|{int(labels[index])}|".encode(),
                            digest_size=8)
        h.update(image.tobytes())
        out[i] = int.from_bytes(h.digest(), "little")
    return out


def load_dataset(
    name: str, split: str, data_dir: str | os.PathLike | None = None
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Raw images, labels and class names of a dataset known to the tools."""
    if name != "fashion-mnist":
        raise ValueError(f"Unknown dataset {name!r}; supported: fashion-mnist.")
    images, labels = load_fashion_mnist(split, data_dir)
    return images, labels, FASHION_MNIST_CLASSES
