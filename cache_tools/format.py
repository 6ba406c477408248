"""Teacher cache format v1: the one definition, for writer and reader (NumPy + h5py).

See ``docs/cache-format.md`` for the specification. In short: one HDF5 file
with provenance attributes at the root, the sample indices, labels and view
seeds, and the compressed teacher outputs under ``/teacher``. An extraction in
progress lives in a staging folder ``FILE.partial/`` (a manifest plus one
atomically written ``.npz`` shard per finished batch of rows); the ``.h5``
file appears, by atomic rename, only once every row is written and the
integrity digests are recorded, so a partial cache is never mistaken for a
complete one and a killed extraction resumes from its last finished batch.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from . import __version__
from .compression import (
    FEATURE_METHODS,
    FIDELITY_TEMPERATURES,
    PROB_METHODS,
    check_tcq,
    decode_basis,
    decode_features,
    decode_tcq,
    decode_topk,
    format_temperature,
    index_dtype,
    softmax,
    tcq_levels_width,
)

FORMAT_NAME = "tosc-teacher-cache"
#: Version written by this tool (every compression): version 3 adds the per-row
#: content hashes ``row_hash``, HDF5 chunk checksums and the ``environment``.
#: Version 1 (``topk``/``logits``) and 2 (``basis``) caches are still read.
FORMAT_VERSION = 3
READ_VERSIONS = (1, 2, 3)
#: Logit rows (first samples, all their views) from which a ``basis`` is fitted.
CALIBRATION_ROWS = 2048
#: Logit rows from which a ``tcq`` compression's basis and codebooks are fitted.
TCQ_CALIBRATION_ROWS = 16384
#: Rows per HDF5 chunk (fewer for wide rows: a chunk stays near CHUNK_BYTES, so a
#: reader that reads rows from the file decompresses little more than it needs).
CHUNK_ROWS = 1024
CHUNK_BYTES = 64 << 10
#: Rows whose content hash the reader compares with the data by default.
SAMPLE_ROWS = 1024
#: Compressed teacher outputs up to this size are held in memory by a reader;
#: larger ones are read from the file per batch.
RESIDENT_BYTES = 2 << 30


#: Teacher arrays stored once per cache (with the row-independent arrays), not per row.
SHARED_TEACHER_ARRAYS = (
    "teacher/basis_mean", "teacher/basis", "teacher/basis_scale", "teacher/basis_step")
#: The same for a ``tcq`` cache.
TCQ_SHARED_ARRAYS = ("teacher/tcq_mean", "teacher/tcq_basis", "teacher/tcq_bits",
                     "teacher/tcq_levels")


def basis_arrays(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The shared arrays of a basis cache, keyed as :func:`~cache_tools.compression.fit_basis`
    returns them (``mean``, ``basis``, ``scale``, ``step``)."""
    return {name.removeprefix("teacher/basis_") if name != "teacher/basis" else "basis":
            arrays[name] for name in SHARED_TEACHER_ARRAYS}


def tcq_arrays(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The shared arrays of a tcq cache, keyed as :func:`~cache_tools.compression.fit_tcq`
    returns them (``mean``, ``basis``, ``bits``, ``levels``)."""
    return {name.removeprefix("teacher/tcq_"): arrays[name] for name in TCQ_SHARED_ARRAYS}


def shared_teacher_arrays(spec: CacheSpec) -> tuple[str, ...]:
    """Names of the per-cache (not per-row) teacher arrays of a spec's compression."""
    return {"basis": SHARED_TEACHER_ARRAYS, "tcq": TCQ_SHARED_ARRAYS}.get(spec.probs, ())


def calibration_rows(spec: CacheSpec) -> int:
    """Samples (all their views) whose logits fit a basis or tcq compression."""
    rows = TCQ_CALIBRATION_ROWS if spec.probs == "tcq" else CALIBRATION_ROWS
    return min(spec.num_samples, max(1, rows // spec.num_views))


class UsageError(ValueError):
    """An argument or input given by the user cannot be used (``tosc-cache`` exits 2)."""


class CacheError(ValueError):
    """A teacher cache cannot be used; the message says why and what to do."""


class CacheFormatError(CacheError):
    """Not a teacher cache, an unreadable file, or an unsupported format version."""


class CacheIncompleteError(CacheError):
    """The cache was not finalized (an interrupted extraction)."""


class CacheCorruptError(CacheError):
    """A stored array does not match the digest recorded when the cache was finalized."""


class CacheMismatchError(CacheError):
    """The cache does not describe the data it is paired with."""


class ResumedEnvironmentWarning(UserWarning):
    """An extraction was resumed with other library versions, device or thread count."""


@dataclass
class CacheSpec:
    """Everything that defines a cache's contents (its provenance).

    Two extractions with equal specs produce identical caches; a resumed
    extraction must have the spec of the interrupted one.
    """

    teacher_id: str
    teacher_digest: str
    teacher_kind: str
    class_names: list[str]
    dataset: str
    split: str
    dataset_digest: str
    num_samples: int
    num_views: int
    seed: int
    augmentation: dict[str, Any]
    preprocessing: dict[str, Any]
    probs: str = "topk"
    topk: int = 5
    features: str | None = None
    feature_dim: int = 0
    teacher_params: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    rank: int = 0
    #: Bits per row (sample and view) of a ``tcq`` compression.
    bits: int = 0
    #: How the dataset was read (``image_column``, ``label_column``, ``image_size``)
    #: and its own class names where they differ from the teacher's (version 3).
    dataset_options: dict[str, Any] = field(default_factory=dict)
    #: The file layout version (not part of the provenance: a reader sets it
    #: from the file; the writer always writes :data:`FORMAT_VERSION`).
    format_version: int = field(default=FORMAT_VERSION, compare=False)

    def __post_init__(self) -> None:
        if self.probs not in PROB_METHODS:
            raise UsageError(f"probs must be one of {PROB_METHODS}; got {self.probs!r}.")
        if self.features not in (None,) + FEATURE_METHODS:
            raise UsageError(
                f"features must be None or one of {FEATURE_METHODS}; got {self.features!r}."
            )
        if self.probs == "topk" and not 1 <= self.topk <= self.num_classes:
            raise UsageError(
                f"topk must lie in [1, {self.num_classes}] for {self.num_classes} classes; "
                f"got {self.topk}."
            )
        if self.probs == "basis" and not (
            0 <= self.topk <= self.num_classes and 1 <= self.rank <= self.num_classes
        ):
            raise UsageError(
                f"a basis cache needs 1 <= rank <= {self.num_classes} and 0 <= topk <= "
                f"{self.num_classes}; got rank {self.rank}, topk {self.topk}."
            )
        if self.probs == "tcq":
            try:
                check_tcq(self.num_classes, self.rank, self.topk, self.bits)
            except ValueError as err:
                raise UsageError(str(err)) from None
        if self.probs not in ("basis", "tcq") and self.rank:
            raise UsageError(f"rank applies to probs='basis' or 'tcq' only; got "
                             f"probs={self.probs!r}.")
        if self.probs != "tcq" and self.bits:
            raise UsageError(f"bits applies to probs='tcq' only; got probs={self.probs!r}.")
        if self.num_views < 1 or self.num_samples < 1:
            raise UsageError("A cache needs at least one sample and one view.")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def to_json(self) -> str:
        fields = asdict(self)
        del fields["format_version"]
        if not self.rank:
            del fields["rank"]  # topk and logits specs keep their version-1 form
        if not self.bits:
            del fields["bits"]  # and the others their earlier form
        if not self.dataset_options:
            del fields["dataset_options"]
        return json.dumps(fields, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, format_version: int = FORMAT_VERSION) -> CacheSpec:
        return cls(**json.loads(text), format_version=int(format_version))

    def array_layout(self) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
        """Name -> (shape, dtype) of every array the cache stores."""
        n, v, c = self.num_samples, self.num_views, self.num_classes
        layout = {
            "sample_index": ((n,), np.dtype(np.int64)),
            "labels": ((n,), np.dtype(np.int64)),
            "view_seeds": ((n, v), np.dtype(np.uint64)),
        }
        if self.format_version >= 3:
            layout["row_hash"] = ((n,), np.dtype(np.uint64))
        if self.probs == "topk":
            layout["teacher/topk_values"] = ((n, v, self.topk), np.dtype(np.float16))
            layout["teacher/topk_indices"] = ((n, v, self.topk), index_dtype(c))
        elif self.probs == "basis":
            r = self.rank
            layout["teacher/basis_mean"] = ((c,), np.dtype(np.float32))
            layout["teacher/basis"] = ((r, c), np.dtype(np.float32))
            layout["teacher/basis_scale"] = ((r,), np.dtype(np.float32))
            layout["teacher/basis_step"] = ((1,), np.dtype(np.float32))
            layout["teacher/basis_coeffs"] = ((n, v, r), np.dtype(np.int8))
            layout["teacher/basis_residuals"] = ((n, v, (self.topk + 1) // 2), np.dtype(np.uint8))
        elif self.probs == "tcq":
            r, k = self.rank, self.topk
            layout["teacher/tcq_mean"] = ((c,), np.dtype(np.float32))
            layout["teacher/tcq_basis"] = ((r, c), np.dtype(np.float16))
            layout["teacher/tcq_bits"] = ((r + k,), np.dtype(np.uint8))
            layout["teacher/tcq_levels"] = ((r + k, tcq_levels_width()), np.dtype(np.float32))
            layout["teacher/tcq_codes"] = ((n, v, self.bits // 8), np.dtype(np.uint8))
        else:
            layout["teacher/logits"] = ((n, v, c), np.dtype(np.float16))
        if self.teacher_kind == "encoder":
            layout["head/weight"] = ((c, self.feature_dim), np.dtype(np.float32))
            layout["head/bias"] = ((c,), np.dtype(np.float32))
        if self.features == "float16":
            layout["teacher/features"] = ((n, v, self.feature_dim), np.dtype(np.float16))
        elif self.features == "int8":
            layout["teacher/features"] = ((n, v, self.feature_dim), np.dtype(np.int8))
            layout["teacher/features_scale"] = ((n, v), np.dtype(np.float32))
        return layout

    def row_arrays(self) -> list[str]:
        """Arrays written per batch of rows during extraction (the teacher outputs)."""
        return [name for name in self.array_layout()
                if name.startswith("teacher/") and name not in SHARED_TEACHER_ARRAYS
                and name not in TCQ_SHARED_ARRAYS]


def array_digest(array: np.ndarray) -> str:
    """sha256 over dtype, shape and the C-ordered bytes of an array."""
    array = np.ascontiguousarray(array)
    h = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode())
    h.update(array.reshape(-1).view(np.uint8))  # the bytes, without a copy
    return h.hexdigest()


def staging_dir(path: str | os.PathLike) -> Path:
    return Path(str(path) + ".partial")


class CacheWriter:
    """Write a cache batch by batch, resumably.

    ``CacheWriter(path, spec, static_arrays, batch_rows)`` starts a new extraction or, if
    ``path.partial/`` exists with the same spec, resumes it (a different spec
    raises :class:`CacheMismatchError` naming what differs). ``pending()``
    lists the row ranges still to write; ``write(start, arrays)`` stores one
    range atomically; ``finalize(attrs)`` writes the HDF5 file and removes
    the staging folder.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        spec: CacheSpec,
        static_arrays: dict[str, np.ndarray],
        batch_rows: int,
        overwrite: bool = False,
        environment: dict[str, Any] | None = None,
    ) -> None:
        self.path = Path(path)
        self.environment = dict(environment or {})
        self.spec = spec
        self.batch_rows = int(batch_rows)
        self.stage = staging_dir(self.path)
        if self.path.exists() and not overwrite:
            leftover = (f" ({self.stage} is left from the extraction that wrote it, killed "
                        "after the file was complete: delete it)") if self.stage.exists() else ""
            raise FileExistsError(
                f"{self.path} already exists{leftover}; pass overwrite=True (--overwrite) to "
                "replace it."
            )
        manifest = self.stage / "manifest.json"
        if manifest.exists():
            stored = json.loads(manifest.read_text())
            if stored.get("format_version", 1) != FORMAT_VERSION:
                raise CacheMismatchError(
                    f"The interrupted extraction in {self.stage} was started by a tool writing "
                    f"cache format {stored.get('format_version', '1 or 2')}; this one writes "
                    f"version {FORMAT_VERSION}. Delete {self.stage} and extract again."
                )
            differs = _spec_differences(stored["spec"], json.loads(spec.to_json()))
            if stored.get("batch_rows") != self.batch_rows:
                differs.append(f"batch_rows: {stored.get('batch_rows')} != {self.batch_rows}")
            if differs:
                raise CacheMismatchError(
                    f"An interrupted extraction in {self.stage} was started with other "
                    "settings: " + "; ".join(differs) + ". Run it again with the same "
                    f"settings to resume, or delete {self.stage} to start over."
                )
            first = stored.get("environment", {})
            # the number of processes changes who computes a batch, not its bits
            if self.environment and first and _without(first, "world_size") != _without(
                    self.environment, "world_size"):
                warnings.warn(
                    f"Resuming {self.stage} in another environment than it was started in ("
                    + "; ".join(_spec_differences(first, self.environment)) + "): rows "
                    "computed before and after may differ in their last bits. Delete the "
                    "folder and extract again for a cache made in one environment.",
                    ResumedEnvironmentWarning, stacklevel=2,
                )
                stored.setdefault("resumed_in", []).append(self.environment)
                _atomic_write(manifest, json.dumps(stored))
        else:
            if self.stage.exists():
                shutil.rmtree(self.stage)  # no manifest: nothing was ever stored
            self.stage.mkdir(parents=True)
            _atomic_savez(self.stage / "index.npz", **static_arrays)
            _atomic_write(
                manifest,
                json.dumps({"spec": json.loads(spec.to_json()), "batch_rows": self.batch_rows,
                            "format_version": FORMAT_VERSION, "environment": self.environment}),
            )
        with np.load(self.stage / "index.npz") as index:
            self.static_arrays = dict(index)
        self._scan()

    def _shard(self, start: int) -> Path:
        return self.stage / f"rows-{start:09d}.npz"

    def _scan(self) -> None:
        # one directory listing at start; afterwards write() keeps the count, so
        # per-batch bookkeeping does not grow with the number of shards done
        names = {entry.name for entry in os.scandir(self.stage)}
        self._done = {start for start in range(0, self.spec.num_samples, self.batch_rows)
                      if self._shard(start).name in names}
        self._rows_done = sum(self._rows(start) for start in self._done)

    def _rows(self, start: int) -> int:
        return min(start + self.batch_rows, self.spec.num_samples) - start

    def pending(self) -> list[tuple[int, int]]:
        """Row ranges ``[start, stop)`` not yet written, in order.

        Shards written by other processes since this writer was opened (a
        multi-process extraction) are seen after :meth:`refresh`.
        """
        n = self.spec.num_samples
        return [(start, min(start + self.batch_rows, n))
                for start in range(0, n, self.batch_rows) if start not in self._done]

    def refresh(self) -> None:
        """Re-list the staging folder (shards written by other processes)."""
        self._scan()

    def rows_done(self) -> int:
        return self._rows_done

    def write(self, start: int, arrays: dict[str, np.ndarray]) -> None:
        """Store the teacher outputs of rows ``[start, start + batch_rows)``.

        ``arrays`` holds every row array of the layout and, optionally,
        ``compression_kl`` ``[rows, views, T]``: KL(full teacher distribution ||
        reconstruction), both tempered as training tempers them, at the
        temperatures :data:`~cache_tools.compression.FIDELITY_TEMPERATURES`
        (tau = 1 first), summarized in the attributes at finalization.
        """
        if start % self.batch_rows or not 0 <= start < self.spec.num_samples:
            raise ValueError(f"start {start} is not a multiple of batch_rows {self.batch_rows} "
                             f"in [0, {self.spec.num_samples}).")
        stop = min(start + self.batch_rows, self.spec.num_samples)
        layout = self.spec.array_layout()
        for name in self.spec.row_arrays():
            shape, dtype = layout[name]
            got = arrays[name]
            if got.shape != (stop - start,) + shape[1:] or got.dtype != dtype:
                raise ValueError(
                    f"{name}: expected {(stop - start,) + shape[1:]} {dtype}, "
                    f"got {got.shape} {got.dtype}."
                )
        keep = self.spec.row_arrays() + (["compression_kl"] if "compression_kl" in arrays else [])
        _atomic_savez(self._shard(start), **{k: arrays[k] for k in keep})
        if start not in self._done:
            self._done.add(start)
            self._rows_done += stop - start

    def finalize(self, attrs: dict[str, Any] | None = None) -> Path:
        """Stream the shards into the HDF5 file (digests, ``complete=True``), then
        remove the staging folder.

        Memory stays near one HDF5 chunk of rows and one shard is open at a
        time. The file is written as ``FILE.tmp`` and renamed when complete; a
        kill during finalization leaves the staging folder intact, and running
        the extraction again finalizes again.
        """
        self.refresh()
        if self.pending():
            raise CacheIncompleteError(
                f"Cannot finalize {self.path}: rows {self.pending()[0]} and on are missing."
            )
        layout = self.spec.array_layout()
        row_names = self.spec.row_arrays()
        static_names = [name for name in layout if name not in row_names]
        missing = [name for name in static_names if name not in self.static_arrays]
        if missing:
            raise CacheError(f"{self.stage}/index.npz lacks {missing}: delete {self.stage} and "
                             "extract again.")
        manifest = json.loads((self.stage / "manifest.json").read_text())
        n = self.spec.num_samples
        chunk_rows = _chunk_rows(layout, row_names)
        digests = {name: _Digest(*layout[name]) for name in layout}
        fidelity = _FidelitySummary()
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            with h5py.File(tmp, "w") as f:
                datasets = {}
                for name, (shape, dtype) in layout.items():
                    rows = chunk_rows if name in row_names else min(CHUNK_ROWS, shape[0])
                    datasets[name] = f.create_dataset(
                        name, shape=shape, dtype=dtype, chunks=(min(rows, shape[0]),) + shape[1:],
                        compression="gzip", compression_opts=4, shuffle=True, fletcher32=True,
                    )
                for name in static_names:
                    shape, dtype = layout[name]
                    array = np.asarray(self.static_arrays[name]).astype(dtype, copy=False)
                    if array.shape != shape:
                        raise CacheError(f"{name} has shape {array.shape}, expected {shape}.")
                    datasets[name][...] = array
                    digests[name].update(array)
                # shards are buffered up to whole chunks so that each chunk is compressed once
                buffer: dict[str, list[np.ndarray]] = {name: [] for name in row_names}
                buffered, written = 0, 0
                for start in range(0, n, self.batch_rows):
                    with np.load(self._shard(start)) as shard:
                        for name in row_names:
                            buffer[name].append(shard[name])
                        fidelity.add(shard["compression_kl"] if "compression_kl" in shard else None)
                    buffered += self._rows(start)
                    last = start + self.batch_rows >= n
                    if buffered >= chunk_rows or last:
                        take = buffered if last else buffered - buffered % chunk_rows
                        for name in row_names:
                            block = np.concatenate(buffer[name])
                            datasets[name][written : written + take] = block[:take]
                            digests[name].update(block[:take])
                            buffer[name] = [block[take:]] if take < len(block) else []
                        written += take
                        buffered -= take
                root_attrs = spec_attrs(self.spec)
                root_attrs.update(fidelity.attrs())
                root_attrs.update(attrs or {})
                if manifest.get("environment"):
                    root_attrs["environment"] = json.dumps(manifest["environment"], sort_keys=True)
                if manifest.get("resumed_in"):
                    root_attrs["resumed_in"] = json.dumps(manifest["resumed_in"], sort_keys=True)
                root_attrs["digests"] = json.dumps(
                    {name: digest.hexdigest() for name, digest in digests.items()}, sort_keys=True)
                root_attrs["complete"] = True
                for key, value in root_attrs.items():
                    f.attrs[key] = value
        except BaseException:
            tmp.unlink(missing_ok=True)  # never leave a partial file behind
            raise
        os.replace(tmp, self.path)
        shutil.rmtree(self.stage)
        return self.path


def _chunk_rows(layout: dict[str, tuple[tuple[int, ...], np.dtype]], row_names: list[str]) -> int:
    """Rows per chunk of the row arrays: CHUNK_ROWS, fewer for wide rows."""
    widest = max((int(np.prod(layout[name][0][1:])) * layout[name][1].itemsize
                  for name in row_names), default=1)
    return max(1, min(CHUNK_ROWS, CHUNK_BYTES // max(widest, 1)))


class _Digest:
    """:func:`array_digest` computed incrementally over consecutive row blocks."""

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype) -> None:
        self.dtype = np.dtype(dtype)
        self.hash = hashlib.sha256(f"{self.dtype.str}{tuple(shape)}".encode())

    def update(self, block: np.ndarray) -> None:
        block = np.ascontiguousarray(block.astype(self.dtype, copy=False))
        self.hash.update(block.reshape(-1).view(np.uint8))

    def hexdigest(self) -> str:
        return self.hash.hexdigest()


class _FidelitySummary:
    """Running mean and max over rows and views of the reconstruction KL that
    shards record (``[rows, views, T]`` at FIDELITY_TEMPERATURES; ``[rows, views]``
    at tau = 1 from shards of older versions), as root attributes."""

    def __init__(self) -> None:
        self.sums = np.zeros(len(FIDELITY_TEMPERATURES))
        self.maxima = np.full(len(FIDELITY_TEMPERATURES), -np.inf)
        self.count = 0
        self.missing = self.tau1_only = False

    def add(self, kl: np.ndarray | None) -> None:
        if kl is None:
            self.missing = True
            return
        kl = (kl[..., None] if kl.ndim == 2 else kl).astype(np.float64)
        kl = kl.reshape(-1, kl.shape[-1])
        width = min(kl.shape[-1], len(self.sums))
        self.tau1_only |= width < len(self.sums)
        self.sums[:width] += kl[:, :width].sum(0)
        self.maxima[:width] = np.maximum(self.maxima[:width], kl[:, :width].max(0))
        self.count += len(kl)

    def attrs(self) -> dict[str, Any]:
        if self.missing or not self.count:
            return {}
        means = self.sums / self.count
        out: dict[str, Any] = {"compression_kl_mean": float(means[0]),
                               "compression_kl_max": float(self.maxima[0])}
        if not self.tau1_only:
            out["compression_fidelity"] = json.dumps({format_temperature(tau): {
                "kl_mean": float(means[j]), "kl_max": float(self.maxima[j]),
                "scaled_kl_mean": float(tau**2 * means[j]),
                "scaled_kl_max": float(tau**2 * self.maxima[j]),
            } for j, tau in enumerate(FIDELITY_TEMPERATURES)}, sort_keys=True)
        return out


def spec_attrs(spec: CacheSpec) -> dict[str, Any]:
    """Root attributes recording a spec (JSON for nested values)."""
    attrs: dict[str, Any] = {
        "format": FORMAT_NAME,
        "format_version": spec.format_version,
        "tool_version": __version__,
        "spec": spec.to_json(),
    }
    for key, value in json.loads(spec.to_json()).items():
        nested = isinstance(value, (dict, list)) or value is None
        attrs[key] = json.dumps(value) if nested else value
    return attrs


def differing_rows(
    images: Any, labels: np.ndarray, index: np.ndarray, stored: np.ndarray, sample_size: int,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows whose samples (``images[index[row]]``, ``labels[...]``) no longer have the
    stored content hash: ``sample_size`` rows drawn from ``seed``, or all when that is at
    least their number. Returns (differing rows, rows checked, their hashes), sorted."""
    from .datasets import row_hashes

    if sample_size < len(index):
        picked = np.sort(np.random.default_rng(seed).choice(len(index), sample_size,
                                                            replace=False))
    else:
        picked = np.arange(len(index))
    got = row_hashes(images, labels, index[picked])
    return picked[got != stored[picked]], picked, got


def _without(mapping: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in mapping.items() if k != key}


def _spec_differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    keys = sorted(set(a) | set(b))
    return [f"{k}: {a.get(k)!r} != {b.get(k)!r}" for k in keys if a.get(k) != b.get(k)]


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _atomic_savez(path: Path, **arrays: np.ndarray) -> None:
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **arrays)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


INTEGRITY_CHECKS = ("none", "quick", "full")


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
                running, dataset = _Digest(shape, dtype), self._file()[name]
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

        if self.spec.probs == "topk":
            return decode_topk(pick("teacher/topk_values"), pick("teacher/topk_indices"),
                               self.num_classes)
        if self.spec.probs == "basis":
            return decode_basis(pick("teacher/basis_coeffs"), pick("teacher/basis_residuals"),
                                basis_arrays(self._resident), self.spec.topk)
        if self.spec.probs == "tcq":
            return decode_tcq(pick("teacher/tcq_codes"), tcq_arrays(self._resident))
        return softmax(pick("teacher/logits").astype(np.float32)).astype(np.float32)

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
        :func:`cache_tools.datasets.load_dataset` (columns, resize)."""
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
        from .datasets import dataset_digest, row_hash_digest

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
