"""Labelled image datasets through Hugging Face ``datasets`` (imported lazily).

A split becomes ``(images, labels, class_names)``, as the built-in
Fashion-MNIST loader gives it: ``images`` is an :class:`HFImages`, an
array-like of uint8 images (``[N, H, W]`` grey or ``[N, H, W, 3]`` RGB) decoded
from the memory-mapped Arrow table only for the rows asked, so a split is never
copied into memory; ``labels`` int64 ``[N]``; ``class_names`` from the label
column's ``ClassLabel``.

Sources: a hub id (online), a folder written by ``Dataset.save_to_disk`` or
``DatasetDict.save_to_disk``, an image folder (one sub-folder per class,
optionally under ``train/``, ``test/`` ... split folders; without them the
folder is the ``train`` split), or a
``datasets.Dataset`` object (Python API).
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .datasets import DatasetFormatError, DatasetNotFoundError
from .errors import MissingDependencyError

#: What to install for datasets other than the built-in Fashion-MNIST.
HF_INSTALL = "pip install 'tosc-sionna[hf]'"
#: Column names tried, in order, when none is given.
IMAGE_COLUMNS = ("image", "img", "pixel_values")
LABEL_COLUMNS = ("label", "labels", "fine_label", "coarse_label")
#: PIL modes decoded as grey; everything else (RGB, RGBA, P, CMYK, ...) becomes RGB.
GREY_MODES = ("1", "L", "I", "I;16", "F")
#: Rows decoded per Arrow read when hashing or scanning a split.
BLOCK_ROWS = 256
#: Seconds a hub id waits for a connection to the Hub before it is taken as unreachable.
HUB_PROBE_SECONDS = 1.5


def _datasets() -> Any:
    """Hugging Face ``datasets`` (with Pillow, which decodes its images), or a
    :class:`~tosc_cache.errors.MissingDependencyError` saying what to install."""
    try:
        import datasets
        import PIL  # noqa: F401
    except ImportError as err:
        raise MissingDependencyError(
            f"Reading this dataset needs Hugging Face datasets and Pillow ({err.name} is "
            f"missing): {HF_INSTALL}") from err
    return datasets


class HFImages:
    """uint8 images of one column of a ``datasets.Dataset``, decoded on access.

    Parameters
    ----------
    dataset : datasets.Dataset
    column : str
        An ``Image`` column.
    resize : (height, width) or None
        Resize every image to this size (bilinear, PIL); None requires all
        images to have the first image's size (a differing one raises
        :class:`~tosc_cache.datasets.DatasetFormatError` when it is read).
    channels : 1, 3 or None
        Grey (``[N, H, W]``) or RGB (``[N, H, W, 3]``). None: the first image
        decides; a grey dataset then refuses a colour image when it meets one
        (a colour dataset converts grey images, losslessly). RGBA drops its
        alpha channel, as transformers' image processors do.
    """

    def __init__(self, dataset: Any, column: str,
                 resize: Sequence[int] | None = None, channels: int | None = None) -> None:
        self.dataset = dataset.select_columns([column])
        self.column = column
        self.resize = None if resize is None else (int(resize[0]),
                                                           int(resize[1]))
        first = self.dataset[0][column]
        if channels not in (None, 1, 3):
            raise ValueError(f"channels must be 1 (grey) or 3 (RGB); got {channels}.")
        self.channels = channels
        grey = first.mode in GREY_MODES if channels is None else channels == 1
        self.mode = "L" if grey else "RGB"
        height, width = self.resize or (first.size[1], first.size[0])
        self.shape = (len(self.dataset), height, width) + (() if self.mode == "L" else (3,))
        self.dtype = np.dtype(np.uint8)
        self.ndim = len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def _decode(self, row: int, image: Any) -> np.ndarray:
        from PIL import Image

        if image.mode != self.mode:
            if self.mode == "L" and self.channels is None and image.mode not in GREY_MODES:
                raise DatasetFormatError(
                    f"Row {row} is a colour image ({image.mode}), but the first image is grey, "
                    "so the dataset was read as grey. Read it as RGB with --channels 3 "
                    "(channels=3), or as grey with --channels 1.")
            image = image.convert(self.mode)
        height, width = self.shape[1:3]
        if image.size != (width, height):
            if self.resize is None:
                raise DatasetFormatError(
                    f"Images of different sizes: row {row} is {image.size[1]}x{image.size[0]}, "
                    f"the first is {height}x{width}. Pass an image size to resize them all "
                    "(--resize H W; resize=(H, W) in Python)."
                )
            image = image.resize((width, height), Image.BILINEAR)
        return np.asarray(image, dtype=np.uint8)

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            row = int(key) + (len(self) if key < 0 else 0)
            if not 0 <= row < len(self):
                raise IndexError(f"row {key} out of range for {len(self)} images.")
            return self._decode(row, self.dataset[row][self.column])
        rows = (np.arange(*key.indices(len(self))) if isinstance(key, slice)
                else np.asarray(key))
        rows = rows.astype(np.int64).ravel()
        if len(rows) and (rows.min() < 0 or rows.max() >= len(self)):
            raise IndexError(f"rows out of range for {len(self)} images.")
        out = np.empty((len(rows),) + self.shape[1:], dtype=np.uint8)
        for start in range(0, len(rows), BLOCK_ROWS):
            block = rows[start : start + BLOCK_ROWS]
            images = self.dataset[block.tolist()][self.column]  # one Arrow take per block
            for i, (row, image) in enumerate(zip(block, images, strict=True)):
                out[start + i] = self._decode(int(row), image)
        return out

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        array = self[np.arange(len(self))]
        return array if dtype is None else array.astype(dtype)


def _pick(columns: Sequence[str], wanted: str | None, candidates: Sequence[str],
          kind: str, source: str, feature_type: type | None, features: Any) -> str:
    if wanted is not None:
        if wanted not in columns:
            raise DatasetFormatError(
                f"{source} has no column {wanted!r}; its columns are {list(columns)}.")
        return wanted
    for name in candidates:
        if name in columns:
            return name
    if feature_type is not None:
        for name in columns:
            if isinstance(features[name], feature_type):
                return name
    raise DatasetFormatError(
        f"{source} has no {kind} column (looked for {list(candidates)} and a "
        f"{getattr(feature_type, '__name__', kind)} feature among {list(columns)}); name it "
        f"with --{kind}-column."
    )


def split_arrays(
    dataset: Any, source: str, image_column: str | None = None,
    label_column: str | None = None, resize: Sequence[int] | None = None,
    channels: int | None = None,
) -> tuple[HFImages, np.ndarray, tuple[str, ...]]:
    """``(images, labels, class_names)`` of a ``datasets.Dataset``."""
    datasets = _datasets()
    if len(dataset) == 0:
        raise DatasetFormatError(f"{source} is empty: no image to use.")
    columns = list(dataset.column_names)
    features = dataset.features
    image = _pick(columns, image_column, IMAGE_COLUMNS, "image", source, datasets.Image,
                  features)
    if not isinstance(features[image], datasets.Image):
        raise DatasetFormatError(f"{source}: column {image!r} holds {features[image]}, not "
                                 "images; name the image column with --image-column.")
    label = _pick(columns, label_column, LABEL_COLUMNS, "label", source, datasets.ClassLabel,
                  features)
    labels = np.asarray(dataset.with_format("numpy", columns=[label])[label])
    if labels.dtype.kind not in "iu" or labels.ndim != 1:
        raise DatasetFormatError(f"{source}: column {label!r} is not one integer label per "
                                 "image; name the label column with --label-column.")
    if labels.min() < 0:
        raise DatasetFormatError(
            f"{source}: column {label!r} has labels < 0 (unlabelled rows, e.g. a test split "
            "without labels): a teacher cache needs labelled images.")
    feature = features[label]
    if isinstance(feature, datasets.ClassLabel):
        names = tuple(feature.names)
    else:  # integer labels without names: name them by number
        names = tuple(str(i) for i in range(int(labels.max()) + 1))
    if labels.max() >= len(names):
        raise DatasetFormatError(f"{source}: label {int(labels.max())} is out of range for "
                                 f"{len(names)} classes.")
    return HFImages(dataset, image, resize, channels), labels.astype(np.int64), names


def is_saved_dataset(path: Path) -> bool:
    """A folder written by ``Dataset.save_to_disk`` or ``DatasetDict.save_to_disk``."""
    return (path / "dataset_dict.json").is_file() or (path / "state.json").is_file()


def load_split(
    source: str | os.PathLike, split: str, image_column: str | None = None,
    label_column: str | None = None, resize: Sequence[int] | None = None,
    channels: int | None = None,
) -> tuple[HFImages, np.ndarray, tuple[str, ...]]:
    """One split of a saved dataset folder, an image folder, or a hub dataset."""
    datasets = _datasets()
    path = Path(source).expanduser()
    if path.is_dir() and is_saved_dataset(path):
        try:
            loaded = datasets.load_from_disk(str(path))
        except Exception as err:  # noqa: BLE001 - datasets raises many kinds here
            raise DatasetFormatError(
                f"{path} looks like a saved dataset but cannot be read ({type(err).__name__}: "
                f"{err}); it may be empty, partial or from another datasets version.") from err
        if isinstance(loaded, datasets.DatasetDict):
            if split not in loaded:
                raise DatasetNotFoundError(
                    f"{path} has no split {split!r}; its splits are {list(loaded)}.")
            loaded = loaded[split]
        elif split != (str(loaded.split) if loaded.split is not None else "train"):
            # one saved split: never hand it out under another name (a test split
            # that is the training data)
            raise DatasetNotFoundError(
                f"{path} holds one split ({loaded.split or 'unnamed, taken as train'}), not "
                f"{split!r}; save a DatasetDict with every split you need.")
        return split_arrays(loaded, f"{path} ({split})", image_column, label_column,
                            resize, channels)
    if path.is_dir():
        return split_arrays(_image_folder(path, split), f"image folder {path} ({split})",
                            image_column, label_column, resize, channels)
    if path.exists() or str(source).startswith((".", "/", "~")):
        raise DatasetNotFoundError(
            f"{source} is not a dataset folder (saved with save_to_disk, or one sub-folder "
            "of images per class).")
    # Unreachable (no network, a firewall) and not in offline mode, the hub client would
    # retry for ~25 s: ask once, briefly, and then read the HF cache only.
    unreachable = not datasets.config.HF_HUB_OFFLINE and not hub_reachable()
    try:
        with _hub_offline(datasets) if unreachable else contextlib.nullcontext():
            loaded = datasets.load_dataset(str(source), split=split)
    except Exception as err:  # noqa: BLE001 - offline, unknown id, unknown split: all one story
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if unreachable:
            reason = f"the Hub, {_endpoint()}, cannot be reached" + (
                ", and the HF cache does not hold it" if isinstance(err, ConnectionError)
                else f"; from the HF cache: {reason}")
        raise DatasetNotFoundError(
            f"Could not load the Hugging Face dataset {source!r}, split {split!r} ({reason}). "
            "A hub id needs network access (or a filled HF cache); offline, pass a folder "
            "written by save_to_disk or an image folder instead."
        ) from err
    return split_arrays(loaded, f"{source} ({split})", image_column, label_column, resize,
                        channels)


def _endpoint() -> str:
    from huggingface_hub import constants

    return str(constants.ENDPOINT)


def hub_reachable(timeout: float = HUB_PROBE_SECONDS) -> bool:
    """Whether a TCP connection to the Hugging Face Hub (``HF_ENDPOINT``), or to the
    proxy the environment names for it, opens within ``timeout`` seconds, name
    lookup included (it runs in a thread so that a hanging lookup cannot hold us)."""
    from urllib.parse import urlsplit
    from urllib.request import getproxies, proxy_bypass

    url = urlsplit(_endpoint())
    default_port = 443 if url.scheme == "https" else 80
    host, port = url.hostname or "", url.port or default_port
    proxy = getproxies().get(url.scheme)
    if proxy and not proxy_bypass(host):
        via = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        host, port = via.hostname or "", via.port or (443 if via.scheme == "https" else 80)
    opened: list[bool] = []

    def connect() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            opened.append(True)
        except (OSError, ValueError):
            pass

    probe = threading.Thread(target=connect, name="hub-probe", daemon=True)
    probe.start()
    probe.join(timeout)
    return bool(opened)


@contextlib.contextmanager
def _hub_offline(datasets: Any) -> Iterator[None]:
    """Hugging Face's offline mode (``HF_HUB_OFFLINE=1``: the HF cache only) for one call."""
    from huggingface_hub import constants

    saved = (constants.HF_HUB_OFFLINE, datasets.config.HF_HUB_OFFLINE,
             getattr(datasets.config, "HF_DATASETS_OFFLINE", None))
    constants.HF_HUB_OFFLINE = datasets.config.HF_HUB_OFFLINE = True
    if saved[2] is not None:
        datasets.config.HF_DATASETS_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE, datasets.config.HF_HUB_OFFLINE = saved[:2]
        if saved[2] is not None:
            datasets.config.HF_DATASETS_OFFLINE = saved[2]


def _image_folder(path: Path, split: str) -> Any:
    """An image folder as a Dataset: ``path/[split/]class/*.png`` (labels from folder names)."""
    datasets = _datasets()
    root = path / split if (path / split).is_dir() else path
    if root == path and any((path / s).is_dir() for s in ("train", "test", "validation")):
        raise DatasetNotFoundError(f"{path} has split folders but no {split!r}.")
    if root == path and split != "train":
        raise DatasetNotFoundError(
            f"{path} has no split folders: it is one split, 'train'. Put the images of other "
            f"splits under {path}/{split}/<class>/ (and the training ones under train/).")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise DatasetFormatError(f"{root} has no class sub-folders (one per class, holding "
                                 "its images).")
    files, labels = [], []
    for label, name in enumerate(classes):
        found = sorted(p for p in (root / name).iterdir()
                       if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp", ".gif",
                                               ".webp", ".tif", ".tiff"))
        files += [str(p) for p in found]
        labels += [label] * len(found)
    if not files:
        raise DatasetFormatError(f"{root} has class folders but no images in them.")
    features = datasets.Features({"image": datasets.Image(),
                                  "label": datasets.ClassLabel(names=classes)})
    return datasets.Dataset.from_dict({"image": files, "label": labels}, features=features)
