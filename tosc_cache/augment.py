"""The augmentation, defined once (NumPy only) and replayed bit-identically.

A view of a sample is keyed by one stored 64-bit seed. View 0 is always the
unaugmented image; view ``v >= 1`` is a random crop with zero padding plus a
random horizontal flip drawn from ``numpy.random.default_rng(seed)``. The
teacher side computes the views it feeds the teacher with this code, and the
student side replays the very same views from the seeds in the cache.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: The augmentation's parameters; stored in the cache as provenance.
DEFAULT_AUGMENTATION = {"name": "crop_flip", "pad": 2, "flip": True}


def view_seeds(base_seed: int, sample_indices: np.ndarray, num_views: int) -> np.ndarray:
    """``[N, V]`` uint64 seeds; column 0 is 0 (the unaugmented view).

    Seeds depend on (base_seed, dataset index, view) only, so a subset or a
    resumed run draws the same views. Seed ``[i, v]`` for ``v >= 1`` is
    ``np.random.SeedSequence([base_seed, sample_indices[i], v])
    .generate_state(1, dtype=np.uint64)[0]``, computed here for all rows at
    once (bit-identical; see :func:`_view_seeds_vectorized`).
    """
    sample_indices = np.asarray(sample_indices, dtype=np.int64)
    seeds = np.zeros((len(sample_indices), num_views), dtype=np.uint64)
    if num_views <= 1 or len(sample_indices) == 0:
        return seeds
    if sample_indices.ndim != 1:  # not a list of indices: the loop decides (and raises)
        return _view_seeds_loop(seeds, base_seed, sample_indices, range(len(sample_indices)),
                                range(1, num_views))
    base_seed = int(base_seed)
    fast_views = min(num_views, _UINT32_LIMIT)  # views below 2**32 take one entropy word
    if base_seed < 0:
        fast = np.zeros(len(sample_indices), dtype=bool)
    else:
        fast = sample_indices >= 0
    slow_rows = np.flatnonzero(~fast)
    if len(slow_rows):  # negative values: SeedSequence itself raises
        _view_seeds_loop(seeds, base_seed, sample_indices, slow_rows, range(1, num_views))
    if fast_views < num_views:  # 2**32 views or more: never in practice
        _view_seeds_loop(seeds, base_seed, sample_indices, np.flatnonzero(fast),
                         range(fast_views, num_views))
    rows = np.flatnonzero(fast)
    if len(rows) and fast_views > 1:
        seeds[rows, 1:fast_views] = _view_seeds_vectorized(
            base_seed, sample_indices[rows], np.arange(1, fast_views, dtype=np.int64)
        )
    return seeds


def _view_seeds_loop(seeds: np.ndarray, base_seed: int, sample_indices: np.ndarray,
                     rows: Any, views: Any) -> np.ndarray:
    """The reference: one ``SeedSequence`` per (row, view); fills ``seeds`` in place."""
    for view in views:
        for row in rows:
            seeds[row, view] = np.random.SeedSequence(
                [int(base_seed), int(sample_indices[row]), view]
            ).generate_state(1, dtype=np.uint64)[0]
    return seeds


# NumPy's SeedSequence (numpy/random/bit_generator.pyx, O'Neill's seed_seq
# alternative): hash and mix constants, and the default 128-bit pool.
_INIT_A = 0x43B0D7E5
_MULT_A = 0x931E8875
_INIT_B = 0x8B51F9DD
_MULT_B = 0x58F38DED
_MIX_MULT_L = 0xCA01F9DD
_MIX_MULT_R = 0x4973F715
_XSHIFT = 16
_POOL_SIZE = 4
_MASK32 = 0xFFFFFFFF
_UINT32_LIMIT = 2**32
_CHUNK_ELEMENTS = 1 << 16  # (row, view) pairs per block: the temporaries stay in cache


def _int_words(value: int) -> list[int]:
    """A non-negative int as SeedSequence coerces it: uint32 words, lowest first; 0 -> [0]."""
    words = [value & _MASK32]
    value >>= 32
    while value > 0:
        words.append(value & _MASK32)
        value >>= 32
    return words


def _hash_consts(init: int, mult: int, count: int) -> list[int]:
    """The multipliers hashmix uses, in order: init*mult, init*mult**2, ... (mod 2**32)."""
    consts, h = [], init
    for _ in range(count):
        h = (h * mult) & _MASK32
        consts.append(h)
    return consts


def _hashmix(value: np.ndarray, before: int, after: int) -> np.ndarray:
    value = (value ^ np.uint32(before)) * np.uint32(after)
    return value ^ (value >> np.uint32(_XSHIFT))


def _mix(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    result = np.uint32(_MIX_MULT_L) * x - np.uint32(_MIX_MULT_R) * y
    return result ^ (result >> np.uint32(_XSHIFT))


def _seed_sequence_uint64(entropy: list[np.ndarray]) -> np.ndarray:
    """``SeedSequence(words).generate_state(1, np.uint64)[0]`` element-wise.

    ``entropy`` holds the assembled uint32 entropy words, each a uint32 array
    (all broadcastable to one shape): word ``k`` of every element's entropy.
    """
    return _seed_sequence_state(entropy, 1)[0]


def _seed_sequence_state(entropy: list[np.ndarray], words: int) -> list[np.ndarray]:
    """``SeedSequence(words).generate_state(words, np.uint64)`` element-wise: the
    ``words`` uint64 arrays (see :func:`_seed_sequence_uint64` for ``entropy``)."""
    extra = max(0, len(entropy) - _POOL_SIZE)
    n_hash = _POOL_SIZE * _POOL_SIZE + extra * _POOL_SIZE  # fill 4, cross-mix 12, fold 4 each
    consts = _hash_consts(_INIT_A, _MULT_A, n_hash)
    # hash_const before and after each hashmix call
    steps = iter(zip([_INIT_A] + consts[:-1], consts, strict=True))

    def hashmix(value: np.ndarray) -> np.ndarray:
        return _hashmix(value, *next(steps))

    zero = np.zeros((1,) * entropy[0].ndim, dtype=np.uint32)
    # mix_entropy: fill the pool (with zeros past the entropy), mix all pool
    # words together, then fold in any entropy beyond the pool.
    pool = [hashmix(entropy[i] if i < len(entropy) else zero) for i in range(_POOL_SIZE)]
    for src in range(_POOL_SIZE):
        for dst in range(_POOL_SIZE):
            if src != dst:
                pool[dst] = _mix(pool[dst], hashmix(pool[src]))
    for src in range(_POOL_SIZE, len(entropy)):
        for dst in range(_POOL_SIZE):
            pool[dst] = _mix(pool[dst], hashmix(entropy[src]))
    # generate_state(words, uint64): 2 * words uint32 words from the cycled pool,
    # each pair's first the low half (assembled little-endian)
    out_consts = _hash_consts(_INIT_B, _MULT_B, 2 * words)
    halves = [_hashmix(pool[k % _POOL_SIZE], before, after).astype(np.uint64)
              for k, (before, after) in enumerate(zip([_INIT_B] + out_consts[:-1], out_consts,
                                                      strict=True))]
    return [halves[2 * k] | (halves[2 * k + 1] << np.uint64(32)) for k in range(words)]


def _view_seeds_vectorized(base_seed: int, indices: np.ndarray, views: np.ndarray) -> np.ndarray:
    """``[len(indices), len(views)]`` seeds for ``base_seed >= 0``, ``indices >= 0``
    (int64) and ``1 <= views < 2**32``: the SeedSequence mixing in uint32 arrays."""
    base_words = [np.full((1, 1), w, dtype=np.uint32) for w in _int_words(base_seed)]
    view_words = [views.astype(np.uint32)[None, :]]
    out = np.empty((len(indices), len(views)), dtype=np.uint64)
    small = indices < _UINT32_LIMIT  # one entropy word; the rest take two (int64 < 2**64)
    block = max(1, _CHUNK_ELEMENTS // len(views))
    for one_word, rows in ((True, np.flatnonzero(small)), (False, np.flatnonzero(~small))):
        for start in range(0, len(rows), block):
            part = rows[start:start + block]
            idx = indices[part][:, None]
            index_words = [(idx & _MASK32).astype(np.uint32)]
            if not one_word:
                index_words.append((idx >> 32).astype(np.uint32))
            out[part] = _seed_sequence_uint64(base_words + index_words + view_words)
    return out


# NumPy's PCG64 (numpy/random/src/pcg64): a 128-bit LCG, state = state * MULT + inc,
# output XSL-RR of the new state; state and inc are (high, low) uint64 arrays here.
_PCG_MULT = (np.uint64(2549297995355413924), np.uint64(4865540595714422341))
_LOW32 = np.uint64(_MASK32)


def _mul_high64(a: np.ndarray, b: np.uint64) -> np.ndarray:
    """The high 64 bits of the 128-bit products ``a * b``, from 32-bit halves."""
    a0, a1 = a & _LOW32, a >> np.uint64(32)
    b0, b1 = b & _LOW32, b >> np.uint64(32)
    p00, p01, p10, p11 = a0 * b0, a0 * b1, a1 * b0, a1 * b1
    mid = (p00 >> np.uint64(32)) + (p01 & _LOW32) + (p10 & _LOW32)
    return p11 + (p01 >> np.uint64(32)) + (p10 >> np.uint64(32)) + (mid >> np.uint64(32))


def _add128(x: tuple[np.ndarray, np.ndarray], y: tuple[np.ndarray, np.ndarray]
            ) -> tuple[np.ndarray, np.ndarray]:
    low = x[1] + y[1]
    return x[0] + y[0] + (low < x[1]).astype(np.uint64), low


def _pcg_step(state: tuple[np.ndarray, np.ndarray], inc: tuple[np.ndarray, np.ndarray]
              ) -> tuple[np.ndarray, np.ndarray]:
    high, low = state
    mult_high, mult_low = _PCG_MULT
    product = (_mul_high64(low, mult_low) + low * mult_high + high * mult_low, low * mult_low)
    return _add128(product, inc)


def _pcg_output(state: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    high, low = state
    x, rotation = high ^ low, high >> np.uint64(58)
    return (x >> rotation) | (x << ((np.uint64(64) - rotation) & np.uint64(63)))


def _lemire(words: np.ndarray, bound: int) -> tuple[np.ndarray, np.ndarray]:
    """NumPy's bounded uint32 draws in ``[0, bound)`` from uint32 ``words``: (values, whether
    the draw was accepted; a rejected one would draw again)."""
    m = words * np.uint64(bound)
    threshold = (2**32 - bound) % bound
    return m >> np.uint64(32), (m & _LOW32) >= np.uint64(threshold)


def _crop_flip_draws_vectorized(seeds: np.ndarray, pad: int
                                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(dy, dx, coin, exact)`` for non-zero uint64 ``seeds``: what
    ``default_rng(seed).integers(0, 2 pad + 1, size=2)`` and ``.integers(0, 2)`` give,
    computed for all seeds at once (SeedSequence, PCG64 and Lemire's bounded draws as in
    NumPy); ``exact`` is False where a draw was rejected (NumPy would draw again: one seed
    in 2**31 at pad 2, in 2**29 at pad 16), and those must be drawn by NumPy itself.
    ``2 pad + 1 < 2**32`` (NumPy's 32-bit draws)."""
    out = [np.zeros(len(seeds), np.int64) for _ in range(3)] + [np.ones(len(seeds), bool)]
    for two_words in (False, True):
        rows = np.flatnonzero((seeds >= np.uint64(2**32)) == two_words)
        if not len(rows):
            continue
        entropy = [(seeds[rows] & _LOW32).astype(np.uint32)]
        if two_words:
            entropy.append((seeds[rows] >> np.uint64(32)).astype(np.uint32))
        v0, v1, v2, v3 = _seed_sequence_state(entropy, 4)
        # pcg64_set_seed: state 0, inc = (initseq << 1) | 1, step, state += initstate, step
        inc = ((v2 << np.uint64(1)) | (v3 >> np.uint64(63)), (v3 << np.uint64(1)) | np.uint64(1))
        state = _pcg_step(_add128(inc, (v0, v1)), inc)
        state = _pcg_step(state, inc)
        first = _pcg_output(state)  # two uint32 draws: low half, then high half
        if pad > 0:
            dy, ok_y = _lemire(first & _LOW32, 2 * pad + 1)
            dx, ok_x = _lemire(first >> np.uint64(32), 2 * pad + 1)
            coin, _ = _lemire(_pcg_output(_pcg_step(state, inc)) & _LOW32, 2)  # never rejects
            exact = ok_y & ok_x
        else:  # integers(0, 1) draws nothing
            dy = dx = np.zeros(len(rows), np.uint64)
            coin, exact = _lemire(first & _LOW32, 2)
        for target, value in zip(out, (dy, dx, coin, exact), strict=True):
            target[rows] = value
    return tuple(out)


def default_pad(image_size: tuple[int, ...]) -> int:
    """Crop padding for images of ``(H, W)``: 1/14 of the shorter side (2 at 28 and 32,
    16 at 224), at least 1."""
    return max(1, round(min(int(image_size[0]), int(image_size[1])) / 14))


def check_augmentation(config: dict[str, Any]) -> dict[str, Any]:
    """Validate an augmentation description and return it normalized."""
    if config.get("name") != "crop_flip":
        raise ValueError(f"Unknown augmentation {config.get('name')!r}; only 'crop_flip'.")
    pad = int(config.get("pad", 2))
    if pad < 0:
        raise ValueError(f"Augmentation pad must be >= 0; got {pad}.")
    return {"name": "crop_flip", "pad": pad, "flip": bool(config.get("flip", True))}


def augment(
    image: np.ndarray, seed: int, config: dict[str, Any] = DEFAULT_AUGMENTATION
) -> np.ndarray:
    """One view of ``image`` (``[H, W]`` or ``[H, W, C]``); seed 0 returns it unchanged.

    The definition of a view; :func:`augment_batch` computes the same views for a batch.
    """
    if int(seed) == 0:
        return image
    config = check_augmentation(config)
    pad = config["pad"]
    rng = np.random.default_rng(int(seed))
    dy, dx = rng.integers(0, 2 * pad + 1, size=2)
    flip = bool(rng.integers(0, 2)) and config["flip"]
    height, width = image.shape[:2]
    widths = [(pad, pad), (pad, pad)] + [(0, 0)] * (image.ndim - 2)
    out = np.pad(image, widths)[dy : dy + height, dx : dx + width]
    return out[:, ::-1].copy() if flip else out.copy()


def as_seeds(seeds: Any) -> np.ndarray:
    """``seeds`` as a uint64 array, exactly: a uint or non-negative int array, or Python ints
    (a list mixing ints below and above 2**63 would become float64 in ``np.asarray``)."""
    if isinstance(seeds, np.ndarray) and seeds.dtype.kind in "ui":
        if seeds.dtype.kind == "i" and (seeds < 0).any():
            raise ValueError("view seeds must be non-negative.")
        return seeds.astype(np.uint64, copy=False)
    if isinstance(seeds, np.ndarray) and seeds.dtype.kind != "O":
        raise ValueError(f"view seeds must be integers; got a {seeds.dtype} array.")
    try:
        return np.array([int(s) for s in np.asarray(seeds, dtype=object).reshape(-1)],
                        dtype=np.uint64).reshape(np.shape(seeds))
    except (OverflowError, TypeError, ValueError) as err:
        raise ValueError(f"view seeds must be integers in [0, 2**64): {err}") from err


#: Seeds from which :func:`crop_flip_draws` replays the generator as arrays (below, the array
#: overhead exceeds a generator per seed).
_VECTORIZED_FROM = 8


def crop_flip_draws(
    seeds: np.ndarray, config: dict[str, Any] = DEFAULT_AUGMENTATION
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(dy, dx, flip)`` of each seed's view: int64 crop offsets into the padded image and
    bool flips, as :func:`augment` draws them from ``numpy.random.default_rng(seed)`` (two
    offsets in ``[0, 2 pad]``, then a coin for the flip); seed 0 (the unaugmented view)
    gives the centre crop ``(pad, pad)`` and no flip. From :data:`_VECTORIZED_FROM` seeds
    on, NumPy's generator is replayed for all seeds at once (bit-identical, tested against
    ``default_rng``; a generator per seed cost about 16 us, most of a small-image batch)."""
    config = check_augmentation(config)
    pad, flip = config["pad"], config["flip"]
    seeds = as_seeds(seeds).reshape(-1)
    dy = np.full(len(seeds), pad, dtype=np.int64)
    dx = np.full(len(seeds), pad, dtype=np.int64)
    flips = np.zeros(len(seeds), dtype=bool)
    drawn = np.flatnonzero(seeds != 0)
    if len(drawn) >= _VECTORIZED_FROM and 2 * pad + 1 < 2**32:  # else NumPy's 64-bit draws
        dy[drawn], dx[drawn], coin, exact = _crop_flip_draws_vectorized(seeds[drawn], pad)
        flips[drawn] = coin.astype(bool) & flip
        drawn = drawn[~exact]  # rejected draws: NumPy's own loop
    for i in drawn.tolist():
        rng = np.random.default_rng(int(seeds[i]))
        dy[i], dx[i] = rng.integers(0, 2 * pad + 1, size=2)
        flips[i] = bool(rng.integers(0, 2)) and flip
    return dy, dx, flips


def augment_batch(
    images: np.ndarray, seeds: np.ndarray, config: dict[str, Any] = DEFAULT_AUGMENTATION
) -> np.ndarray:
    """Views of a batch (``[N, H, W]`` or ``[N, H, W, C]``): ``images[i]`` with ``seeds[i]``,
    equal to :func:`augment` image by image.

    The batch is zero-padded once and each view is a slice of it (a per-image ``np.pad``
    cost more than the rest of a reader's batch, in Python, holding the GIL).
    """
    images = np.asarray(images)
    seeds = as_seeds(seeds)
    if images.ndim < 3 or seeds.shape != (len(images),):
        raise ValueError(f"augment_batch takes images [N, H, W(, C)] and seeds [N]; got "
                         f"{images.shape} and {seeds.shape}.")
    dy, dx, flips = crop_flip_draws(seeds, config)
    pad = check_augmentation(config)["pad"]
    n, height, width = images.shape[:3]
    padded = np.zeros((n, height + 2 * pad, width + 2 * pad) + images.shape[3:], images.dtype)
    padded[:, pad:pad + height, pad:pad + width] = images
    out = np.empty(images.shape, images.dtype)
    for i in range(n):
        view = padded[i, dy[i]:dy[i] + height, dx[i]:dx[i] + width]
        out[i] = view[:, ::-1] if flips[i] else view
    return out
