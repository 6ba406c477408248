"""Cache format, compression and augmentation (NumPy + h5py only)."""

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from tosc_cache import (
    FORMAT_VERSION,
    CacheCorruptError,
    CacheFormatError,
    CacheIncompleteError,
    CacheMismatchError,
    CacheSpec,
    CacheWriter,
    TeacherCache,
    augment,
    codecs,
    probability,
)
from tosc_cache import features as feature_codec
from tosc_cache.writer import staging_dir

CLASSES = [f"c{i}" for i in range(10)]


def test_topk_round_trip_error_bounded():
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=4.0, size=(2000, 10))
    full = probability.softmax(logits)
    for k in (1, 3, 5, 10):
        values, indices = codecs.encode_topk(logits, k)
        assert values.dtype == np.float16 and indices.dtype == np.uint8
        restored = codecs.decode_topk(values, indices, 10)
        np.testing.assert_allclose(restored.sum(-1), 1.0, rtol=1e-5)
        # the kept classes keep their probability (float16 rounding)
        kept = np.take_along_axis(restored, indices.astype(int), -1)
        np.testing.assert_allclose(kept, np.take_along_axis(full, indices.astype(int), -1),
                                   rtol=2e-3, atol=1e-4)
        # the rest gets the remaining mass, evenly
        if k < 10:
            mask = np.ones_like(full, bool)
            np.put_along_axis(mask, indices.astype(int), False, -1)
            rest = restored[mask].reshape(len(full), 10 - k)
            np.testing.assert_allclose(rest, rest[:, :1] * np.ones_like(rest), rtol=1e-5)
        kl = probability.kl_divergence(full, restored)
        assert np.all(kl >= -1e-6)  # float32 rounding
        if k == 10:
            assert kl.max() < 1e-5
    # KL shrinks as k grows
    kls = [probability.kl_divergence(
        full, codecs.decode_topk(*codecs.encode_topk(logits, k), 10)).mean()
        for k in (1, 3, 5, 10)]
    assert kls == sorted(kls, reverse=True)


def test_index_dtype_is_smallest():
    assert codecs.index_dtype(10) == np.uint8
    assert codecs.index_dtype(256) == np.uint8
    assert codecs.index_dtype(257) == np.uint16
    assert codecs.index_dtype(1000) == np.uint16
    assert codecs.index_dtype(70000) == np.uint32


def test_logits_float16_and_features():
    rng = np.random.default_rng(1)
    features = rng.normal(size=(500, 64)).astype(np.float32) * rng.uniform(0.1, 10, (500, 1))
    q, scale = feature_codec.encode_features(features, "int8")
    assert q.dtype == np.int8 and scale.dtype == np.float32
    restored = feature_codec.decode_features(q, scale)
    # symmetric int8: error at most half a step per row
    assert np.all(np.abs(restored - features) <= scale[:, None] / 2 + 1e-6)
    h, none = feature_codec.encode_features(features, "float16")
    assert none is None and h.dtype == np.float16
    np.testing.assert_allclose(feature_codec.decode_features(h, None), features, rtol=1e-3)
    zero_q, zero_scale = feature_codec.encode_features(np.zeros((2, 4)), "int8")
    assert np.all(zero_q == 0) and np.all(zero_scale == 1)
    with pytest.raises(ValueError, match="feature compression"):
        feature_codec.encode_features(features, "int4")


@pytest.mark.parametrize("shape", [(40, 28, 28), (12, 32, 30, 3), (7, 9, 7, 1)])
@pytest.mark.parametrize("config", [augment.DEFAULT_AUGMENTATION,
                                    {"name": "crop_flip", "pad": 0, "flip": True},
                                    {"name": "crop_flip", "pad": 3, "flip": False}])
def test_a_batch_of_views_is_each_images_own_view(shape, config):
    """augment_batch (one padded batch, sliced) equals augment (np.pad per image) image by
    image: the replayed views are the teacher's."""
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, shape, dtype=np.uint8)
    seeds = rng.integers(0, 2**64, shape[0], dtype=np.uint64)
    seeds[::4] = 0  # unaugmented views among them
    seeds[1] = 5  # a one-word seed
    batch = augment.augment_batch(images, seeds, config)
    assert batch.shape == images.shape and batch.dtype == images.dtype
    for image, seed, view in zip(images, seeds, batch, strict=True):
        np.testing.assert_array_equal(view, augment.augment(image, seed, config))
    dy, dx, flips = augment.crop_flip_draws(seeds, config)
    pad = config["pad"]
    assert dy.min() >= 0 and dx.max() <= 2 * pad and np.all(dy[::4] == pad)
    assert not flips[::4].any() and (config["flip"] or not flips.any())
    if len(seeds) >= 40 and config["flip"]:  # 30 coins: some land on flip
        assert flips.any()
    with pytest.raises(ValueError, match=r"seeds \[N\]"):
        augment.augment_batch(images, seeds[:-1], config)


def numpy_draws(seeds, pad, flip):
    """The views' draws as NumPy's own generator gives them, seed by seed."""
    out = []
    for seed in seeds.tolist():
        if seed == 0:
            out.append((pad, pad, False))
            continue
        rng = np.random.default_rng(seed)
        dy, dx = rng.integers(0, 2 * pad + 1, size=2)
        out.append((dy, dx, bool(rng.integers(0, 2)) and flip))
    return [np.array(column) for column in zip(*out, strict=True)]


@pytest.mark.parametrize("pad", [0, 1, 2, 16, 2**30, 2**31])
def test_the_draws_of_a_batch_replay_numpys_generator_bit_for_bit(pad):
    """crop_flip_draws replays SeedSequence + PCG64 + Lemire's bounded draws for a whole
    batch: equal to default_rng(seed) for one- and two-word seeds, seed 0, and (pad 2**30,
    where half the bounded draws are rejected) NumPy's redraws; from pad 2**31 NumPy draws
    64-bit numbers, and its own loop draws them."""
    rng = np.random.default_rng(pad)
    seeds = np.concatenate([rng.integers(1, 2**64, 600, dtype=np.uint64),
                            rng.integers(1, 2**32, 600, dtype=np.uint64),
                            np.array([0, 1, 2**32 - 1, 2**32, 2**64 - 1], dtype=np.uint64)])
    rng.shuffle(seeds)
    for flip in (True, False):
        config = {"name": "crop_flip", "pad": pad, "flip": flip}
        for got, want in zip(augment.crop_flip_draws(seeds, config),
                             numpy_draws(seeds, pad, flip), strict=True):
            np.testing.assert_array_equal(got, want)
        # a batch below the vectorized size takes NumPy's loop: the same numbers
        few = seeds[:augment._VECTORIZED_FROM - 1]
        for got, want in zip(augment.crop_flip_draws(few, config),
                             numpy_draws(few, pad, flip), strict=True):
            np.testing.assert_array_equal(got, want)
    if pad == 2**30:  # the redraw path was taken
        _, _, _, exact = augment._crop_flip_draws_vectorized(seeds[seeds != 0], pad)
        assert 0.6 < 1 - exact.mean() < 0.9  # dy or dx redrawn: 1 - 0.5**2


#: (dy, dx, flip) of these seeds' views at pad 2 and 16, as NumPy 2.4 draws them: the views
#: of every cache extracted so far; a NumPy that draws otherwise would change them
GOLDEN_SEEDS = [1, 7, 2**32 - 1, 2**32, 123456789012345, 2**63 + 11, 2**64 - 1,
                9876543210987654321]
GOLDEN_DRAWS = {
    2: [(2, 2, 1), (4, 3, 1), (0, 1, 1), (2, 4, 1), (3, 2, 1), (2, 0, 0), (2, 3, 1), (1, 3, 1)],
    16: [(15, 16, 1), (31, 20, 1), (6, 8, 1), (17, 29, 1), (23, 17, 1), (17, 5, 0), (18, 22, 1),
         (12, 25, 1)],
}


@pytest.mark.parametrize("pad", sorted(GOLDEN_DRAWS))
def test_the_views_of_known_seeds_stay_what_caches_hold(pad):
    config = {"name": "crop_flip", "pad": pad, "flip": True}
    want = [np.array(column) for column in zip(*GOLDEN_DRAWS[pad], strict=True)]
    seeds = np.array(GOLDEN_SEEDS, dtype=np.uint64)
    for batch in (seeds, seeds[:augment._VECTORIZED_FROM - 1]):  # replayed, and NumPy's loop
        for got, expected in zip(augment.crop_flip_draws(batch, config), want, strict=True):
            np.testing.assert_array_equal(got, expected[:len(batch)])
    assert numpy_draws(seeds, pad, True)[0].tolist() == [d[0] for d in GOLDEN_DRAWS[pad]]


def test_view_seeds_are_taken_exactly_or_refused():
    images = np.random.default_rng(2).integers(0, 256, (10, 8, 8), dtype=np.uint8)
    seeds = [2**63 + 2**20 * i + i for i in range(5)] + [1, 2, 3, 4, 5]  # float64 in asarray
    batch = augment.augment_batch(images, seeds)
    for image, seed, view in zip(images, seeds, batch, strict=True):
        np.testing.assert_array_equal(view, augment.augment(image, seed))
    np.testing.assert_array_equal(augment.augment_batch(images, np.arange(1, 11)),
                                  augment.augment_batch(images, np.arange(1, 11, dtype="u8")))
    for bad, match in ((np.full(10, -1), "non-negative"), (np.ones(10), "integers; got a float"),
                       ([-1] * 10, r"in \[0, 2\*\*64\)"), ([2**64] * 10, r"in \[0, 2\*\*64\)")):
        with pytest.raises(ValueError, match=match):
            augment.augment_batch(images, bad)
    assert augment.augment_batch(np.asfortranarray(images), np.arange(10)).flags.c_contiguous


def test_augmentation_deterministic_and_view0_identity():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (6, 28, 28), dtype=np.uint8)
    seeds = augment.view_seeds(7, np.arange(6), 4)
    assert seeds.dtype == np.uint64 and np.all(seeds[:, 0] == 0)
    assert len(np.unique(seeds[:, 1:])) == 18
    # seeds depend on (seed, index, view) only: a subset gets the same seeds
    np.testing.assert_array_equal(augment.view_seeds(7, np.array([3, 4]), 4), seeds[3:5])
    np.testing.assert_array_equal(augment.augment_batch(images, seeds[:, 0]), images)
    a = augment.augment_batch(images, seeds[:, 1])
    b = augment.augment_batch(images, seeds[:, 1])
    np.testing.assert_array_equal(a, b)
    assert a.shape == images.shape and a.dtype == np.uint8
    # each view is a shifted (and maybe flipped) copy of the padded image
    padded = np.pad(images[0], 2)
    windows = [padded[y:y + 28, x:x + 28] for y in range(5) for x in range(5)]
    candidates = windows + [w[:, ::-1] for w in windows]
    for v in range(1, 4):
        view = augment.augment(images[0], int(seeds[0, v]))
        assert any(np.array_equal(view, c) for c in candidates)


def _spec(**kw):
    base = dict(
        teacher_id="t", teacher_digest="d" * 64, teacher_kind="classifier",
        class_names=CLASSES, dataset="fashion-mnist", split="train",
        dataset_digest="e" * 64, num_samples=10, num_views=2, seed=0,
        augmentation=dict(augment.DEFAULT_AUGMENTATION), preprocessing={"resize": [32, 32]},
        probs="topk", topk=3, features="int8", feature_dim=4,
    )
    base.update(kw)
    return CacheSpec(**base)


def _static(spec):
    idx = np.arange(spec.num_samples)
    return {"sample_index": idx, "labels": idx % 10,
            "view_seeds": augment.view_seeds(spec.seed, idx, spec.num_views),
            "row_hash": (idx * 7919).astype(np.uint64)}


def _rows(spec, start, stop):
    rng = np.random.default_rng(start)
    logits = rng.normal(size=(stop - start, spec.num_views, 10))
    values, indices = codecs.encode_topk(logits, spec.topk)
    q, scale = feature_codec.encode_features(
        rng.normal(size=(stop - start, spec.num_views, 4)), "int8")
    return {"teacher/topk_values": values, "teacher/topk_indices": indices,
            "teacher/features": q, "teacher/features_scale": scale}


def _write_all(path, spec, batch_rows=4):
    writer = CacheWriter(path, spec, _static(spec), batch_rows=batch_rows)
    for start, stop in writer.pending():
        writer.write(start, _rows(spec, start, stop))
    return writer.finalize()


def test_writer_reader_round_trip(tmp_path):
    spec = _spec()
    path = _write_all(tmp_path / "c.h5", spec)
    assert not staging_dir(path).exists()
    cache = TeacherCache(path)
    assert cache.spec == spec
    assert cache.attrs["format_version"] == FORMAT_VERSION and cache.attrs["complete"]
    expected = np.concatenate([_rows(spec, s, min(s + 4, 10))["teacher/topk_values"]
                               for s in (0, 4, 8)])
    np.testing.assert_array_equal(cache.arrays["teacher/topk_values"], expected)
    probs = cache.teacher_probs()
    assert probs.shape == (10, 2, 10)
    np.testing.assert_allclose(probs.sum(-1), 1, rtol=1e-5)
    one_view = cache.teacher_probs(views=np.array([1] * 10))
    np.testing.assert_array_equal(one_view, probs[:, 1])
    with h5py.File(path) as f:
        assert f["teacher/topk_values"].compression == "gzip"
        assert f["teacher/topk_values"].chunks is not None


def test_resume_gives_identical_file_contents(tmp_path):
    spec = _spec()
    whole = TeacherCache(_write_all(tmp_path / "whole.h5", spec))
    path = tmp_path / "resumed.h5"
    first = CacheWriter(path, spec, _static(spec), batch_rows=4)
    first.write(0, _rows(spec, 0, 4))
    del first  # "interrupted"
    with pytest.raises(CacheIncompleteError, match="run the same `tosc-cache extract`"):
        TeacherCache(path)
    second = CacheWriter(path, spec, _static(spec), batch_rows=4)
    assert second.pending() == [(4, 8), (8, 10)] and second.rows_done() == 4
    for start, stop in second.pending():
        second.write(start, _rows(spec, start, stop))
    resumed = TeacherCache(second.finalize())
    assert resumed.arrays.keys() == whole.arrays.keys()
    for name in whole.arrays:
        np.testing.assert_array_equal(resumed.arrays[name], whole.arrays[name])
    assert resumed.attrs == whole.attrs


def test_resume_with_other_settings_refused(tmp_path):
    spec = _spec()
    writer = CacheWriter(tmp_path / "c.h5", spec, _static(spec), batch_rows=4)
    writer.write(0, _rows(spec, 0, 4))
    with pytest.raises(CacheMismatchError, match="topk: 3 != 5"):
        CacheWriter(tmp_path / "c.h5", _spec(topk=5), _static(spec), batch_rows=4)
    with pytest.raises(CacheMismatchError, match="batch_rows"):
        CacheWriter(tmp_path / "c.h5", spec, _static(spec), batch_rows=5)


def test_existing_cache_not_overwritten(tmp_path):
    spec = _spec()
    path = _write_all(tmp_path / "c.h5", spec)
    with pytest.raises(FileExistsError, match="--overwrite"):
        CacheWriter(path, spec, _static(spec), batch_rows=4)


def test_finalize_refuses_missing_rows(tmp_path):
    spec = _spec()
    writer = CacheWriter(tmp_path / "c.h5", spec, _static(spec), batch_rows=4)
    writer.write(0, _rows(spec, 0, 4))
    with pytest.raises(CacheIncompleteError, match="missing"):
        writer.finalize()
    assert not (tmp_path / "c.h5").exists()


def test_write_checks_shapes(tmp_path):
    spec = _spec()
    writer = CacheWriter(tmp_path / "c.h5", spec, _static(spec), batch_rows=4)
    rows = _rows(spec, 0, 4)
    rows["teacher/topk_values"] = rows["teacher/topk_values"].astype(np.float32)
    with pytest.raises(ValueError, match="teacher/topk_values"):
        writer.write(0, rows)


def test_corrupted_value_is_caught(tmp_path):
    path = _write_all(tmp_path / "c.h5", _spec())
    with h5py.File(path, "r+") as f:  # a rewrite through HDF5: valid chunk checksums
        f["teacher/topk_values"][3, 1, 0] += np.float16(0.01)
    for kw in ({"check_integrity": True}, {"check_integrity": "full", "resident_bytes": 0}, {}):
        with pytest.raises(CacheCorruptError, match="topk_values.*altered or corrupted"):
            TeacherCache(path, **kw)  # "full" (`tosc-cache verify`) or quick: what it loads
    # quick does not hash teacher outputs left in the file (chunk checksums guard them)
    TeacherCache(path, resident_bytes=0)
    TeacherCache(path, check_integrity=False)  # opening without the check still works
    with h5py.File(path, "r+") as f:
        f["labels"][2] = 7
    with pytest.raises(CacheCorruptError, match="'labels'.*altered"):
        TeacherCache(path, resident_bytes=0)
    with pytest.raises(ValueError, match="check_integrity must be"):
        TeacherCache(path, check_integrity="some")


@pytest.mark.parametrize("resident_bytes", [None, 0])
def test_flipped_byte_in_a_chunk_is_caught_on_read(tmp_path, resident_bytes):
    """Version 3 files carry HDF5 chunk checksums: damage on disk is caught when the
    rows are read, without hashing the whole file on opening."""
    path = _write_all(tmp_path / "c.h5", _spec())
    with h5py.File(path) as f:
        info = f["teacher/topk_values"].id.get_chunk_info(0)
    data = bytearray(path.read_bytes())
    data[info.byte_offset + info.size // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    kw = {} if resident_bytes is None else {"resident_bytes": resident_bytes}
    with pytest.raises(CacheCorruptError, match="corrupted"):
        TeacherCache(path, **kw).teacher_probs(np.array([3, 1]))


def test_rows_read_from_the_file_equal_rows_held_in_memory(tmp_path):
    spec = _spec()
    path = _write_all(tmp_path / "c.h5", spec, batch_rows=3)
    held, streamed = TeacherCache(path), TeacherCache(path, resident_bytes=0,
                                                      check_integrity="full")
    assert "teacher/topk_values" not in streamed._resident
    rows, views = np.array([7, 2, 7, 0, 9]), np.array([1, 0, 0, 1, 1])
    np.testing.assert_array_equal(streamed.teacher_probs(rows, views),
                                  held.teacher_probs(rows, views))
    np.testing.assert_array_equal(streamed.teacher_features(rows), held.teacher_features(rows))
    np.testing.assert_array_equal(streamed.arrays["teacher/topk_values"],
                                  held.arrays["teacher/topk_values"])
    # a reader never expands the stored outputs to [N, V, C]
    assert held.stored_bytes == sum(a.nbytes for n, a in held.arrays.items()
                                    if n.startswith("teacher/"))


def test_truncated_file_is_refused(tmp_path):
    path = _write_all(tmp_path / "c.h5", _spec())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CacheFormatError, match="truncated or corrupted"):
        TeacherCache(path)


def test_wrong_version_and_foreign_files_refused(tmp_path):
    path = _write_all(tmp_path / "c.h5", _spec())
    with h5py.File(path, "r+") as f:
        f.attrs["format_version"] = 4
    with pytest.raises(CacheFormatError, match="format version 4.*reads versions 1, 2, 3"):
        TeacherCache(path)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(CacheFormatError, match="not a tosc-sionna teacher cache"):
        TeacherCache(other)
    with pytest.raises(FileNotFoundError):
        TeacherCache(tmp_path / "missing.h5")


def test_incomplete_flag_refused(tmp_path):
    path = _write_all(tmp_path / "c.h5", _spec())
    with h5py.File(path, "r+") as f:
        f.attrs["complete"] = False
    with pytest.raises(CacheIncompleteError, match="not marked complete"):
        TeacherCache(path)


def test_row_hash_check_names_the_altered_rows(tmp_path):
    from tosc_cache.integrity import row_hash_digest, row_hashes

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (40, 6, 5), dtype=np.uint8)
    labels = rng.integers(0, 10, 40)
    hashes = row_hashes(images, labels, np.arange(40))
    spec = _spec(num_samples=40, dataset_digest=row_hash_digest(hashes))
    static = {**_static(spec), "labels": labels, "row_hash": hashes}
    writer = CacheWriter(tmp_path / "c.h5", spec, static, batch_rows=8)
    for start, stop in writer.pending():
        writer.write(start, _rows(spec, start, stop))
    cache = TeacherCache(writer.finalize())
    for rows in ("sample", "all"):  # matches: no error
        cache.check_data("fashion-mnist", "train", images, labels, rows=rows)
    altered = images.copy()
    altered[17, 2, 3] ^= 1
    for rows in ("sample", "all"):
        with pytest.raises(CacheMismatchError, match=r"1 of 40 checked rows differ \(row 17"):
            cache.check_data("fashion-mnist", "train", altered, labels, rows=rows)
    relabelled = labels.copy()
    relabelled[[3, 30]] = (labels[[3, 30]] + 1) % 10
    with pytest.raises(CacheMismatchError, match="2 of 40.*row 3 .*row 30"):
        cache.check_data("fashion-mnist", "train", images, relabelled)
    # a seeded sample of 8 rows finds a row only if it draws it; "all" always does
    picked = np.sort(np.random.default_rng(5).choice(40, 8, replace=False))
    missed = int(np.setdiff1d(np.arange(40), picked)[0])
    altered = images.copy()
    altered[missed] ^= 1
    cache.check_data("fashion-mnist", "train", altered, labels, sample_size=8, seed=5)
    with pytest.raises(CacheMismatchError, match=f"row {missed} "):
        cache.check_data("fashion-mnist", "train", altered, labels, rows="all")
    with pytest.raises(CacheMismatchError, match="only 39 samples"):
        cache.check_data("fashion-mnist", "train", images[:39], labels[:39])
    with pytest.raises(CacheMismatchError, match="split 'train' in the cache"):
        cache.check_data("fashion-mnist", "test", images, labels)


def test_environment_recorded_and_a_resume_elsewhere_warned(tmp_path):
    from tosc_cache import ResumedEnvironmentWarning

    spec = _spec()
    env = {"torch": "2.13.0", "device": "cpu", "threads": 2}
    first = CacheWriter(tmp_path / "c.h5", spec, _static(spec), batch_rows=4, environment=env)
    first.write(0, _rows(spec, 0, 4))
    other = {**env, "threads": 16}
    with pytest.warns(ResumedEnvironmentWarning, match="threads: 2 != 16"):
        second = CacheWriter(tmp_path / "c.h5", spec, _static(spec), batch_rows=4,
                             environment=other)
    for start, stop in second.pending():
        second.write(start, _rows(spec, start, stop))
    cache = TeacherCache(second.finalize())
    assert json.loads(cache.attrs["environment"]) == env
    assert json.loads(cache.attrs["resumed_in"]) == [other]


def test_finalize_streams_shards_under_a_low_open_file_limit(tmp_path):
    """More shards than the process may open files: finalize holds one at a time."""
    import subprocess
    import sys

    spec = _spec(num_samples=300)
    writer = CacheWriter(tmp_path / "c.h5", spec, _static(spec), batch_rows=1)
    for start, stop in writer.pending():
        writer.write(start, _rows(spec, start, stop))
    code = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))\n"
        "sys.path.insert(0, sys.argv[2])\n"
        "import test_cache_format as t\n"
        "from tosc_cache import CacheWriter\n"
        "spec = t._spec(num_samples=300)\n"
        "CacheWriter(sys.argv[1], spec, t._static(spec), batch_rows=1).finalize()\n"
    )
    run = subprocess.run([sys.executable, "-c", code, str(tmp_path / "c.h5"),
                          str(Path(__file__).parent)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    whole = TeacherCache(_write_all(tmp_path / "whole.h5", spec, batch_rows=1))
    streamed = TeacherCache(tmp_path / "c.h5", check_integrity="full")
    for name in whole.arrays:
        np.testing.assert_array_equal(streamed.arrays[name], whole.arrays[name])
    assert streamed.attrs == whole.attrs


def test_a_kill_during_finalize_leaves_a_resumable_state(tmp_path, monkeypatch):
    spec = _spec()
    whole = TeacherCache(_write_all(tmp_path / "whole.h5", spec))
    writer = CacheWriter(tmp_path / "c.h5", spec, _static(spec), batch_rows=4)
    for start, stop in writer.pending():
        writer.write(start, _rows(spec, start, stop))
    real_load, calls = np.load, []

    def dies_on_the_third_shard(*args, **kwargs):
        calls.append(args)
        if len(calls) == 3:
            raise KeyboardInterrupt  # stands for a kill between two shards
        return real_load(*args, **kwargs)

    monkeypatch.setattr(np, "load", dies_on_the_third_shard)
    with pytest.raises(KeyboardInterrupt):
        writer.finalize()
    monkeypatch.setattr(np, "load", real_load)
    assert not (tmp_path / "c.h5").exists() and staging_dir(tmp_path / "c.h5").exists()
    again = CacheWriter(tmp_path / "c.h5", spec, _static(spec), batch_rows=4)
    assert again.pending() == []
    resumed = TeacherCache(again.finalize(), check_integrity="full")
    for name in whole.arrays:
        np.testing.assert_array_equal(resumed.arrays[name], whole.arrays[name])
    assert resumed.attrs == whole.attrs


def test_check_matches_says_what_differs(tmp_path):
    cache = TeacherCache(_write_all(tmp_path / "c.h5", _spec()))
    cache.check_matches("fashion-mnist", "train", "e" * 64)
    with pytest.raises(CacheMismatchError, match="split 'train' in the cache, 'test' given"):
        cache.check_matches("fashion-mnist", "test", "e" * 64)
    with pytest.raises(CacheMismatchError, match="samples differ"):
        cache.check_matches("fashion-mnist", "train", "f" * 64)


def test_spec_validation():
    with pytest.raises(ValueError, match="topk must lie in"):
        _spec(topk=11)
    with pytest.raises(ValueError, match="probs must be one of"):
        _spec(probs="softmax")
    spec = _spec(probs="logits", features=None)
    assert set(spec.array_layout()) == {"sample_index", "labels", "view_seeds", "row_hash",
                                        "teacher/logits"}
    assert json.loads(spec.to_json())["probs"] == "logits"


def _write_with_fidelity(path, spec, batch_rows=4):
    """A cache whose shards carry the reconstruction KL at FIDELITY_TEMPERATURES."""
    writer = CacheWriter(path, spec, _static(spec), batch_rows=batch_rows)
    for start, stop in writer.pending():
        rows = _rows(spec, start, stop)
        kl = np.arange(len(probability.FIDELITY_TEMPERATURES), dtype=np.float32) + 1.0
        rows["compression_kl"] = np.broadcast_to(
            kl * (1 + start), (stop - start, spec.num_views, len(kl))).copy()
        writer.write(start, rows)
    return writer.finalize()


def test_fidelity_recorded_per_temperature_and_shown_by_info(tmp_path, capsys):
    from cache_tools import cli

    path = _write_with_fidelity(tmp_path / "c.h5", _spec())
    cache = TeacherCache(path)
    recorded = json.loads(cache.attrs["compression_fidelity"])
    j4 = probability.FIDELITY_TEMPERATURES.index(4.0)
    # rows 0-3 carry (j + 1) * 1, rows 4-7 (j + 1) * 5, rows 8-9 (j + 1) * 9: mean over 10 rows
    mean4 = (j4 + 1) * (4 * 1 + 4 * 5 + 2 * 9) / 10
    assert recorded["4"]["kl_mean"] == pytest.approx(mean4)
    assert recorded["4"]["kl_max"] == pytest.approx((j4 + 1) * 9)
    assert recorded["4"]["scaled_kl_mean"] == pytest.approx(16 * mean4)
    assert cache.attrs["compression_kl_mean"] == pytest.approx(4.2)  # tau = 1 column
    assert cli.main(["info", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert set(info["reconstruction_kl"]) == {"1", "4"}  # the default temperatures
    assert info["reconstruction_kl"]["4"]["kl_mean"] == pytest.approx(mean4)
    assert cli.main(["info", str(path), "--temperature", "2", "--temperature", "3"]) == 0
    text = capsys.readouterr().out
    assert "fidelity T=2" in text and "fidelity T=3   not recorded" in text


def test_info_on_a_logits_cache_bounds_unrecorded_temperatures(tmp_path, capsys):
    from cache_tools import cli

    spec = _spec(probs="logits", features=None)
    writer = CacheWriter(tmp_path / "c.h5", spec, _static(spec), batch_rows=10)
    logits = np.random.default_rng(0).normal(scale=3, size=(10, 2, 10))
    writer.write(0, {"teacher/logits": logits.astype(np.float16)})
    path = writer.finalize()
    assert cli.main(["info", str(path), "--json", "--temperature", "4"]) == 0
    fid = json.loads(capsys.readouterr().out)["reconstruction_kl"]["4"]
    assert fid["source"].startswith("upper bound")
    bound = codecs.logits_kl_bound(logits.astype(np.float16), 4.0)
    assert fid["kl_max"] == pytest.approx(bound.max())


def test_cli_exit_codes_usage_missing_and_crash(tmp_path, capsys, monkeypatch):
    import subprocess
    import sys

    from cache_tools import cli

    path = _write_all(tmp_path / "c.h5", _spec())
    with pytest.raises(SystemExit) as usage:  # bad usage: argparse, exit 2
        cli.main(["info", str(path), "--temperature", "-1"])
    assert usage.value.code == 2
    assert cli.main(["info", str(tmp_path / "missing.h5")]) == 2  # missing input
    assert "No teacher cache at" in capsys.readouterr().err
    with h5py.File(path, "r+") as f:
        f.attrs["complete"] = False
    assert cli.main(["verify", str(path), "--split", "train"]) == 1  # invalid cache
    # an unexpected error inside the tool is a crash, even a ValueError: not "usage"
    for error in (RuntimeError, ValueError):
        def broken(*args, error=error, **kwargs):
            raise error("injected bug")

        monkeypatch.setattr(cli, "_info", broken)
        with pytest.raises(error, match="injected bug"):
            cli.main(["info", str(path)])
    script = (
        "import sys; from cache_tools import cli\n"
        "def broken(*a, **k): raise RuntimeError('injected bug')\n"
        "cli._info = broken\n"
        f"sys.exit(cli.main(['info', {str(path)!r}]))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr and "RuntimeError: injected bug" in proc.stderr
    assert "usage" not in proc.stderr


def test_basis_cache_round_trip_and_version(tmp_path, capsys):
    from cache_tools import cli
    from tosc_cache.codecs import basis_arrays

    spec = _spec(probs="basis", topk=3, rank=3, features=None)
    assert spec.format_version == _spec().format_version == FORMAT_VERSION == 3
    assert "rank" not in json.loads(_spec().to_json())  # version-1 specs unchanged
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(10, 2, 10)) @ np.diag(np.linspace(3, 0.1, 10))
    fitted = codecs.fit_basis(logits, 3, 3)
    static = {**_static(spec), "teacher/basis_mean": fitted["mean"],
              "teacher/basis": fitted["basis"], "teacher/basis_scale": fitted["scale"],
              "teacher/basis_step": fitted["step"]}
    writer = CacheWriter(tmp_path / "b.h5", spec, static, batch_rows=4)
    assert writer.spec.row_arrays() == ["teacher/basis_coeffs", "teacher/basis_residuals"]
    for start, stop in writer.pending():
        codes, residuals = codecs.encode_basis(logits[start:stop], fitted, 3)
        writer.write(start, {"teacher/basis_coeffs": codes,
                             "teacher/basis_residuals": residuals})
    cache = TeacherCache(writer.finalize())
    assert cache.attrs["format_version"] == 3 and cache.spec == spec
    for key, value in basis_arrays(cache.arrays).items():
        np.testing.assert_array_equal(value, fitted[key])
    expected = codecs.decode_basis(
        *codecs.encode_basis(logits, fitted, 3), fitted, 3)
    np.testing.assert_array_equal(cache.teacher_probs(), expected)
    np.testing.assert_array_equal(cache.teacher_probs(views=np.ones(10, int)), expected[:, 1])
    assert cli.main(["info", str(cache.path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["compression"] == {"probs": "basis", "topk": 3, "rank": 3, "features": None,
                                   "feature_dim": 4}
    # 3 int8 coefficients + 2 bytes of 4-bit residuals per row, and the shared arrays
    # ((3 + 1) x 10 + 3 + 1 float32 = 176 B) spread over 20 rows
    assert info["bytes_per_sample_per_view"] == pytest.approx(3 + 2 + 176 / 20)
    with pytest.raises(ValueError, match="rank applies to probs='basis'"):
        _spec(rank=2)
    with pytest.raises(ValueError, match="a basis cache needs"):
        _spec(probs="basis", rank=0)


def test_extract_without_the_teacher_extra_says_in_one_line_what_to_install(
        monkeypatch, capsys, tmp_path):
    import sys

    from cache_tools import cli

    monkeypatch.setitem(sys.modules, "torch", None)  # as if torch were not installed
    assert cli.main(["extract", "--model", "m", "--out", str(tmp_path / "c.h5")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "torch is not installed" in err
    assert "pip install torch==" in err and "'tosc-sionna[cache]'" in err
    assert not (tmp_path / "c.h5").exists()
