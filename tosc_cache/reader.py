"""Read a finalized teacher cache: open, check, and reconstruct rows (NumPy + h5py)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from . import __version__
from .errors import (
    CacheCorruptError,
    CacheFormatError,
    CacheIncompleteError,
    CacheMismatchError,
)
from .features import decode_features
from .integrity import (
    INTEGRITY_CHECKS,
    SAMPLE_ROWS,
    RunningDigest,
    array_digest,
    dataset_digest,
    differing_rows,
    row_hash_digest,
)
from .spec import FORMAT_NAME, READ_VERSIONS, CacheSpec
from .writer import CHUNK_ROWS, staging_dir

#: Compressed teacher outputs up to this size are held in memory by a reader;
#: larger ones are read from the file per batch.
RESIDENT_BYTES = 2 << 30


class TeacherCache:
    """A finalized cache, opened and checked (format, version, completeness).

    Opening reads the attributes, checks every array's shape and dtype, and
    loads the row-independent arrays (sample index, labels, view seeds, row
    hashes, a basis or head). The compressed teacher outputs are held in
    memory as stored (never expanded to ``[N, V, C]``) when they fit in
    ``resident_bytes``, else read from the file for the rows asked;
    :meth:`teacher_probs` reconstructs distributions only for those rows.

    ``check_integrity`` chooses what is hashed on opening: ``"quick"``
    (default) the digests of the arrays loaded into memory on opening (and, for caches
    before version 3, of everything: those files are small and have no chunk
    checksums); the teacher outputs of a version-3 file are covered by HDF5
    chunk checksums verified on every read. ``"full"`` (or ``True``, as
    ``tosc-cache verify``) recomputes every digest, streaming; ``"none"`` (or
    ``False``) skips the digests.
    """

    def __init__(
        self, path: str | os.PathLike, check_integrity: bool | str = "quick",
        resident_bytes: int = RESIDENT_BYTES,
    ) -> None:
        self.path = Path(path)
        level = (("full" if check_integrity else "none") if isinstance(check_integrity, bool)
                 else check_integrity)
        if level not in INTEGRITY_CHECKS:
            raise ValueError(f"check_integrity must be a bool or one of {INTEGRITY_CHECKS}; "
                             f"got {check_integrity!r}.")
        if not self.path.exists():
            stage = staging_dir(self.path)
            if stage.exists():
                raise CacheIncompleteError(
                    f"{self.path} does not exist, but {stage} holds an interrupted "
                    "extraction: run the same `tosc-cache extract` command again to finish it."
                )
            raise FileNotFoundError(f"No teacher cache at {self.path}.")
        self._handle: h5py.File | None = None
        self._pid = -1
        try:
            self._open(level, resident_bytes)
        except BaseException:
            self.close()
            raise
        if len(self._resident) == len(self.layout):
            self.close()  # everything is in memory: do not hold the file open

    def _open(self, level: str, resident_bytes: int) -> None:
        try:
            f = self._file()
            self.attrs = {k: _attr(v) for k, v in f.attrs.items()}
            stored = {}
            f.visititems(lambda n, o: stored.__setitem__(n, (o.shape, o.dtype))
                         if isinstance(o, h5py.Dataset) else None)
        except OSError as err:
            raise CacheFormatError(
                f"{self.path} is not a readable HDF5 file ({err}); it may be truncated or "
                "corrupted: extract it again."
            ) from err
        if self.attrs.get("format") != FORMAT_NAME:
            raise CacheFormatError(f"{self.path} is not a tosc-sionna teacher cache.")
        version = self.attrs.get("format_version")
        if version not in READ_VERSIONS:
            raise CacheFormatError(
                f"{self.path} has cache format version {version}; this tosc-sionna "
                f"({__version__}) reads versions {', '.join(map(str, READ_VERSIONS))}. Extract "
                "it again with this version, or install the tosc-sionna that wrote it."
            )
        if not self.attrs.get("complete", False):
            raise CacheIncompleteError(f"{self.path} is not marked complete.")
        self.spec = CacheSpec.from_json(self.attrs["spec"], format_version=version)
        self.layout = self.spec.array_layout()
        for name, (shape, dtype) in self.layout.items():
            if name not in stored:
                raise CacheCorruptError(f"{self.path} lacks the array {name!r}.")
            if stored[name] != (shape, dtype):
                raise CacheCorruptError(
                    f"{self.path}: {name} is {stored[name][0]} {stored[name][1]}, "
                    f"expected {shape} {dtype}."
                )
        row_names = self.spec.row_arrays()
        row_bytes = sum(int(np.prod(self.layout[n][0])) * self.layout[n][1].itemsize
                        for n in row_names)
        resident = [n for n in self.layout if n not in row_names or row_bytes <= resident_bytes]
        try:
            self._resident = {name: f[name][()] for name in resident}
        except OSError as err:  # a chunk checksum failed
            raise CacheCorruptError(f"{self.path}: {err}; the file is corrupted: extract it "
                                    "again.") from err
        if level == "full" or (level == "quick" and version < 3):
            self.check_integrity()
        elif level == "quick":
            self.check_integrity(resident_only=True)

    def _file(self) -> h5py.File:
        # one handle per process: h5py handles do not survive fork (reader workers)
        if self._handle is None or self._pid != os.getpid():
            self._handle = h5py.File(self.path, "r")
            self._pid = os.getpid()
        return self._handle

    def close(self) -> None:
        """Close the file (it is reopened if rows are read again)."""
        if getattr(self, "_handle", None) is not None and self._pid == os.getpid():
            self._handle.close()
        self._handle = None

    def __del__(self) -> None:
        self.close()

    def __enter__(self) -> TeacherCache:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_handle"] = None
        return state

    def check_integrity(self, resident_only: bool = False) -> None:
        """Recompute the digests (streaming for arrays not held in memory)."""
        digests = json.loads(self.attrs.get("digests", "{}"))
        for name, (shape, dtype) in self.layout.items():
            if name in self._resident:
                digest = array_digest(self._resident[name])
            elif resident_only:
                continue
            else:
                running, dataset = RunningDigest(shape, dtype), self._file()[name]
                step = dataset.chunks[0] if dataset.chunks else CHUNK_ROWS
                for start in range(0, shape[0], step):
                    running.update(self._read(name, slice(start, start + step)))
                digest = running.hexdigest()
            if digests.get(name) != digest:
                raise CacheCorruptError(
                    f"{self.path}: the contents of {name!r} differ from the digest recorded "
                    "when the cache was finalized; the file was altered or corrupted. "
                    "Extract it again."
                )

    def _read(self, name: str, rows: Any) -> np.ndarray:
        """``array[rows]`` from memory or the file (rows: a slice or an int array)."""
        if name in self._resident:
            return self._resident[name][rows]
        dataset = self._file()[name]
        try:
            if isinstance(rows, slice):
                return dataset[rows]
            rows = np.asarray(rows, dtype=np.int64)
            # one slice read per chunk touched (h5py's point selection of scattered
            # rows is an order of magnitude slower), then back to the order asked
            step = dataset.chunks[0] if dataset.chunks else len(rows) or 1
            chunks, inverse = np.unique(rows // step, return_inverse=True)
            blocks = [dataset[c * step : (c + 1) * step] for c in chunks]
            offsets = np.cumsum([0] + [len(b) for b in blocks])[:-1]
            stacked = np.concatenate(blocks) if blocks else dataset[0:0]
            where = offsets[inverse.reshape(rows.shape)] + rows % step
            return stacked[where]
        except OSError as err:
            raise CacheCorruptError(f"{self.path}: reading {name} failed ({err}); the file is "
                                    "corrupted: extract it again.") from err

    # -- contents ---------------------------------------------------------------

    @property
    def num_samples(self) -> int:
        return self.spec.num_samples

    @property
    def num_views(self) -> int:
        return self.spec.num_views

    @property
    def num_classes(self) -> int:
        return self.spec.num_classes

    @property
    def arrays(self) -> Mapping[str, np.ndarray]:
        """Every stored array by name (read in full on access if not held in memory)."""
        return _CacheArrays(self)

    @property
    def sample_index(self) -> np.ndarray:
        return self._resident["sample_index"]

    @property
    def labels(self) -> np.ndarray:
        return self._resident["labels"]

    @property
    def view_seeds(self) -> np.ndarray:
        return self._resident["view_seeds"]

    @property
    def stored_bytes(self) -> int:
        """Uncompressed bytes of the stored teacher outputs (as stored, not expanded)."""
        return sum(int(np.prod(shape)) * dtype.itemsize
                   for name, (shape, dtype) in self.layout.items() if name.startswith("teacher/"))

    def teacher_probs(self, rows: Any = slice(None), views: Any = None) -> np.ndarray:
        """Reconstructed teacher distribution ``[rows, (views,) C]`` (float32).

        ``rows`` is a slice or an int array; ``views`` None gives all views,
        an int array (one per row) picks a view per row. Only those rows are
        read and decoded.
        """
        def pick(name: str) -> np.ndarray:
            a = self._read(name, rows)
            if views is None:
                return a
            return a[np.arange(len(a)), np.asarray(views)]

        codec = self.spec.codec
        stored = {name: pick(name) for name in codec.row_layout(self.spec)}
        return codec.decode(stored, self.spec, self._resident)

    def teacher_features(self, rows: Any = slice(None), views: Any = None) -> np.ndarray | None:
        """Pooled teacher features ``[rows, (views,) D]`` (float32), None if not stored.

        ``rows`` and ``views`` as in :meth:`teacher_probs`.
        """
        if self.spec.features is None:
            return None
        values = self._read("teacher/features", rows)
        scale = (self._read("teacher/features_scale", rows)
                 if "teacher/features_scale" in self.layout else None)
        if views is not None:
            pick = (np.arange(len(values)), np.asarray(views))
            values = values[pick]
            scale = None if scale is None else scale[pick]
        return decode_features(values, scale)

    def check_matches(self, dataset: str, split: str, dataset_digest: str) -> None:
        """Refuse to pair this cache with other data, saying what differs."""
        self._check_names(dataset, split)
        if dataset_digest != self.spec.dataset_digest:
            raise CacheMismatchError(
                f"{self.path} does not describe this data: the samples differ (dataset digest "
                f"{self.spec.dataset_digest[:12]}... in the cache, {dataset_digest[:12]}... "
                "for the data given): another version, order or subset of the data."
            )

    def _check_names(self, dataset: str, split: str) -> None:
        differs = []
        if dataset != self.spec.dataset:
            differs.append(f"dataset {self.spec.dataset!r} in the cache, {dataset!r} given")
        if split != self.spec.split:
            differs.append(f"split {self.spec.split!r} in the cache, {split!r} given")
        if differs:
            raise CacheMismatchError(
                f"{self.path} does not describe this data: " + "; ".join(differs) + "."
            )

    @property
    def read_options(self) -> dict[str, Any]:
        """How the cache's dataset was read: keyword arguments of
        :func:`tosc_cache.datasets.load_dataset` (columns, resize)."""
        options = self.spec.dataset_options
        return {key: options[key]
                for key in ("image_column", "label_column", "resize", "channels")
                if options.get(key) is not None}

    def check_data(
        self, dataset: str, split: str, images: np.ndarray, labels: np.ndarray,
        rows: str = "sample", sample_size: int = SAMPLE_ROWS, seed: int = 0,
        class_names: Sequence[str] | None = None,
    ) -> None:
        """Refuse to pair this cache with other data (``images``/``labels`` of the split).

        Version 3: compares the stored 64-bit content hash of ``sample_size``
        rows drawn from ``seed`` (``rows="sample"``) or of every row
        (``rows="all"``, which also checks the whole-split digest) with the data,
        naming the first rows that differ. Older caches: the whole-split digest.
        """
        if rows not in ("sample", "all"):
            raise ValueError(f"rows must be 'sample' or 'all'; got {rows!r}.")
        self._check_names(dataset, split)
        if class_names is not None and list(class_names) != list(self.spec.class_names):
            raise CacheMismatchError(
                f"{self.path} has the classes {self.spec.class_names[:10]}"
                f"{'...' if self.num_classes > 10 else ''} ({self.num_classes}); the data "
                f"given has {list(class_names)[:10]}{'...' if len(class_names) > 10 else ''} "
                f"({len(class_names)}): they must be the same classes in the same order.")
        index = self.sample_index
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels.")
        if len(index) and int(index.max()) >= len(images):
            raise CacheMismatchError(
                f"{self.path} indexes sample {int(index.max())}, but the data given has "
                f"only {len(images)} samples."
            )
        if "row_hash" not in self.layout:
            self.check_matches(dataset, split, dataset_digest(images, labels, index))
            return
        size = sample_size if rows == "sample" else len(index)
        bad, picked, got = differing_rows(images, labels, index, self._resident["row_hash"],
                                          size, seed)
        if len(bad):
            shown = ", ".join(f"row {r} (sample {int(index[r])})" for r in bad[:5])
            raise CacheMismatchError(
                f"{self.path} does not describe this data: {len(bad)} of {len(picked)} checked "
                f"rows differ ({shown}{', ...' if len(bad) > 5 else ''}): another version, order "
                "or subset of the data."
            )
        if rows == "all":  # a second line of defence: the digest over all row hashes
            self.check_matches(dataset, split, row_hash_digest(got))


class _CacheArrays(Mapping):
    """``name -> array`` for every stored array; arrays not held in memory are read
    in full on access (for inspection; training reads rows via the cache)."""

    def __init__(self, cache: TeacherCache) -> None:
        self._cache = cache

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._cache.layout:
            raise KeyError(name)
        return self._cache._read(name, slice(None))

    def __iter__(self):
        return iter(self._cache.layout)

    def __len__(self) -> int:
        return len(self._cache.layout)


def _attr(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value
