"""Datasets by name (NumPy only here; shared by both sides).

``load_dataset(name, split)`` gives ``(images, labels, class_names)``. The
built-in ``fashion-mnist`` reads the IDX files, searched in order in an
explicit ``data_dir``, ``$TOSC_DATA_DIR``, Debian's ``dataset-fashion-mnist``
package (``/usr/share/datasets/fashion-mnist``) and the Keras cache
(``~/.keras/datasets/fashion-mnist``); when none has them it downloads the
original files into the Keras cache, checked against their sha256 sums. Any
other name is a Hugging Face dataset (hub id, saved folder or image folder;
:mod:`tosc_cache.hf_images`).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

#: Fashion-MNIST's class names, by label.
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
#: sha256 of the original files (as published by Zalando Research and mirrored by Keras).
SHA256 = {
    "train-images-idx3-ubyte.gz": "08dc20ab1689590a0bcd66e874647b6ee8464e2d501b5a3f1f78831db19a3fdc",  # noqa: E501
    "train-labels-idx1-ubyte.gz": "b0197879cbda89f3dc7b894f9fd52b858e68ea4182b6947c9d8c2b67e5f18dcc",  # noqa: E501
    "t10k-images-idx3-ubyte.gz": "78dcbbfb5a27efaf1b6c1d616caca68560be8766c5bffcb2791df9273a534229",  # noqa: E501
    "t10k-labels-idx1-ubyte.gz": "42bd18137a62d5998cdeae52bf3a0676ac6b706f5cf8439b47bb5b151ae3dccf",  # noqa: E501
}
#: Where the original files are fetched from, tried in order (Keras' mirror first).
MIRRORS = (
    "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
)
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


def find_fashion_mnist(
    data_dir: str | os.PathLike | None = None, download: bool | None = None
) -> Path:
    """Return the first folder that holds all four Fashion-MNIST IDX files.

    When none does, ``download`` (default: unless ``data_dir`` is given or
    ``$TOSC_NO_DOWNLOAD`` is set) fetches the original files into the Keras
    cache, checked against :data:`SHA256`; a file is renamed into place only
    once its sum is right.
    """
    names = list(SHA256)
    searched = candidate_dirs(data_dir)
    for folder in searched:
        if all((folder / name).is_file() for name in names):
            return folder
    if download is None:
        download = data_dir is None and not os.environ.get("TOSC_NO_DOWNLOAD")
    failure = ""
    if download:
        try:
            return fetch_fashion_mnist(KERAS_DIR)
        except OSError as err:
            failure = f" Downloading them failed ({err})."
    raise DatasetNotFoundError(
        "Fashion-MNIST not found; looked in " + ", ".join(str(d) for d in searched)
        + "." + failure + " " + HOW_TO_GET
    )


def fetch_fashion_mnist(folder: Path, mirrors: Sequence[str] = MIRRORS) -> Path:
    """Download the four original files into ``folder``, each checked against its sha256."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, expected in SHA256.items():
        target = folder / name
        if target.is_file() and _sha256(target) == expected:
            continue
        errors = []
        for mirror in mirrors:
            # a name of this download's own: two processes fetching at once (two test runs,
            # two jobs) never write, check or delete each other's file
            fd, tmp = tempfile.mkstemp(prefix=name + ".", suffix=".part", dir=folder)
            tmp = Path(tmp)
            try:
                with open(fd, "wb") as out, \
                        urllib.request.urlopen(mirror + name, timeout=60) as response:
                    while chunk := response.read(1 << 20):
                        out.write(chunk)
                got = _sha256(tmp)
                if got != expected:
                    raise OSError(f"{mirror + name} has sha256 {got[:12]}..., expected "
                                  f"{expected[:12]}...")
                tmp.chmod(0o644)  # mkstemp's file is the owner's alone; a data file is not
                os.replace(tmp, target)
                break
            except OSError as err:
                errors.append(str(err))
            finally:
                tmp.unlink(missing_ok=True)
        else:
            raise OSError(f"{name}: " + "; ".join(errors))
    return folder


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


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


def load_dataset(
    name: Any, split: str, data_dir: str | os.PathLike | None = None,
    image_column: str | None = None, label_column: str | None = None,
    resize: Sequence[int] | None = None, channels: int | None = None,
) -> tuple[Any, np.ndarray, tuple[str, ...]]:
    """Images, labels and class names of one split of a dataset.

    ``name``: ``"fashion-mnist"`` (built in, uint8 ``[N, 28, 28]``); a hub id,
    a folder saved with ``save_to_disk`` or an image folder (Hugging Face
    ``datasets``, :func:`tosc_cache.hf_images.load_split`); or a
    ``datasets.Dataset`` object. ``image_column``/``label_column`` override
    the auto-detected columns, ``resize=(H, W)`` resizes every image,
    ``channels`` (1 or 3) fixes grey or RGB (default: the first image's).
    """
    if isinstance(name, str) and name == "fashion-mnist":
        if image_column or label_column or resize or channels:
            raise ValueError("fashion-mnist is built in: --image-column, --label-column and "
                             "--resize, --channels do not apply to it.")
        images, labels = load_fashion_mnist(split, data_dir)
        return images, labels, FASHION_MNIST_CLASSES
    from . import hf_images

    if not isinstance(name, (str, os.PathLike)):  # a datasets.Dataset object
        return hf_images.split_arrays(name, "the dataset given", image_column, label_column,
                                      resize, channels)
    return hf_images.load_split(name, split, image_column, label_column, resize, channels)
