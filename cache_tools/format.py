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
    decode_basis,
    decode_features,
    decode_topk,
    format_temperature,
    index_dtype,
    softmax,
)

FORMAT_NAME = "tosc-teacher-cache"
#: Version written for ``topk`` and ``logits`` caches; ``basis`` caches (new
#: arrays an older reader cannot use) are written as version 2.
FORMAT_VERSION = 1
BASIS_FORMAT_VERSION = 2
READ_VERSIONS = (1, 2)
#: Logit rows (first samples, all their views) from which a ``basis`` is fitted.
CALIBRATION_ROWS = 2048
CHUNK_ROWS = 1024


#: Teacher arrays stored once per cache (with the row-independent arrays), not per row.
SHARED_TEACHER_ARRAYS = (
    "teacher/basis_mean", "teacher/basis", "teacher/basis_scale", "teacher/basis_step")


def basis_arrays(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The shared arrays of a basis cache, keyed as :func:`~cache_tools.compression.fit_basis`
    returns them (``mean``, ``basis``, ``scale``, ``step``)."""
    return {name.removeprefix("teacher/basis_") if name != "teacher/basis" else "basis":
            arrays[name] for name in SHARED_TEACHER_ARRAYS}


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
        if self.probs != "basis" and self.rank:
            raise UsageError(f"rank applies to probs='basis' only; got probs={self.probs!r}.")
        if self.num_views < 1 or self.num_samples < 1:
            raise UsageError("A cache needs at least one sample and one view.")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def format_version(self) -> int:
        return BASIS_FORMAT_VERSION if self.probs == "basis" else FORMAT_VERSION

    def to_json(self) -> str:
        fields = asdict(self)
        if not self.rank:
            del fields["rank"]  # version-1 caches keep their version-1 spec
        return json.dumps(fields, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> CacheSpec:
        return cls(**json.loads(text))

    def array_layout(self) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
        """Name -> (shape, dtype) of every array the cache stores."""
        n, v, c = self.num_samples, self.num_views, self.num_classes
        layout = {
            "sample_index": ((n,), np.dtype(np.int64)),
            "labels": ((n,), np.dtype(np.int64)),
            "view_seeds": ((n, v), np.dtype(np.uint64)),
        }
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
                if name.startswith("teacher/") and name not in SHARED_TEACHER_ARRAYS]


def array_digest(array: np.ndarray) -> str:
    """sha256 over dtype, shape and the C-ordered bytes of an array."""
    array = np.ascontiguousarray(array)
    h = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode())
    h.update(array.tobytes())
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
            raise FileExistsError(
                f"{self.path} already exists; pass overwrite=True (--overwrite) to replace it."
            )
        manifest = self.stage / "manifest.json"
        if manifest.exists():
            stored = json.loads(manifest.read_text())
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
            if self.environment and first and first != self.environment:
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
                            "environment": self.environment}),
            )
        self.static_arrays = dict(np.load(self.stage / "index.npz"))

    def _shard(self, start: int) -> Path:
        return self.stage / f"rows-{start:09d}.npz"

    def pending(self) -> list[tuple[int, int]]:
        """Row ranges ``[start, stop)`` not yet written, in order."""
        n = self.spec.num_samples
        return [
            (start, min(start + self.batch_rows, n))
            for start in range(0, n, self.batch_rows)
            if not self._shard(start).exists()
        ]

    def rows_done(self) -> int:
        n = self.spec.num_samples
        return n - sum(stop - start for start, stop in self.pending())

    def write(self, start: int, arrays: dict[str, np.ndarray]) -> None:
        """Store the teacher outputs of rows ``[start, start + batch_rows)``.

        ``arrays`` holds every row array of the layout and, optionally,
        ``compression_kl`` ``[rows, views, T]``: KL(full teacher distribution ||
        reconstruction), both tempered as training tempers them, at the
        temperatures :data:`~cache_tools.compression.FIDELITY_TEMPERATURES`
        (tau = 1 first), summarized in the attributes at finalization.
        """
        if start % self.batch_rows:
            raise ValueError(f"start {start} is not a multiple of batch_rows {self.batch_rows}.")
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

    def finalize(self, attrs: dict[str, Any] | None = None) -> Path:
        """Assemble the HDF5 file (digests, ``complete=True``) and remove the staging folder."""
        if self.pending():
            raise CacheIncompleteError(
                f"Cannot finalize {self.path}: rows {self.pending()[0]} and on are missing."
            )
        layout = self.spec.array_layout()
        row_arrays = self.spec.row_arrays()
        data = {name: self.static_arrays[name] for name in layout if name not in row_arrays}
        shards = [np.load(self._shard(s)) for s in range(0, self.spec.num_samples, self.batch_rows)]
        for name in row_arrays:
            data[name] = np.concatenate([shard[name] for shard in shards])
        if shards and all("compression_kl" in shard for shard in shards):
            attrs = {**(attrs or {}), **_fidelity_attrs(
                [shard["compression_kl"] for shard in shards])}
        tmp = self.path.with_name(self.path.name + ".tmp")
        with h5py.File(tmp, "w") as f:
            for name, (shape, dtype) in layout.items():
                array = np.asarray(data[name]).astype(dtype, copy=False)
                if array.shape != shape:
                    raise CacheError(f"{name} has shape {array.shape}, expected {shape}.")
                chunks = (min(CHUNK_ROWS, shape[0]),) + shape[1:]
                f.create_dataset(
                    name, data=array, chunks=chunks, compression="gzip",
                    compression_opts=4, shuffle=True,
                )
            root_attrs = spec_attrs(self.spec)
            root_attrs.update(attrs or {})
            root_attrs["digests"] = json.dumps(
                {name: array_digest(np.asarray(data[name]).astype(layout[name][1], copy=False))
                 for name in layout},
                sort_keys=True,
            )
            root_attrs["complete"] = True
            for key, value in root_attrs.items():
                f.attrs[key] = value
        os.replace(tmp, self.path)
        shutil.rmtree(self.stage)
        return self.path


def _fidelity_attrs(kls: list[np.ndarray]) -> dict[str, Any]:
    """Root attributes summarizing the reconstruction KL of every row and view.

    ``kls`` are ``[rows, views, T]`` at :data:`FIDELITY_TEMPERATURES` (or
    ``[rows, views]`` at tau = 1, from shards of older versions).
    """
    if any(kl.ndim == 2 for kl in kls):
        kl1 = np.concatenate([kl if kl.ndim == 2 else kl[..., 0] for kl in kls])
        return {"compression_kl_mean": float(kl1.mean()), "compression_kl_max": float(kl1.max())}
    kl = np.concatenate(kls)
    by_tau = {}
    for j, tau in enumerate(FIDELITY_TEMPERATURES):
        by_tau[format_temperature(tau)] = {
            "kl_mean": float(kl[..., j].mean()), "kl_max": float(kl[..., j].max()),
            "scaled_kl_mean": float(tau**2 * kl[..., j].mean()),
            "scaled_kl_max": float(tau**2 * kl[..., j].max()),
        }
    first = by_tau[format_temperature(FIDELITY_TEMPERATURES[0])]
    return {"compression_kl_mean": first["kl_mean"], "compression_kl_max": first["kl_max"],
            "compression_fidelity": json.dumps(by_tau, sort_keys=True)}


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


class TeacherCache:
    """A finalized cache, opened and checked (format, version, completeness).

    ``TeacherCache(path, check_integrity=True)`` also recomputes every
    array's digest and refuses a cache whose contents changed. Arrays are
    loaded into memory (a cache is a few MB).
    """

    def __init__(self, path: str | os.PathLike, check_integrity: bool = True) -> None:
        self.path = Path(path)
        if not self.path.exists():
            stage = staging_dir(self.path)
            if stage.exists():
                raise CacheIncompleteError(
                    f"{self.path} does not exist, but {stage} holds an interrupted "
                    "extraction: run the same `tosc-cache extract` command again to finish it."
                )
            raise FileNotFoundError(f"No teacher cache at {self.path}.")
        try:
            with h5py.File(self.path, "r") as f:
                self.attrs = {k: _attr(v) for k, v in f.attrs.items()}
                names: list[str] = []
                f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
                self.arrays = {name: f[name][()] for name in names}
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
        self.spec = CacheSpec.from_json(self.attrs["spec"])
        layout = self.spec.array_layout()
        for name, (shape, dtype) in layout.items():
            if name not in self.arrays:
                raise CacheCorruptError(f"{self.path} lacks the array {name!r}.")
            if self.arrays[name].shape != shape or self.arrays[name].dtype != dtype:
                raise CacheCorruptError(
                    f"{self.path}: {name} is {self.arrays[name].shape} {self.arrays[name].dtype}, "
                    f"expected {shape} {dtype}."
                )
        if check_integrity:
            self.check_integrity()

    def check_integrity(self) -> None:
        digests = json.loads(self.attrs.get("digests", "{}"))
        for name in self.spec.array_layout():
            if digests.get(name) != array_digest(self.arrays[name]):
                raise CacheCorruptError(
                    f"{self.path}: the contents of {name!r} differ from the digest recorded "
                    "when the cache was finalized; the file was altered or corrupted. "
                    "Extract it again."
                )

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
    def sample_index(self) -> np.ndarray:
        return self.arrays["sample_index"]

    @property
    def labels(self) -> np.ndarray:
        return self.arrays["labels"]

    @property
    def view_seeds(self) -> np.ndarray:
        return self.arrays["view_seeds"]

    def teacher_probs(self, rows: Any = slice(None), views: Any = None) -> np.ndarray:
        """Reconstructed teacher distribution ``[rows, (views,) C]`` (float32).

        ``views`` None gives all views; an int array (one per row) picks a view
        per row.
        """
        def pick(a: np.ndarray) -> np.ndarray:
            a = a[rows]
            if views is None:
                return a
            return a[np.arange(len(a)), np.asarray(views)]

        if self.spec.probs == "topk":
            return decode_topk(
                pick(self.arrays["teacher/topk_values"]),
                pick(self.arrays["teacher/topk_indices"]),
                self.num_classes,
            )
        if self.spec.probs == "basis":
            return decode_basis(
                pick(self.arrays["teacher/basis_coeffs"]),
                pick(self.arrays["teacher/basis_residuals"]),
                basis_arrays(self.arrays), self.spec.topk,
            )
        return softmax(pick(self.arrays["teacher/logits"]).astype(np.float32)).astype(np.float32)

    def teacher_features(self, rows: Any = slice(None)) -> np.ndarray | None:
        if self.spec.features is None:
            return None
        scale = self.arrays.get("teacher/features_scale")
        return decode_features(
            self.arrays["teacher/features"][rows], None if scale is None else scale[rows]
        )

    def check_matches(self, dataset: str, split: str, dataset_digest: str) -> None:
        """Refuse to pair this cache with other data, saying what differs."""
        differs = []
        if dataset != self.spec.dataset:
            differs.append(f"dataset {self.spec.dataset!r} in the cache, {dataset!r} given")
        if split != self.spec.split:
            differs.append(f"split {self.spec.split!r} in the cache, {split!r} given")
        if not differs and dataset_digest != self.spec.dataset_digest:
            differs.append(
                "the samples differ (dataset digest "
                f"{self.spec.dataset_digest[:12]}... in the cache, {dataset_digest[:12]}... "
                "for the data given): another version, order or subset of the data"
            )
        if differs:
            raise CacheMismatchError(
                f"{self.path} does not describe this data: " + "; ".join(differs) + "."
            )


def _attr(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value
