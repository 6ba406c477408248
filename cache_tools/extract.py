"""Run a teacher once over a dataset and store its compressed outputs (resumable)."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .augment import augment_batch, check_augmentation, default_pad, view_seeds
from .compression import (
    FIDELITY_TEMPERATURES,
    decode_basis,
    decode_tcq,
    decode_topk,
    encode_basis,
    encode_features,
    encode_tcq,
    encode_topk,
    fit_basis,
    fit_tcq,
    softmax,
    tcq_defaults,
    tempered_kl,
)
from .datasets import DatasetFormatError, load_dataset, row_hash_digest, row_hashes
from .format import (
    SAMPLE_ROWS,
    SHARED_TEACHER_ARRAYS,
    CacheMismatchError,
    CacheSpec,
    CacheWriter,
    TeacherCache,
    UsageError,
    basis_arrays,
    calibration_rows,
    differing_rows,
    shared_teacher_arrays,
    staging_dir,
    tcq_arrays,
)
from .head import fit_linear_head
from .labels import LabelAlignment, LabelMismatchError, align_labels, read_label_map
from .teachers import Teacher, load_teacher, teacher_description

#: progress(rows_done, rows_total) is called after each batch.
Progress = Callable[[int, int], None]

#: How long a process of a multi-process extraction waits at a barrier: rank 0
#: may fit an encoder's head over the whole split while the others wait.
BARRIER_TIMEOUT = timedelta(hours=12)
#: Test-only hook: ``RANK:BATCHES`` makes the process of that rank SIGKILL itself
#: right after writing its BATCHES-th batch (a real kill, mid-run, for the tests).
TEST_KILL_ENV = "TOSC_CACHE_TEST_KILL_AFTER"


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


def compress_batch(
    spec: CacheSpec, logits: np.ndarray, features: np.ndarray | None,
    shared: dict[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """Teacher outputs ``[rows, views, ...]`` -> the arrays a cache stores for them.

    ``shared`` holds the per-cache arrays a ``basis`` compression encodes with
    (:data:`~cache_tools.format.SHARED_TEACHER_ARRAYS`).
    """
    arrays: dict[str, np.ndarray] = {}
    full = softmax(logits)
    if spec.probs == "topk":
        values, indices = encode_topk(logits, spec.topk)
        arrays["teacher/topk_values"], arrays["teacher/topk_indices"] = values, indices
        restored = decode_topk(values, indices, spec.num_classes)
    elif spec.probs == "basis":
        if shared is None:
            raise ValueError("A basis compression needs the cache's basis (shared arrays).")
        fitted = basis_arrays(shared)
        codes, residuals = encode_basis(logits, fitted, spec.topk)
        arrays["teacher/basis_coeffs"], arrays["teacher/basis_residuals"] = codes, residuals
        restored = decode_basis(codes, residuals, fitted, spec.topk)
    elif spec.probs == "tcq":
        if shared is None:
            raise ValueError("A tcq compression needs the cache's codebooks (shared arrays).")
        fitted = tcq_arrays(shared)
        arrays["teacher/tcq_codes"] = encode_tcq(logits, fitted, spec.bits)
        restored = decode_tcq(arrays["teacher/tcq_codes"], fitted)
    else:
        arrays["teacher/logits"] = logits.astype(np.float16)
        restored = softmax(arrays["teacher/logits"].astype(np.float32))
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


def extract(
    model: str | os.PathLike,
    out: str | os.PathLike,
    dataset: str = "fashion-mnist",
    split: str = "train",
    limit: int | None = None,
    views: int = 1,
    seed: int = 0,
    topk: int | str | None = "auto",
    basis_rank: int | None = None,
    features: str | None = None,
    batch_size: int = 64,
    device: str = "cpu",
    image_size: int | None = None,
    kind: str = "auto",
    data_dir: str | os.PathLike | None = None,
    head_from: str | os.PathLike | None = None,
    overwrite: bool = False,
    test_accuracy: bool = False,
    progress: Progress | None = None,
    image_column: str | None = None,
    label_column: str | None = None,
    resize: tuple[int, int] | None = None,
    channels: int | None = None,
    pad: int | None = None,
    flip: bool = True,
    label_map: str | os.PathLike | dict[str, str] | None = None,
    tcq_bytes: int | None = None,
) -> Path:
    """Extract a teacher cache; see ``tosc-cache extract --help`` for the arguments.

    ``topk`` probabilities are kept (``"auto"``: 5, or all classes when
    fewer); ``topk=None`` stores full float16 logits. ``basis_rank=R`` stores a rank-R
    basis of the logits, fitted on the teacher's outputs for the first
    ``CALIBRATION_ROWS`` logit rows (samples x views), plus the ``topk``
    largest classes' residuals. ``tcq_bytes=B`` stores B bytes per row (sample and
    view): a trellis-coded basis (rank ``basis_rank``, default 256) and residuals of
    the ``topk`` (default 128) classes it ranks highest, fitted on the first
    ``TCQ_CALIBRATION_ROWS`` logit rows. ``batch_size`` counts images per
    teacher forward (rows x views). Re-running an interrupted extraction with
    the same arguments resumes it and yields the same file. ``test_accuracy``
    also runs the teacher over the (unaugmented) test split and records its
    accuracy as the root attribute ``teacher_test_accuracy``.

    ``dataset`` is ``"fashion-mnist"``, a Hugging Face hub id, a folder saved
    with ``save_to_disk``, an image folder, or a ``datasets.Dataset``
    (:func:`cache_tools.datasets.load_dataset`; ``image_column``,
    ``label_column``, ``resize`` and ``channels`` say how to read it; a local
    path is recorded absolute). The crop padding
    ``pad`` defaults to :func:`~cache_tools.augment.default_pad` of the image
    size; ``flip=False`` never mirrors (digits, text). A classifier teacher's
    classes are aligned to the dataset's by name, or through ``label_map``
    (a JSON file or dict, teacher class -> dataset class;
    :mod:`cache_tools.labels`); other label sets are refused.

    Under ``torchrun`` (WORLD_SIZE > 1) every process runs this function with
    the same arguments: batch ``i`` of rows goes to the process of rank
    ``i % WORLD_SIZE``, rank 0 alone fits what all share (an encoder's head, a
    basis) and finalizes once every process has written its batches; the
    others return the path without waiting for it. The cache is bit-identical
    to a one-process extraction on the same kind of device and thread count.
    """
    if Path(out).exists() and not overwrite:  # before any teacher runs, on every process
        raise FileExistsError(f"{out} already exists; pass overwrite=True (--overwrite) to "
                              "replace it.")
    processes = Processes(device)
    try:
        return _extract(
            processes, model, out, dataset, split, limit, views, seed, topk, basis_rank,
            features, batch_size, image_size, kind, data_dir, head_from, overwrite,
            test_accuracy, progress, image_column, label_column, resize, channels, pad, flip,
            label_map, tcq_bytes)
    finally:
        processes.close()


def _extract(
    processes: Processes, model: str | os.PathLike, out: str | os.PathLike, dataset: str,
    split: str, limit: int | None, views: int, seed: int, topk: int | str | None,
    basis_rank: int | None, features: str | None, batch_size: int, image_size: int | None,
    kind: str, data_dir: str | os.PathLike | None, head_from: str | os.PathLike | None,
    overwrite: bool, test_accuracy: bool, progress: Progress | None,
    image_column: str | None, label_column: str | None, resize: tuple[int, int] | None,
    channels: int | None, pad: int | None, flip: bool,
    label_map: str | os.PathLike | dict[str, str] | None, tcq_bytes: int | None = None,
) -> Path:
    device, rank = processes.device, processes.rank
    read = {"image_column": image_column, "label_column": label_column,
            "resize": None if resize is None else [int(resize[0]), int(resize[1])],
            "channels": channels}
    if isinstance(dataset, (str, os.PathLike)) and Path(dataset).expanduser().exists():
        dataset = str(Path(dataset).expanduser().resolve())  # readable from anywhere
    try:
        images, labels, class_names = load_dataset(dataset, split, data_dir, **read)
        if test_accuracy:  # before the long run: a missing test split fails now
            if not isinstance(dataset, str):
                raise UsageError("--test-accuracy needs a dataset given by name (a "
                                 "datasets.Dataset object has no test split).")
            load_dataset(dataset, "test", data_dir, **read)
    except ValueError as err:  # a column, size or option that does not fit this dataset
        if isinstance(err, DatasetFormatError):
            raise
        raise UsageError(str(err)) from err
    augmentation = check_augmentation({
        "name": "crop_flip", "pad": default_pad(images.shape[1:3]) if pad is None else pad,
        "flip": bool(flip)})
    count = len(images) if limit is None else int(limit)
    if not 1 <= count <= len(images):
        raise UsageError(f"--limit must lie in [1, {len(images)}]; got {limit}.")
    if views < 1:
        raise UsageError(f"--views must be >= 1; got {views}.")
    if tcq_bytes is not None and tcq_bytes < 1:
        raise UsageError(f"--tcq needs at least 1 byte per row; got {tcq_bytes}.")
    if tcq_bytes:
        if topk is None:
            raise UsageError("--tcq stores top-k residuals: it cannot go with --logits.")
        default_rank, default_topk = tcq_defaults(len(class_names))
        topk = default_topk if topk == "auto" else topk
        basis_rank = basis_rank or default_rank
    if topk == "auto":
        topk = min(5, len(class_names))
    if basis_rank and topk is None:
        raise UsageError("--basis stores top-k residuals: it cannot go with --logits.")
    indices = np.arange(count, dtype=np.int64)
    try:
        teacher = load_teacher(model, kind=kind, device=device, image_size=image_size,
                               class_names=list(class_names))
    except ValueError as err:  # the model given cannot serve as a teacher: bad input
        raise UsageError(f"{model}: {err}") from err
    alignment = None
    if teacher.kind == "classifier":  # encoders and CLIP take the dataset's classes
        try:
            mapping = (read_label_map(label_map) if isinstance(label_map, (str, os.PathLike))
                       else label_map)
            alignment = align_labels(teacher.class_names, class_names, mapping)
        except LabelMismatchError as err:
            raise UsageError(f"{model}: {err}") from err
    elif label_map is not None:
        raise UsageError(f"--label-map applies to classifier teachers; {model} is a "
                         f"{teacher.kind} teacher, which takes the dataset's classes.")
    if rank > 0:
        processes.barrier()  # rank 0 has staged the index: what all share is read from there
    hashes = _row_hashes(images, labels, indices, out, fit=rank == 0)
    options = {k: v for k, v in read.items() if v is not None}
    if alignment is not None and not alignment.identity:
        options.update(alignment.to_dict())
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
        num_views=int(views),
        seed=int(seed),
        augmentation=augmentation,
        preprocessing=described["preprocessing"],
        probs=("logits" if topk is None else "tcq" if tcq_bytes else "basis" if basis_rank
               else "topk"),
        topk=0 if topk is None else int(topk),
        rank=int(basis_rank or 0),
        bits=8 * int(tcq_bytes or 0),
        features=features,
        feature_dim=feature_dim,
        teacher_params=teacher.num_params,
        extra={"prompt": described["prompt"]} if described["prompt"] else {},
        dataset_options=options,
    )
    rows_per_batch = max(1, int(batch_size) // spec.num_views)
    seeds = view_seeds(seed, indices, spec.num_views)
    static = {"sample_index": indices, "labels": labels[indices].astype(np.int64),
              "view_seeds": seeds, "row_hash": hashes}
    first = _FirstRows(images, count)  # the rows cached, read lazily
    fit = rank == 0
    if teacher.kind == "encoder":
        teacher.head = _encoder_head(teacher, first, labels[indices], split,
                                     head_from, rows_per_batch, spec.num_classes, out, fit)
        static["head/weight"], static["head/bias"] = teacher.head
    if spec.probs == "basis":
        static.update(_calibrate_basis(
            teacher, first, seeds, spec, rows_per_batch, out, fit, alignment))
    elif spec.probs == "tcq":
        static.update(_calibrate_tcq(
            teacher, first, seeds, spec, rows_per_batch, out, fit, alignment))
    # rank 0 alone records the environment (and says so when a resume runs in another)
    environment = extraction_environment(device, processes.world) if rank == 0 else None
    writer = CacheWriter(out, spec, static, batch_rows=rows_per_batch, overwrite=overwrite,
                         environment=environment)
    if rank == 0:
        processes.barrier()
    written, rows_written, rows_before = 0, 0, writer.rows_done()
    for start, stop in writer.pending():
        if not processes.owns(start, writer.batch_rows):
            continue
        logits, feats = teacher_outputs(teacher, images[indices[start:stop]],
                                        seeds[start:stop], spec.augmentation, alignment)
        writer.write(start, compress_batch(spec, logits, feats, writer.static_arrays))
        written, rows_written = written + 1, rows_written + stop - start
        _test_kill(rank, written)
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
    if test_accuracy:
        if spec.num_classes != len(class_names):
            raise UsageError("--test-accuracy needs a teacher whose classes are the dataset's.")
        attrs["teacher_test_accuracy"] = evaluate_teacher(
            teacher, dataset, "test", data_dir, batch_size, alignment, read)
    return writer.finalize(attrs=attrs)


def _calibrate_basis(
    teacher: Teacher, images: np.ndarray, seeds: np.ndarray, spec: CacheSpec,
    rows_per_batch: int, out: str | os.PathLike, fit: bool = True,
    alignment: LabelAlignment | None = None,
) -> dict[str, np.ndarray]:
    """Fit the logit basis on the first samples' views (deterministic, so resumable).

    A resumed extraction reuses the basis stored with the interrupted one, as
    does every process but rank 0 (``fit=False``) of a multi-process one.
    """
    stored = _staged(out, SHARED_TEACHER_ARRAYS, fit)
    if stored is not None:
        return stored
    logits = _calibration_logits(teacher, images, seeds, spec, rows_per_batch, alignment)
    rank = min(spec.rank, len(logits))
    fitted = fit_basis(logits, rank, spec.topk)
    if rank < spec.rank:  # fewer calibration rows than the rank: pad with unused directions
        pad = spec.rank - rank
        fitted["basis"] = np.concatenate(
            [fitted["basis"], np.zeros((pad, spec.num_classes), np.float32)])
        fitted["scale"] = np.concatenate([fitted["scale"], np.ones(pad, np.float32)])
    return {"teacher/basis" if key == "basis" else f"teacher/basis_{key}": value
            for key, value in fitted.items()}


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


def _calibrate_tcq(
    teacher: Teacher, images: np.ndarray, seeds: np.ndarray, spec: CacheSpec,
    rows_per_batch: int, out: str | os.PathLike, fit: bool = True,
    alignment: LabelAlignment | None = None,
) -> dict[str, np.ndarray]:
    """Fit a tcq compression's basis and codebooks on the first samples' views, as
    :func:`_calibrate_basis` fits a basis (deterministic; staged, so resumable)."""
    names = shared_teacher_arrays(spec)
    stored = _staged(out, names, fit)
    if stored is not None:
        return stored
    logits = _calibration_logits(teacher, images, seeds, spec, rows_per_batch, alignment)
    fitted = fit_tcq(logits, spec.rank, spec.topk, spec.bits)
    return {f"teacher/tcq_{key}": value for key, value in fitted.items()}


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
    fitted = basis_arrays(writer.static_arrays) if spec.probs == "basis" else None
    coded = tcq_arrays(writer.static_arrays) if spec.probs == "tcq" else None
    top1 = []
    for start in range(0, spec.num_samples, writer.batch_rows):  # one shard in memory at a time
        with np.load(writer._shard(start)) as shard:
            if spec.probs == "topk":
                top1.append(shard["teacher/topk_indices"][:, 0, 0])
            elif spec.probs == "basis":
                top1.append(decode_basis(shard["teacher/basis_coeffs"][:, 0],
                                         shard["teacher/basis_residuals"][:, 0],
                                         fitted, spec.topk).argmax(-1))
            elif spec.probs == "tcq":
                top1.append(decode_tcq(shard["teacher/tcq_codes"][:, 0], coded).argmax(-1))
            else:
                top1.append(shard["teacher/logits"][:, 0].argmax(-1))
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


def _test_kill(rank: int, written: int) -> None:
    """Test-only (:data:`TEST_KILL_ENV`): SIGKILL this process after its BATCHES-th batch."""
    hook = os.environ.get(TEST_KILL_ENV)
    if hook:
        kill_rank, batches = (int(part) for part in hook.split(":"))
        if rank == kill_rank and written == batches:
            os.kill(os.getpid(), signal.SIGKILL)
