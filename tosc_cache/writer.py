"""Write a teacher cache batch by batch, resumably, and finalize it (NumPy + h5py).

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

import json
import os
import shutil
import warnings
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .errors import CacheError, CacheIncompleteError, CacheMismatchError, ResumedEnvironmentWarning
from .features import encode_features
from .integrity import RunningDigest
from .probability import FIDELITY_TEMPERATURES, format_temperature, softmax, tempered_kl
from .spec import FORMAT_VERSION, CacheSpec, spec_attrs

#: Rows per HDF5 chunk (fewer for wide rows: a chunk stays near CHUNK_BYTES, so a
#: reader that reads rows from the file decompresses little more than it needs).
CHUNK_ROWS = 1024
CHUNK_BYTES = 64 << 10


def encode_rows(
    spec: CacheSpec, logits: np.ndarray, features: np.ndarray | None,
    shared: dict[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """Teacher outputs ``[rows, views, ...]`` -> the arrays :meth:`CacheWriter.write` stores.

    ``shared`` holds the per-cache arrays the spec's codec encodes with (a
    basis, tcq codebooks: :meth:`CacheSpec.shared_arrays`). Also records
    ``compression_kl``, the reconstruction's fidelity as training sees it.
    """
    codec = spec.codec
    arrays = codec.encode(logits, spec, shared)
    restored = codec.decode(arrays, spec, shared)
    full = softmax(logits)
    # what training sees: the reconstruction tempered as the loss tempers it
    arrays["compression_kl"] = np.stack(
        [tempered_kl(full, restored, tau) for tau in FIDELITY_TEMPERATURES], axis=-1
    ).astype(np.float32)
    if spec.features is not None:
        values, scale = encode_features(features, spec.features)
        arrays["teacher/features"] = values
        if scale is not None:
            arrays["teacher/features_scale"] = scale
    return arrays


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
        temperatures :data:`~tosc_cache.probability.FIDELITY_TEMPERATURES`
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
        digests = {name: RunningDigest(*layout[name]) for name in layout}
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

