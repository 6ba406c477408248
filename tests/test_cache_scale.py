"""Caches at scale: the reader's memory does not grow with N x V x C (issue 10)."""

import tracemalloc

import numpy as np
from conftest import assert_batches_equal

from tosc_cache import CacheSpec, CacheWriter, TeacherCache, augment
from tosc_cache.integrity import row_hashes

CLASSES = [f"class{i}" for i in range(1000)]


def synthetic_topk(rows: int, views: int, k: int, seed: int) -> dict[str, np.ndarray]:
    """Top-k rows of a 1000-class teacher without drawing 1000 logits per row."""
    rng = np.random.default_rng(seed)
    values = np.sort(rng.dirichlet(np.ones(k + 1), (rows, views))[..., :k], -1)[..., ::-1]
    base = rng.integers(0, 1000, (rows, views, 1))
    indices = (base + 97 * np.arange(k)) % 1000  # k distinct classes per row
    return {"teacher/topk_values": values.astype(np.float16),
            "teacher/topk_indices": indices.astype(np.uint16)}


def test_reader_memory_stays_far_below_the_dense_distributions(tmp_path):
    from tosc_sionna.data import DataSource, TeacherCacheDataset

    n, views, k = 40_000, 4, 10
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 1000, n)
    index = np.arange(n)
    spec = CacheSpec(
        teacher_id="synthetic", teacher_digest="0" * 64, teacher_kind="classifier",
        class_names=CLASSES, dataset="synthetic", split="train", dataset_digest="0" * 64,
        num_samples=n, num_views=views, seed=0, augmentation=dict(augment.DEFAULT_AUGMENTATION),
        preprocessing={}, probs="topk", topk=k)
    static = {"sample_index": index, "labels": labels,
              "row_hash": row_hashes(images, labels, index),
              "view_seeds": augment.view_seeds(0, index, views)}
    writer = CacheWriter(tmp_path / "big.h5", spec, static, batch_rows=4096)
    for start, stop in writer.pending():
        writer.write(start, synthetic_topk(stop - start, views, k, start))
    path = writer.finalize()
    dense = n * views * len(CLASSES) * 4  # what the reader used to hold: 640 MB
    tracemalloc.start()
    try:
        data = TeacherCacheDataset(path, DataSource(images, labels), batch_size=128)
        for i in range(3):
            x, y = data[i]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert x.shape == (128, 28, 28, 1) and y["teacher"].shape == (128, 1000)
    np.testing.assert_allclose(y["teacher"].sum(-1), 1, rtol=1e-5)
    rows = data.order[256:384]
    np.testing.assert_array_equal(
        y["teacher"], TeacherCache(path).teacher_probs(rows, data.views[rows]))
    stored = TeacherCache(path).stored_bytes  # 6.4 MB
    # the stored outputs, seeds, hashes and a few batches: far below the dense 640 MB
    print(f"peak {peak / 1e6:.1f} MB, stored {stored / 1e6:.1f} MB, dense {dense / 1e6:.0f} MB")
    assert peak < 3 * stored + 8e6, (peak, stored, dense)
    assert peak < dense / 10


def test_reader_over_a_memory_map_equals_the_array(tmp_path):
    """Memory-mapped images (advised random access, batch pages prefetched) read the same."""
    from tosc_sionna.data import DataSource, TeacherCacheDataset

    n, views = 600, 2
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (n + 10, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 1000, n + 10)
    np.save(tmp_path / "images.npy", images[10:])
    mapped = np.load(tmp_path / "images.npy", mmap_mode="r")
    whole = np.lib.format.open_memmap(tmp_path / "all.npy", "w+", np.uint8, images.shape)
    whole[:] = images
    whole.flush()
    sliced = np.load(tmp_path / "all.npy", mmap_mode="r")[10:]  # a view into a larger map
    index = np.arange(n)
    spec = CacheSpec(
        teacher_id="synthetic", teacher_digest="0" * 64, teacher_kind="classifier",
        class_names=CLASSES, dataset="synthetic", split="train", dataset_digest="0" * 64,
        num_samples=n, num_views=views, seed=0, augmentation=dict(augment.DEFAULT_AUGMENTATION),
        preprocessing={}, probs="topk", topk=10)
    static = {"sample_index": index, "labels": labels[10:],
              "row_hash": row_hashes(images[10:], labels[10:], index),
              "view_seeds": augment.view_seeds(0, index, views)}
    writer = CacheWriter(tmp_path / "c.h5", spec, static, batch_rows=200)
    for start, stop in writer.pending():
        writer.write(start, synthetic_topk(stop - start, views, 10, start))
    path = writer.finalize()
    batches = []
    for source in (images[10:], mapped, sliced):
        data = TeacherCacheDataset(path, DataSource(source, labels[10:]), batch_size=128)
        batches.append([data[i] for i in range(len(data))])
    for other in batches[1:]:
        for (x0, y0), (x1, y1) in zip(batches[0], other, strict=True):
            np.testing.assert_array_equal(x0, x1)
            assert_batches_equal(y0, y1)
