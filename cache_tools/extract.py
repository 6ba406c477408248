"""Run a teacher once over a dataset and store its compressed outputs (resumable)."""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np

from tosc_cache import __version__
from tosc_cache.augment import augment_batch, check_augmentation, default_pad, view_seeds
from tosc_cache.codecs import tcq_defaults
from tosc_cache.datasets import DatasetFormatError, load_dataset
from tosc_cache.errors import CacheMismatchError, UsageError
from tosc_cache.features import FEATURE_METHODS
from tosc_cache.integrity import SAMPLE_ROWS, differing_rows, row_hash_digest, row_hashes
from tosc_cache.reader import TeacherCache
from tosc_cache.spec import CacheSpec, calibration_rows
from tosc_cache.writer import CacheWriter, encode_rows, staging_dir

from .head import fit_linear_head
from .labels import (
    LabelAlignment,
    LabelMismatchError,
    LabelsByIndexWarning,
    align_labels,
    read_label_map,
)
from .teachers import KINDS, Teacher, load_teacher, teacher_description

#: progress(rows_done, rows_total) is called after each batch (on rank 0).
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class BatchWritten:
    """What :func:`extract` tells its ``on_batch`` callback after each batch it stored."""

    #: This process's rank (0 in a one-process extraction).
    rank: int
    #: Batches this process has stored in this run (1 for its first).
    batches: int
    #: The rows ``[start, stop)`` of the batch just stored.
    start: int
    stop: int


#: on_batch(BatchWritten) is called in every process right after each batch it stored.
OnBatch = Callable[[BatchWritten], None]

#: How long a process of a multi-process extraction waits at a barrier: rank 0
#: may fit an encoder's head over the whole split while the others wait.
BARRIER_TIMEOUT = timedelta(hours=12)


class Processes:
    """This process's place in a ``torchrun`` launch; one process when WORLD_SIZE <= 1.

    Under torchrun the process group is initialized here (gloo on CPU, nccl on
    CUDA) unless the caller did it, and ``device="cuda"`` becomes this
    process's GPU, ``cuda:LOCAL_RANK``.
    """

    def __init__(self, device: str) -> None:
        self.rank, self.world, self.device = 0, 1, device
        self._owned = False
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
            return
        import torch
        import torch.distributed as dist

        if device == "cuda":
            self.device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
        self._cuda = torch.device(self.device).type == "cuda"
        if self._cuda:
            torch.cuda.set_device(torch.device(self.device))
        if not dist.is_initialized():
            dist.init_process_group("nccl" if self._cuda else "gloo", timeout=BARRIER_TIMEOUT)
            self._owned = True
        self.rank, self.world = dist.get_rank(), dist.get_world_size()

    def barrier(self) -> None:
        if self.world > 1:
            import torch
            import torch.distributed as dist

            dist.barrier(device_ids=[torch.cuda.current_device()] if self._cuda else None)

    def close(self) -> None:
        if self._owned:
            import torch.distributed as dist

            dist.destroy_process_group()
            self._owned = False

    def owns(self, start: int, batch_rows: int) -> bool:
        """Batch ``start // batch_rows`` is this process's (round-robin over the processes)."""
        return (start // batch_rows) % self.world == self.rank


def extraction_environment(device: str, world_size: int = 1) -> dict[str, Any]:
    """What may change a teacher's output bits: library versions, device, threads.

    The device is its type plus the GPU's name, not its index, so that every
    process of a multi-GPU extraction records the same environment.
    """
    import torch
    import transformers

    where = torch.device(device)
    name = where.type
    if where.type == "cuda":
        name += f" ({torch.cuda.get_device_name(where)})"
    return {"torch": torch.__version__, "transformers": transformers.__version__,
            "tosc_sionna": __version__, "device": name, "threads": torch.get_num_threads(),
            "world_size": int(world_size)}


def teacher_outputs(
    teacher: Teacher, images: np.ndarray, seeds: np.ndarray, augmentation: dict[str, Any],
    alignment: LabelAlignment | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Logits ``[rows, views, C]`` and features ``[rows, views, D]`` for all views of rows.

    ``alignment`` puts a classifier's logits on the dataset's class axis.
    """
    rows, views = seeds.shape
    batch = np.concatenate(
        [augment_batch(images, seeds[:, v], augmentation) for v in range(views)]
    )  # view-major: [views * rows, H, W(, C)]
    logits, features = teacher(batch)
    if alignment is not None:
        logits = alignment.apply(logits)
    logits = logits.reshape(views, rows, -1).transpose(1, 0, 2)
    features = features.reshape(views, rows, -1).transpose(1, 0, 2)
    return logits, features


@dataclass(frozen=True)
class ExtractionOptions:
    """Everything that defines one extraction (``tosc-cache extract``'s flags, by name).

    ``model``: a local model directory or hub id; ``out``: the cache file to write.

    ``topk`` probabilities are kept (``"auto"``: 5; a ``topk`` above the
    number of classes keeps every class); ``topk=None`` stores full float16
    logits. ``basis_rank=R`` stores a rank-R basis of the logits, fitted on
    the teacher's outputs for the first ``CALIBRATION_ROWS`` logit rows
    (samples x views), plus the ``topk`` largest classes' residuals.
    ``tcq_bytes=B`` stores B bytes per row (sample and view): a trellis-coded
    basis (rank ``basis_rank``, default 256) and residuals of the ``topk``
    (default 128) classes it ranks highest, fitted on the first
    ``TCQ_CALIBRATION_ROWS`` logit rows. ``features`` also stores
    pooled teacher features (``"float16"`` or ``"int8"``). ``batch_size``
    counts images per teacher forward (rows x views). ``test_accuracy`` also
    runs the teacher over the (unaugmented) test split and records its
    accuracy as the root attribute ``teacher_test_accuracy``.

    ``dataset`` is ``"fashion-mnist"``, a Hugging Face hub id, a folder saved
    with ``save_to_disk``, an image folder, or a ``datasets.Dataset``
    (:func:`tosc_cache.datasets.load_dataset`; ``image_column``,
    ``label_column``, ``resize`` and ``channels`` say how to read it; a local
    path is recorded absolute). The crop padding ``pad`` defaults to
    :func:`~tosc_cache.augment.default_pad` of the image size; ``flip=False``
    never mirrors (digits, text). A classifier teacher's classes are aligned
    to the dataset's by name, or through ``label_map`` (a JSON file or dict,
    teacher class -> dataset class; :mod:`cache_tools.labels`); other label
    sets are refused. ``kind``, ``image_size``, ``head_from``: see
    ``tosc-cache extract --help``.

    What can be checked without the data and the teacher is checked on
    construction (a :class:`~tosc_cache.errors.UsageError`); the rest (``limit``
    against the split's size, the compression's settings against the number of
    classes) when the extraction starts.
    """

    model: str | os.PathLike
    out: str | os.PathLike
    dataset: Any = "fashion-mnist"
    split: str = "train"
    limit: int | None = None
    views: int = 1
    seed: int = 0
    topk: int | str | None = "auto"
    basis_rank: int | None = None
    tcq_bytes: int | None = None
    features: str | None = None
    batch_size: int = 64
    device: str = "cpu"
    image_size: int | None = None
    kind: str = "auto"
    data_dir: str | os.PathLike | None = None
    head_from: str | os.PathLike | None = None
    overwrite: bool = False
    test_accuracy: bool = False
    image_column: str | None = None
    label_column: str | None = None
    resize: tuple[int, int] | None = None
    channels: int | None = None
    pad: int | None = None
    flip: bool = True
    label_map: str | os.PathLike | dict[str, str] | None = None

    def __post_init__(self) -> None:
        if self.limit is not None and self.limit < 1:
            raise UsageError(f"--limit must be >= 1; got {self.limit}.")
        if self.views < 1:
            raise UsageError(f"--views must be >= 1; got {self.views}.")
        if self.batch_size < 1:
            raise UsageError(f"--batch-size must be >= 1; got {self.batch_size}.")
        if self.tcq_bytes is not None and self.tcq_bytes < 1:
            raise UsageError(f"--tcq needs at least 1 byte per row; got {self.tcq_bytes}.")
        if self.tcq_bytes and self.topk is None:
            raise UsageError("--tcq stores top-k residuals: it cannot go with --logits.")
        if self.basis_rank and self.topk is None:
            raise UsageError("--basis stores top-k residuals: it cannot go with --logits.")
        if self.features not in (None,) + FEATURE_METHODS:
            raise UsageError(f"features must be None or one of {FEATURE_METHODS}; got "
                             f"{self.features!r}.")
        if self.kind not in KINDS:
            raise UsageError(f"kind must be one of {KINDS}; got {self.kind!r}.")

    @property
    def read_options(self) -> dict[str, Any]:
        """How the dataset is read (keyword arguments of
        :func:`tosc_cache.datasets.load_dataset`)."""
        return {"image_column": self.image_column, "label_column": self.label_column,
                "resize": None if self.resize is None else [int(self.resize[0]),
                                                            int(self.resize[1])],
                "channels": self.channels}

    def compression(self, num_classes: int) -> tuple[str, int, int, int]:
        """``(probs, topk, rank, bits)`` of the cache spec, for ``num_classes`` classes."""
        topk, rank = self.topk, self.basis_rank
        if self.tcq_bytes:
            default_rank, default_topk = tcq_defaults(num_classes)
            topk = default_topk if topk == "auto" else topk
            rank = rank or default_rank
        if topk == "auto":
            topk = min(5, num_classes)
        elif topk is not None and not self.tcq_bytes:
            topk = min(int(topk), num_classes)  # more than there are classes: every class
        probs = ("logits" if topk is None else "tcq" if self.tcq_bytes else "basis" if rank
                 else "topk")
        return probs, 0 if topk is None else int(topk), int(rank or 0), 8 * int(self.tcq_bytes or 0)


def extract(
    options: ExtractionOptions, progress: Progress | None = None, on_batch: OnBatch | None = None,
) -> Path:
    """Extract a teacher cache as ``options`` say; returns its path.

    ``extract(ExtractionOptions(model, out, views=4, ...))`` is what ``tosc-cache
    extract --model MODEL --out OUT --views 4 ...`` runs. ``progress(done,
    total)`` is called on rank 0 after each batch; ``on_batch(BatchWritten)``
    in every process right after each batch it stored (a batch stored is kept
    by a resumed extraction, even if the process dies right after).
    Re-running an interrupted extraction with the same options resumes it and
    yields the same file.

    Under ``torchrun`` (WORLD_SIZE > 1) every process runs this function with
    the same options: batch ``i`` of rows goes to the process of rank
    ``i % WORLD_SIZE``, rank 0 alone fits what all share (an encoder's head, a
    basis) and finalizes once every process has written its batches; the
    others return the path without waiting for it. The cache is bit-identical
    to a one-process extraction on the same kind of device and thread count.
    """
    if not isinstance(options, ExtractionOptions):
        raise TypeError(f"extract takes an ExtractionOptions; got {type(options).__name__}.")
    _refuse_existing(options)  # before any teacher runs
    processes = Processes(options.device)
    try:
        # rank 0 holds the lock for the launch (torchrun ends the others if it refuses)
        with extraction_lock(options.out, take=processes.rank == 0):
            _refuse_existing(options)  # an extraction that held the lock may just have ended
            return _extract(processes, options, progress, on_batch)
    finally:
        processes.close()


def _refuse_existing(options: ExtractionOptions) -> None:
    if Path(options.out).exists() and not options.overwrite:
        raise FileExistsError(f"{options.out} already exists; pass overwrite=True "
                              "(--overwrite) to replace it.")


class ExtractionInProgressError(UsageError):
    """Another live process is extracting into the same output (``tosc-cache`` exits 2)."""


def lock_path(out: str | os.PathLike) -> Path:
    """The lock an extraction into ``out`` holds while it runs: ``OUT.lock``."""
    return Path(str(out) + ".lock")


@contextlib.contextmanager
def extraction_lock(out: str | os.PathLike, take: bool = True) -> Iterator[None]:
    """Hold ``OUT.lock`` (an OS file lock, :mod:`filelock`) while extracting into ``out``,
    or raise :class:`ExtractionInProgressError` at once if another live process holds it.

    The operating system releases the lock when its process dies, even by
    SIGKILL, so a killed extraction never blocks its resume. The lock file is
    removed while still held when the extraction ends (filelock: a process
    that opened it just before takes no lock on the removed file; that one is
    refused like any other).
    """
    if not take:
        yield
        return
    from filelock import FileLock, Timeout

    path = lock_path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path), timeout=0)
    busy = ExtractionInProgressError(
        f"another extraction is writing {out} (a live process holds {path}): wait for it to "
        "finish, or stop it and run this command again to resume its work.")
    try:
        lock.acquire()
    except Timeout:
        raise busy from None
    if not path.exists():  # removed by an extraction that ended as we took it
        lock.release()
        raise busy
    try:
        yield
    finally:
        try:
            path.unlink(missing_ok=True)
        finally:
            lock.release()


def _extract(
    processes: Processes, options: ExtractionOptions, progress: Progress | None,
    on_batch: OnBatch | None,
) -> Path:
    o = options
    model, out, dataset, split, data_dir = o.model, o.out, o.dataset, o.split, o.data_dir
    device, rank = processes.device, processes.rank
    read = o.read_options
    if isinstance(dataset, (str, os.PathLike)) and Path(dataset).expanduser().exists():
        dataset = str(Path(dataset).expanduser().resolve())  # readable from anywhere
    try:
        images, labels, class_names = load_dataset(dataset, split, data_dir, **read)
        if o.test_accuracy:  # before the long run: a missing test split fails now
            if not isinstance(dataset, str):
                raise UsageError("--test-accuracy needs a dataset given by name (a "
                                 "datasets.Dataset object has no test split).")
            load_dataset(dataset, "test", data_dir, **read)
    except ValueError as err:  # a column, size or option that does not fit this dataset
        if isinstance(err, DatasetFormatError):
            raise
        raise UsageError(str(err)) from err
    augmentation = check_augmentation({
        "name": "crop_flip", "pad": default_pad(images.shape[1:3]) if o.pad is None else o.pad,
        "flip": bool(o.flip)})
    count = len(images) if o.limit is None else int(o.limit)
    if not 1 <= count <= len(images):
        raise UsageError(f"--limit must lie in [1, {len(images)}]; got {o.limit}.")
    probs, topk, basis_rank, bits = o.compression(len(class_names))
    indices = np.arange(count, dtype=np.int64)
    try:
        teacher = load_teacher(model, kind=o.kind, device=device, image_size=o.image_size,
                               class_names=list(class_names))
    except ValueError as err:  # the model given cannot serve as a teacher: bad input
        raise UsageError(f"{model}: {err}") from err
    alignment = None
    if teacher.kind == "classifier":  # encoders and CLIP take the dataset's classes
        try:
            mapping = (read_label_map(o.label_map)
                       if isinstance(o.label_map, (str, os.PathLike)) else o.label_map)
            alignment = align_labels(teacher.class_names, class_names, mapping)
        except LabelMismatchError as err:
            raise UsageError(f"{model}: {err}") from err
        if alignment.by_index and rank == 0:
            warnings.warn(LabelsByIndexWarning(alignment.notice(str(model))), stacklevel=2)
    elif o.label_map is not None:
        raise UsageError(f"--label-map applies to classifier teachers; {model} is a "
                         f"{teacher.kind} teacher, which takes the dataset's classes.")
    if rank > 0:
        processes.barrier()  # rank 0 has staged the index: what all share is read from there
    hashes = _row_hashes(images, labels, indices, out, fit=rank == 0)
    dataset_options = {k: v for k, v in read.items() if v is not None}
    if alignment is not None and not alignment.identity:
        dataset_options.update(alignment.to_dict())
    described = teacher_description(teacher)
    feature_dim = teacher.feature_dim
    spec = CacheSpec(
        teacher_id=described["teacher_id"],
        teacher_digest=described["teacher_digest"],
        teacher_kind=teacher.kind,
        class_names=list(class_names),
        dataset=dataset if isinstance(dataset, str) else _dataset_name(dataset),
        split=split,
        dataset_digest=row_hash_digest(hashes),
        num_samples=count,
        num_views=int(o.views),
        seed=int(o.seed),
        augmentation=augmentation,
        preprocessing=described["preprocessing"],
        probs=probs,
        topk=topk,
        rank=basis_rank,
        bits=bits,
        features=o.features,
        feature_dim=feature_dim,
        teacher_params=teacher.num_params,
        extra={"prompt": described["prompt"]} if described["prompt"] else {},
        dataset_options=dataset_options,
    )
    rows_per_batch = max(1, int(o.batch_size) // spec.num_views)
    seeds = view_seeds(o.seed, indices, spec.num_views)
    static = {"sample_index": indices, "labels": labels[indices].astype(np.int64),
              "view_seeds": seeds, "row_hash": hashes}
    first = _FirstRows(images, count)  # the rows cached, read lazily
    fit = rank == 0
    if teacher.kind == "encoder":
        teacher.head = _encoder_head(teacher, first, labels[indices], split,
                                     o.head_from, rows_per_batch, spec.num_classes, out, fit)
        static["head/weight"], static["head/bias"] = teacher.head
    static.update(_calibrate(teacher, first, seeds, spec, rows_per_batch, out, fit, alignment))
    # rank 0 alone records the environment (and says so when a resume runs in another)
    environment = extraction_environment(device, processes.world) if rank == 0 else None
    writer = CacheWriter(out, spec, static, batch_rows=rows_per_batch, overwrite=o.overwrite,
                         environment=environment)
    if rank == 0:
        processes.barrier()
    written, rows_written, rows_before = 0, 0, writer.rows_done()
    for start, stop in writer.pending():
        if not processes.owns(start, writer.batch_rows):
            continue
        logits, feats = teacher_outputs(teacher, images[indices[start:stop]],
                                        seeds[start:stop], spec.augmentation, alignment)
        writer.write(start, encode_rows(spec, logits, feats, writer.static_arrays))
        written, rows_written = written + 1, rows_written + stop - start
        if on_batch is not None:
            on_batch(BatchWritten(rank=rank, batches=written, start=start, stop=stop))
        if progress is not None and rank == 0:
            # the other processes' shards are not re-listed per batch: they keep pace with ours
            progress(min(count, rows_before + rows_written * processes.world), count)
    if processes.world > 1:
        processes.barrier()  # every process has written its batches
        if rank > 0:
            return writer.path  # rank 0 finalizes
        if progress is not None:
            progress(count, count)  # finalize checks that every row is there
    attrs = _accuracy_attrs(writer, spec, len(class_names))
    if o.test_accuracy:
        if spec.num_classes != len(class_names):
            raise UsageError("--test-accuracy needs a teacher whose classes are the dataset's.")
        attrs["teacher_test_accuracy"] = evaluate_teacher(
            teacher, dataset, "test", data_dir, o.batch_size, alignment, read)
    return writer.finalize(attrs=attrs)


def _calibrate(
    teacher: Teacher, images: np.ndarray, seeds: np.ndarray, spec: CacheSpec,
    rows_per_batch: int, out: str | os.PathLike, fit: bool = True,
    alignment: LabelAlignment | None = None,
) -> dict[str, np.ndarray]:
    """The compression's per-cache arrays (a basis, tcq codebooks), fitted by its codec on
    the first samples' views (deterministic, so resumable); none for a compression that
    fits nothing.

    A resumed extraction reuses the arrays stored with the interrupted one, as
    does every process but rank 0 (``fit=False``) of a multi-process one.
    """
    names = tuple(spec.shared_arrays())
    if not names:
        return {}
    stored = _staged(out, names, fit)
    if stored is not None:
        return stored
    logits = _calibration_logits(teacher, images, seeds, spec, rows_per_batch, alignment)
    return spec.codec.fit(logits, spec)


def _calibration_logits(
    teacher: Teacher, images: Any, seeds: np.ndarray, spec: CacheSpec, rows_per_batch: int,
    alignment: LabelAlignment | None,
) -> np.ndarray:
    """Logit rows ``[samples * views, C]`` of the first :func:`calibration_rows` samples."""
    rows = calibration_rows(spec)
    return np.concatenate([
        teacher_outputs(teacher, images[i : min(i + rows_per_batch, rows)],
                        seeds[i : min(i + rows_per_batch, rows)], spec.augmentation,
                        alignment)[0]
        for i in range(0, rows, rows_per_batch)
    ]).reshape(-1, spec.num_classes)


def evaluate_teacher(
    teacher: Teacher, dataset: Any, split: str, data_dir: str | os.PathLike | None,
    batch_size: int = 256, alignment: LabelAlignment | None = None,
    read: dict[str, Any] | None = None,
) -> float:
    """Top-1 accuracy of the teacher on a whole split (unaugmented images)."""
    images, labels, _ = load_dataset(dataset, split, data_dir, **(read or {}))
    correct = 0
    for start in range(0, len(images), batch_size):
        logits, _ = teacher(images[start : start + batch_size])
        if alignment is not None:
            logits = alignment.apply(logits)
        correct += int(np.sum(logits.argmax(-1) == labels[start : start + batch_size]))
    return correct / len(images)


def _accuracy_attrs(writer: CacheWriter, spec: CacheSpec, dataset_classes: int) -> dict[str, Any]:
    """The teacher's accuracy on view 0 of this split (from the stored outputs)."""
    if spec.num_classes != dataset_classes:
        return {}  # the teacher's labels are not the dataset's
    codec, top1 = spec.codec, []
    for start in range(0, spec.num_samples, writer.batch_rows):  # one shard in memory at a time
        with np.load(writer._shard(start)) as shard:
            view0 = {name: shard[name][:, 0] for name in codec.row_layout(spec)}
            top1.append(codec.top1(view0, spec, writer.static_arrays))
    top1 = np.concatenate(top1)
    labels = writer.static_arrays["labels"]
    return {"teacher_accuracy": float(np.mean(top1.astype(np.int64) == labels))}


def _encoder_head(
    teacher: Teacher, images: np.ndarray, labels: np.ndarray, split: str,
    head_from: str | os.PathLike | None, rows_per_batch: int, num_classes: int,
    out: str | os.PathLike, fit: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """The encoder's linear head: the one an interrupted extraction of ``out`` stored
    (a refit need not be bit-identical, and one cache must not mix two heads),
    else ``head_from``'s, else fitted on this train split's embeddings."""
    stored = _staged(out, ("head/weight", "head/bias"), fit)
    if stored is not None:
        return stored["head/weight"], stored["head/bias"]
    if head_from is not None:
        source = TeacherCache(head_from)
        if source.spec.teacher_digest != teacher.digest:
            raise UsageError(f"{head_from} was made with another teacher; its head does not apply.")
        return source.arrays["head/weight"], source.arrays["head/bias"]
    if split != "train":
        raise UsageError(
            "An encoder teacher's linear head is fitted on the train split: extract the train "
            "split first, then pass it with --head-from TRAIN_CACHE.h5."
        )
    embeddings = np.concatenate([
        teacher.forward(teacher.preprocess(images[i : i + rows_per_batch], teacher.device))[1]
        .float().cpu().numpy()
        for i in range(0, len(images), rows_per_batch)
    ])
    return fit_linear_head(embeddings, labels, num_classes)


def _row_hashes(
    images: Any, labels: np.ndarray, indices: np.ndarray, out: str | os.PathLike, fit: bool,
) -> np.ndarray:
    """The rows' content hashes: staged by an interrupted run (or by rank 0), checked on a
    seeded sample of rows against the data; else computed (the whole split, once)."""
    staged = _staged(out, ("row_hash",), fit)
    if staged is None:
        return row_hashes(images, labels, indices)
    stored = staged["row_hash"]
    if len(stored) != len(indices):
        return row_hashes(images, labels, indices)  # the writer then names the difference
    bad, _, _ = differing_rows(images, labels, indices, stored, SAMPLE_ROWS)
    if len(bad):
        raise CacheMismatchError(
            f"The data changed since the interrupted extraction in {staging_dir(out)} started: "
            f"rows {bad[:5].tolist()} differ. Delete that folder to start over.")
    return stored


class _FirstRows:
    """The first ``count`` images of a (possibly lazy) image array, read by slices."""

    def __init__(self, images: Any, count: int) -> None:
        self.images, self.count = images, int(count)

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, key: slice) -> np.ndarray:
        start, stop, _ = key.indices(self.count)
        return np.asarray(self.images[start:stop])


def _dataset_name(dataset: Any) -> str:
    """What a cache records for a ``datasets.Dataset`` given as an object."""
    info = getattr(dataset, "info", None)
    return getattr(info, "dataset_name", None) or "datasets.Dataset"


def _staged(
    out: str | os.PathLike, names: tuple[str, ...], fit: bool = True
) -> dict[str, np.ndarray] | None:
    """``names`` as the staging index of an extraction of ``out`` in progress holds them.

    None when there is none to resume (the caller computes them); ``fit=False``
    (processes other than rank 0, which staged them) refuses to go without.
    """
    stage = staging_dir(out)
    if (stage / "manifest.json").exists():
        with np.load(stage / "index.npz") as index:
            if all(name in index.files for name in names):
                return {name: index[name] for name in names}
    if not fit:
        raise RuntimeError(f"{stage}/index.npz lacks {list(names)}, which rank 0 stages before "
                           "the other processes start.")
    return None
