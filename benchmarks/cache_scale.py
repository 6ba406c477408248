"""A teacher cache at ImageNet size: finalize and reader memory, open files and speed.

Writes a synthetic cache of 1,281,167 rows x 4 views x 1000 classes (top-10
float16 probabilities with uint16 indices) through the real writer
(:class:`tosc_cache.CacheWriter`, shards of 64 rows as an extraction
with ``--batch-size 256 --views 4`` makes them), then in separate processes:

* **finalize** under an open-file limit of 64 (``RLIMIT_NOFILE``): wall time,
  peak RSS (``ru_maxrss``);
* **reader**: :class:`tosc_sionna.data.TeacherCacheDataset` over the cache and a
  memory-mapped uint8 image array (28 x 28 synthetic images: ImageNet's pixels
  would not fit this machine's disk; the teacher side is what scales here),
  measured cold (both evicted from the page cache first, as ImageNet-size data
  is not cached) and warm (as the write phase left them): time
  from construction to the first batch, peak RSS, and batches per second against
  the training step of the student it feeds (the default link with a 1000-class
  head, batch 128), timed alternately, best and median of the repeats.

Targets (issue 10): finalize with <= 64 open files, peak RSS <= 2 GB for each,
first batch <= 10 s, reader >= 5x faster than the student step.

``--quick``: 4,096 rows, 2 repeats, ``cache_scale_quick.json``.

    python -m benchmarks.cache_scale [--rows 1281167] [--work DIR] [--quick] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks import common

VIEWS, CLASSES, TOPK, BATCH_ROWS, BATCH = 4, 1000, 10, 64, 128
OPEN_FILES = 64
ROOT = Path(__file__).resolve().parents[1]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def rss_parts_mb() -> dict[str, float]:
    """Current anonymous (allocated) and file-backed (mapped file pages) RSS, MB."""
    parts = {}
    with open("/proc/self/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("RssAnon", "RssFile"):
                parts[key] = int(value.split()[0]) / 1024
    return parts


def synthetic_topk(rows: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    values = np.sort(rng.dirichlet(np.ones(TOPK + 1), (rows, VIEWS))[..., :TOPK], -1)[..., ::-1]
    base = rng.integers(0, CLASSES, (rows, VIEWS, 1))
    return {"teacher/topk_values": values.astype(np.float16),
            "teacher/topk_indices": ((base + 97 * np.arange(TOPK)) % CLASSES).astype(np.uint16),
            "compression_kl": rng.exponential(0.01, (rows, VIEWS, 4)).astype(np.float32)}


def spec_for(rows: int):
    from tosc_cache import CacheSpec, augment

    return CacheSpec(
        teacher_id="synthetic-imagenet", teacher_digest="0" * 64, teacher_kind="classifier",
        class_names=[f"class{i}" for i in range(CLASSES)], dataset="synthetic", split="train",
        dataset_digest="0" * 64, num_samples=rows, num_views=VIEWS, seed=0,
        augmentation=dict(augment.DEFAULT_AUGMENTATION), preprocessing={}, probs="topk",
        topk=TOPK)


def phase_write(work: Path, rows: int) -> dict:
    from tosc_cache import CacheWriter, augment
    from tosc_cache.integrity import row_hashes

    start = time.perf_counter()
    images = np.lib.format.open_memmap(work / "images.npy", "w+", np.uint8, (rows, 28, 28))
    rng = np.random.default_rng(0)
    for i in range(0, rows, 65536):
        images[i : i + 65536] = rng.integers(0, 256, (min(65536, rows - i), 28, 28), np.uint8)
    labels = rng.integers(0, CLASSES, rows)
    np.save(work / "labels.npy", labels)
    images.flush()
    index = np.arange(rows)
    static = {"sample_index": index, "labels": labels,
              "row_hash": row_hashes(images, labels, index),
              "view_seeds": augment.view_seeds(0, index, VIEWS)}
    prepared = time.perf_counter() - start
    start = time.perf_counter()
    writer = CacheWriter(work / "cache.h5", spec_for(rows), static, batch_rows=BATCH_ROWS)
    for begin, stop in writer.pending():
        writer.write(begin, synthetic_topk(stop - begin, begin))
    return {"images_hashes_seeds_s": prepared, "shards": -(-rows // BATCH_ROWS),
            "write_shards_s": time.perf_counter() - start, "peak_rss_mb": peak_rss_mb()}


def phase_finalize(work: Path, rows: int) -> dict:
    from tosc_cache import CacheWriter

    resource.setrlimit(resource.RLIMIT_NOFILE, (OPEN_FILES, OPEN_FILES))
    start = time.perf_counter()
    writer = CacheWriter(work / "cache.h5", spec_for(rows), {}, batch_rows=BATCH_ROWS)
    writer.finalize()
    return {"open_file_limit": OPEN_FILES, "finalize_s": time.perf_counter() - start,
            "peak_rss_mb": peak_rss_mb(), "file_mb": (work / "cache.h5").stat().st_size / 1e6}


def phase_reader(work: Path, repeats: int, cold: bool) -> dict:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    import tosc_sionna as ts
    from tosc_sionna.data import DataSource, TeacherCacheDataset

    imported_rss = peak_rss_mb()
    for name in ("images.npy", "cache.h5") if cold else ():  # ImageNet-size data is not cached
        fd = os.open(work / name, os.O_RDONLY)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)
    images = np.load(work / "images.npy", mmap_mode="r")
    labels = np.load(work / "labels.npy")
    start = time.perf_counter()
    data = TeacherCacheDataset(work / "cache.h5", DataSource(images, labels),
                               batch_size=BATCH, seed=0)
    x, y = data[0]
    first_batch = time.perf_counter() - start
    open_rss = peak_rss_mb()
    samples = [rss_parts_mb()]

    ts.set_seed(0)
    link = ts.make_link(ts.AWGNChannel(), num_classes=CLASSES, seed=0)
    trainer = ts.make_trainer(link, steps_per_epoch=len(data), epochs=1)
    for i in range(1, 6):  # warm-up: tracing
        trainer.train_on_batch(*data[i])
    batches, rounds = [], iter(range(repeats))

    def read() -> None:  # the next 10 batches
        i = 6 + next(rounds) * 10
        batches[:] = [data[i + j] for j in range(10)]

    def step() -> None:  # the student trained on them
        for batch in batches:
            trainer.train_on_batch(*batch)
        samples.append(rss_parts_mb())

    # alternate, so both see the machine in the same state
    timed = common.time_interleaved({"reader": read, "step": step}, repeats)
    reader_s = [t / 10 for t in timed["reader"]["all"]]
    step_s = [t / 10 for t in timed["step"]["all"]]
    del keras
    return {
        "student": ts.DEFAULT_STUDENT,  # the training step measured (popped by main)
        "first_batch_s": first_batch, "rss_after_imports_mb": imported_rss,
        "rss_after_open_mb": open_rss, "peak_rss_mb": peak_rss_mb(),
        # ru_maxrss counts the pages of the memory-mapped image file that random
        # reads (and the kernel's read-ahead) touched: reclaimable page cache
        "max_sampled_rss_anon_mb": max(p["RssAnon"] for p in samples),
        "max_sampled_rss_file_mb": max(p["RssFile"] for p in samples),
        "reader_batch_ms": {"best": 1e3 * min(reader_s), "median": 1e3 * float(np.median(reader_s)),
                            "all": [1e3 * t for t in reader_s]},
        "student_step_ms": {"best": 1e3 * min(step_s), "median": 1e3 * float(np.median(step_s)),
                            "all": [1e3 * t for t in step_s]},
        "student_step_over_reader_batch": {
            "best_vs_best": min(step_s) / min(reader_s),
            "median_vs_median": float(np.median(step_s) / np.median(reader_s))},
        "batch": BATCH, "batch_shape": list(x.shape),
        "target_shape": {name: list(np.shape(v)) for name, v in y.items()},
    }


def run_phase(name: str, work: Path, args: argparse.Namespace) -> dict:
    phase, _, variant = name.partition("_")
    cmd = [sys.executable, "-m", "benchmarks.cache_scale", "--phase", phase, "--work", str(work),
           "--rows", str(args.rows), "--repeats", str(args.repeats)] + (
        ["--cold"] if variant == "cold" else [])
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if out.returncode:
        raise SystemExit(f"phase {name} failed:\n{out.stderr}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    print(name, json.dumps(result), flush=True)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = common.parser(__doc__, quick="smoke run: 4,096 rows, 2 repeats",
                           out=common.RESULTS, out_help="results folder, or a .json results file")
    parser.add_argument("--rows", type=int, default=1_281_167)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--work", default=None, help="scratch folder (default: a temporary one)")
    parser.add_argument("--phase", choices=("write", "finalize", "reader"), help=argparse.SUPPRESS)
    parser.add_argument("--cold", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:  # the reader phase reads 6 + 10 x repeats batches of 128 rows
        args.rows, args.repeats = 4096, 2
    if args.phase:  # one measurement, in its own process: its own peak RSS
        work = Path(args.work)
        result = {"write": lambda: phase_write(work, args.rows),
                  "finalize": lambda: phase_finalize(work, args.rows),
                  "reader": lambda: phase_reader(work, args.repeats, args.cold)}[args.phase]()
        print(json.dumps(result))
        return
    work = Path(args.work or tempfile.mkdtemp(prefix="cache_scale_"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        results = {name: run_phase(name, work, args)
                   for name in ("write", "finalize", "reader_cold", "reader_warm")}
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    targets = {
        "finalize_open_files_le_64": True,  # it ran under RLIMIT_NOFILE = 64
        "finalize_peak_rss_le_2gb": results["finalize"]["peak_rss_mb"] <= 2048,
    }
    for name in ("reader_cold", "reader_warm"):
        reader = results[name]
        ratio = reader["student_step_over_reader_batch"]
        targets.update({
            f"{name}_peak_rss_le_2gb": reader["peak_rss_mb"] <= 2048,
            f"{name}_anonymous_rss_le_2gb": reader["max_sampled_rss_anon_mb"] <= 2048,
            f"{name}_first_batch_le_10s": reader["first_batch_s"] <= 10,
            f"{name}_ge_5x_student_step_best": ratio["best_vs_best"] >= 5,
            f"{name}_ge_5x_student_step_median": ratio["median_vs_median"] >= 5,
        })
    out = common.results_file(args.out, "cache_scale", args.quick)
    common.write_results(out, {
        "cache": {"rows": args.rows, "views": VIEWS, "classes": CLASSES, "topk": TOPK,
                  "rows_per_shard": BATCH_ROWS, "images": "synthetic uint8 28x28, memory-mapped"},
        # the reader phases' training step (one student for both)
        "student": [results[n].pop("student") for n in ("reader_cold", "reader_warm")][0],
        "results": results, "targets_met": targets}, argv, __name__)
    print(json.dumps(targets, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
