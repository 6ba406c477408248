"""view_seeds: the vectorized SeedSequence mixing is bit-identical to the per-seed loop."""

from __future__ import annotations

import numpy as np
import pytest

from tosc_cache.augment import view_seeds

EDGE_INDICES = [0, 1, 2, 3, 2**31, 2**32 - 2, 2**32 - 1, 2**32, 2**32 + 1, 2**40, 2**62,
                2**63 - 1]
EDGE_SEEDS = [0, 1, 2**31 - 1, 2**32 - 1, 2**32, 2**40, 2**64 - 1, 2**64, 2**96 + 12345,
              2**130 + 7]


def reference(base_seed: int, sample_indices, num_views: int) -> np.ndarray:
    """The original double loop, one ``np.random.SeedSequence`` per (row, view)."""
    sample_indices = np.asarray(sample_indices, dtype=np.int64)
    seeds = np.zeros((len(sample_indices), num_views), dtype=np.uint64)
    for view in range(1, num_views):
        for row, index in enumerate(sample_indices):
            seeds[row, view] = np.random.SeedSequence(
                [int(base_seed), int(index), view]
            ).generate_state(1, dtype=np.uint64)[0]
    return seeds


def assert_bit_identical(base_seed, indices, num_views):
    got = view_seeds(base_seed, indices, num_views)
    want = reference(base_seed, indices, num_views)
    assert got.dtype == np.uint64 and got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    assert np.all(got[:, 0] == 0)


@pytest.mark.parametrize("base_seed", EDGE_SEEDS)
def test_edge_seeds_and_indices_match_loop(base_seed):
    # one- and two-word indices, and base seeds of 1 to 5 uint32 words, so the
    # entropy ranges from 3 words (pool padded with zeros) to 8 (folded in past the pool)
    assert_bit_identical(base_seed, EDGE_INDICES, 4)


def test_random_seeds_and_indices_match_loop():
    rng = np.random.default_rng(2024)
    for _ in range(6):
        base_seed = int(rng.integers(0, 2**63)) >> int(rng.integers(0, 63))
        small = rng.integers(0, 2**32, size=40)
        large = rng.integers(2**32, 2**63, size=20) >> rng.integers(0, 31, size=20)
        indices = rng.permutation(np.concatenate([small, large, EDGE_INDICES]))
        assert_bit_identical(base_seed, indices, int(rng.integers(2, 6)))


def test_many_views_match_loop():
    assert_bit_identical(7, [0, 1, 2**32 - 1, 2**32, 2**40], 300)
    assert_bit_identical(2**40, [5, 2**33], 1000)


def test_shapes_dtypes_and_column_zero():
    for num_views in (0, 1, 2, 4):
        seeds = view_seeds(3, np.arange(5), num_views)
        assert seeds.shape == (5, num_views) and seeds.dtype == np.uint64
        assert np.all(seeds[:, :1] == 0)
    empty = view_seeds(3, np.array([], dtype=np.int64), 4)
    assert empty.shape == (0, 4) and empty.dtype == np.uint64
    # index arrays of any integer dtype, lists and numpy-integer base seeds
    want = reference(9, [4, 2, 0], 3)
    for indices in ([4, 2, 0], np.array([4, 2, 0], dtype=np.uint32),
                    np.array([4, 2, 0], dtype=np.int16)):
        np.testing.assert_array_equal(view_seeds(np.uint64(9), indices, 3), want)
    seeds = view_seeds(0, np.arange(50), 4)
    assert np.all(seeds[:, 1:] != 0) and len(np.unique(seeds[:, 1:])) == 150
    # a subset or a reordering draws the same seeds
    np.testing.assert_array_equal(view_seeds(0, np.array([30, 3]), 4), seeds[[30, 3]])


def test_negative_values_fall_back_to_the_loop_and_raise():
    with pytest.raises(ValueError, match="non-negative"):
        view_seeds(1, np.array([0, -1, 2]), 2)
    with pytest.raises(ValueError, match="non-negative"):
        view_seeds(-1, np.array([0, 1]), 2)
    # with a single view no SeedSequence is built, as before
    assert view_seeds(-1, np.array([-1]), 1).shape == (1, 1)


def test_imagenet_sized_run_works():
    # not a timed assertion: 200k rows x 4 views go through the vectorized path
    indices = np.arange(200_000)
    seeds = view_seeds(1234, indices, 4)
    assert seeds.shape == (200_000, 4) and np.all(seeds[:, 0] == 0)
    rows = np.random.default_rng(0).choice(len(indices), size=64, replace=False)
    rows = np.concatenate([[0, len(indices) - 1], rows])
    np.testing.assert_array_equal(seeds[rows], reference(1234, indices[rows], 4))
