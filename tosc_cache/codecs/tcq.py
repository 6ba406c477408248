"""``tcq``: a fixed number of bits per row, trellis-coded.

The same kind of per-cache basis as ``basis`` (float16) with its
coefficients, then residual logits of the k classes the coded basis ranks
highest, all trellis-coded (TCQ, per-value codebooks and bit widths fitted per
cache); 64 bytes per row reach mean KL <= 0.01 at tau = 1 and 4 on a flat
1000-class teacher.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..probability import softmax
from .base import Codec, Layout
from .basis import basis_support

# Stage 1 codes the coefficients of the centered logits in a per-cache principal
# basis, stage 2 the residual logits of the k classes the stage-1 approximation
# ranks highest (no indices stored). Each coded value t has a bit width b_t >= 1
# and a codebook of 2^(b_t + 1) sorted levels, labelled D0 D1 D2 D3 D0 ... by
# position mod 4; a 64-state trellis (one per stage, starting in state 0)
# chooses which subset D each value may use: one bit picks the branch, b_t - 1
# bits the level within the subset's 2^(b_t - 1). The encoder finds the path of
# least p-weighted squared error (Viterbi); decoding walks the trellis with
# table lookups and sums elementwise, so writer and readers get the same bits.

#: Trellis states and tap mask: from state s, input bit u goes to state
#: ``(2s + u) mod TCQ_STATES`` through subset ``(s & 1) + 2 (u xor parity(s & TCQ_TAPS))``.
TCQ_STATES = 64
TCQ_TAPS = 53
#: Largest bit width of one coded value (its codebook has 2^(b + 1) levels).
TCQ_MAX_BITS = 5
#: Residual ranks that share one bit width (``topk`` is a multiple of it).
TCQ_GROUP = 8
#: Share of a row's bits given to the residual stage (rounded to whole groups).
TCQ_RESIDUAL_SHARE = 5 / 16
#: Codebook fit: 1-D Lloyd iterations, then Viterbi + weighted-centroid iterations.
TCQ_LLOYD_ITERATIONS = 30
TCQ_FIT_ITERATIONS = 3
#: Rows encoded per Viterbi pass (bounds the encoder's memory).
TCQ_CHUNK_ROWS = 2048
#: Distortion of a unit Gaussian under this TCQ at 0..TCQ_MAX_BITS bits (bit allocation).
_TCQ_DISTORTION = np.array([1.0, 0.322, 0.0906, 0.0246, 0.0066, 0.0017])
#: KL weight of a squared logit error: 1/2 p at tau = 1 plus (1/2) (1/16) p_4 at tau = 4.
_TAU4_WEIGHT = 1 / 32


def _tcq_trellis() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    states = np.arange(TCQ_STATES)
    parity = np.array([bin(int(s) & TCQ_TAPS).count("1") & 1 for s in states])
    u = np.arange(2)
    subset = (states[:, None] & 1) + 2 * (u[None] ^ parity[:, None])  # [S, 2]
    nxt = ((states[:, None] << 1) | u[None]) & (TCQ_STATES - 1)
    # the two branches into state t: from t >> 1 and (t >> 1) + S/2, both with u = t & 1
    inc_s = np.stack([states >> 1, (states >> 1) | (TCQ_STATES >> 1)], 1)
    inc_u = np.stack([states & 1, states & 1], 1)
    return subset, nxt, inc_s, inc_u


_SUBSET, _NEXT, _INC_S, _INC_U = _tcq_trellis()
_INC_D = _SUBSET[_INC_S, _INC_U]  # subset of each incoming branch [S, 2]


def tcq_defaults(num_classes: int) -> tuple[int, int]:
    """Default rank and topk of a tcq compression for ``num_classes`` classes (256 and 128 for
    1000 classes)."""
    return min(256, num_classes), min(128, num_classes // TCQ_GROUP * TCQ_GROUP)


def tcq_levels_width() -> int:
    """Columns of the stored codebook table (levels of the widest value)."""
    return 2 ** (TCQ_MAX_BITS + 1)


def check_tcq(num_classes: int, rank: int, k: int, bits: int) -> None:
    """Raise ValueError, saying why, unless a ``tcq`` compression can use these settings."""
    if not 1 <= rank <= num_classes:
        raise ValueError(f"tcq needs 1 <= rank <= {num_classes}; got rank {rank}.")
    if not (TCQ_GROUP <= k <= num_classes and k % TCQ_GROUP == 0):
        raise ValueError(f"tcq needs topk a multiple of {TCQ_GROUP} in [{TCQ_GROUP}, "
                         f"{num_classes}]; got {k}.")
    if bits < 8 or bits % 8:
        raise ValueError(f"tcq needs a whole number of bytes per row (bits a positive "
                         f"multiple of 8); got {bits} bits.")
    first, second = tcq_split(bits)
    if first > rank * TCQ_MAX_BITS or second > k * TCQ_MAX_BITS:
        raise ValueError(
            f"{bits} bits per row ({first} for the basis, {second} for the residuals) exceed "
            f"what rank {rank} and topk {k} can hold at {TCQ_MAX_BITS} bits per value.")


def tcq_split(bits: int) -> tuple[int, int]:
    """Bits per row of the basis stage and of the residual stage."""
    second = TCQ_GROUP * int(round(bits * TCQ_RESIDUAL_SHARE / TCQ_GROUP))
    return bits - second, second


def _allocate(weight: np.ndarray, budget: int) -> np.ndarray:
    """Greedy bit widths (0..TCQ_MAX_BITS) minimizing sum weight * D(bits) for ``budget``."""
    bits = np.zeros(len(weight), np.int64)
    d = _TCQ_DISTORTION
    for _ in range(int(budget)):
        gain = weight * (d[bits] - d[np.minimum(bits + 1, TCQ_MAX_BITS)])
        gain[bits >= TCQ_MAX_BITS] = -1.0
        bits[int(np.argmax(gain))] += 1
    return bits


def lloyd_levels(x: np.ndarray, levels: int) -> np.ndarray:
    """Sorted 1-D Lloyd (k-means) levels of the values ``x`` (quantile start, fixed iterations)."""
    x = np.sort(np.ravel(x))
    c = np.quantile(x, (np.arange(levels) + 0.5) / levels)
    for _ in range(TCQ_LLOYD_ITERATIONS):
        idx = np.searchsorted((c[1:] + c[:-1]) / 2, x)
        m = np.bincount(idx, None, levels)
        c = np.where(m > 0, np.bincount(idx, x, levels) / np.maximum(m, 1), c)
    return np.sort(c)


def _viterbi(x: np.ndarray, w: np.ndarray, levels: np.ndarray, bits: np.ndarray):
    """Least ``sum w (x - level)^2`` path: codes ``[N, T]`` (branch bit | level-in-subset << 1)
    and the levels' positions in each codebook ``[N, T]``."""
    n, t_len = x.shape
    rows = np.arange(n)
    cost = np.full((n, TCQ_STATES), np.inf)
    cost[:, 0] = 0.0
    back = np.zeros((t_len, n, TCQ_STATES), np.int8)
    pick = np.zeros((t_len, n, 4), np.int64)  # best level (position in the codebook) per subset
    for t in range(t_len):
        width = 2 ** (int(bits[t]) + 1)
        dist = np.empty((n, 4))
        for d in range(4):
            sub = levels[t, d:width:4]
            i = np.searchsorted((sub[1:] + sub[:-1]) / 2, x[:, t]) if len(sub) > 1 else 0
            pick[t, :, d] = d + 4 * i
            dist[:, d] = w[:, t] * (x[:, t] - sub[i]) ** 2
        c = cost[:, _INC_S] + dist[:, _INC_D]  # [N, S, 2]
        k = np.argmin(c, axis=-1)  # ties: the first branch
        back[t] = k
        cost = np.take_along_axis(c, k[..., None], -1)[..., 0]
    state = np.argmin(cost, axis=-1)
    codes = np.zeros((n, t_len), np.int64)
    where = np.zeros((n, t_len), np.int64)
    for t in range(t_len - 1, -1, -1):
        k = back[t, rows, state]
        prev, u = _INC_S[state, k], _INC_U[state, k]
        pos = pick[t, rows, _SUBSET[prev, u]]
        codes[:, t] = u | ((pos >> 2) << 1)
        where[:, t] = pos
        state = prev
    return codes, where


def _tcq_encode(x, w, levels, bits):
    out = [_viterbi(x[i : i + TCQ_CHUNK_ROWS], w[i : i + TCQ_CHUNK_ROWS], levels, bits)
           for i in range(0, len(x), TCQ_CHUNK_ROWS)]
    return (np.concatenate([o[0] for o in out]) if out else np.zeros((0, len(bits)), np.int64),
            np.concatenate([o[1] for o in out]) if out else np.zeros((0, len(bits)), np.int64))


def _tcq_walk(codes: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Codes ``[N, T]`` -> their levels ``[N, T]`` (float64), walking the trellis from state 0."""
    state = np.zeros(codes.shape[0], np.int64)
    out = np.empty(codes.shape)
    for t in range(codes.shape[1]):
        u = codes[:, t] & 1
        out[:, t] = levels[t][_SUBSET[state, u] + 4 * (codes[:, t] >> 1)]
        state = _NEXT[state, u]
    return out


def _fit_levels(x, w, bits, start):
    """Codebooks ``[T, width]`` of values ``x [N, T]``: ``start`` (2^(b+1) sorted levels per
    value), refined by Viterbi passes and p-weighted centroids."""
    levels = np.zeros((len(bits), tcq_levels_width()))
    for t, lv in enumerate(start):
        levels[t, : len(lv)] = lv
    for _ in range(TCQ_FIT_ITERATIONS):
        _, where = _tcq_encode(x, w, levels, bits)
        for t, b in enumerate(bits):
            width = 2 ** (int(b) + 1)
            mass = np.bincount(where[:, t], w[:, t], width)
            total = np.bincount(where[:, t], w[:, t] * x[:, t], width)
            new = np.where(mass > 0, total / np.where(mass > 0, mass, 1), levels[t, :width])
            levels[t, :width] = np.sort(new)
    return levels


def _centered(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    if not np.all(np.isfinite(z)):
        raise ValueError("tcq needs finite logits.")
    return z - z.mean(axis=-1, keepdims=True)


def _kl_weight(z: np.ndarray) -> np.ndarray:
    """Per-class weight of a squared logit error in the tempered KLs (tau = 1 and 4)."""
    return softmax(z) / 2 + _TAU4_WEIGHT * softmax(z, 4.0)


def fit_tcq(logits: np.ndarray, rank: int, k: int, bits: int) -> dict[str, np.ndarray]:
    """The per-cache arrays of a ``tcq`` compression, fitted on calibration logits.

    * ``mean`` ``[C]`` (float32) and ``basis`` ``[rank, C]`` (float16): principal
      components of the centered logit rows;
    * ``bits`` ``[rank + k]`` (uint8): bit width of each basis coefficient, then of
      each residual rank (0: not coded);
    * ``levels`` ``[rank + k, 2^(TCQ_MAX_BITS + 1)]`` (float32): each coded value's
      2^(bits + 1) sorted TCQ levels (zero-padded).

    Deterministic (fixed starts and iteration counts); rows fewer than ``rank``
    leave the extra directions zero and uncoded.
    """
    z = _centered(np.asarray(logits).reshape(-1, np.shape(logits)[-1]))
    num_classes = z.shape[-1]
    check_tcq(num_classes, rank, k, bits)
    if len(z) < 2:
        raise ValueError("tcq needs at least 2 calibration rows.")
    mean = z.mean(axis=0).astype(np.float32).astype(np.float64)
    fitted_rank = min(rank, len(z) - 1)
    _, _, vt = np.linalg.svd(z - mean, full_matrices=False)
    basis16 = np.zeros((rank, num_classes), np.float16)
    basis16[:fitted_rank] = vt[:fitted_rank]
    basis = basis16.astype(np.float64)
    first, second = tcq_split(bits)
    coeffs = (z - mean) @ basis.T
    approx = mean + coeffs @ basis
    weight = _kl_weight(z)
    np.put_along_axis(weight, basis_support(approx, k), 0.0, -1)
    bits1 = _allocate((weight @ basis.T**2).mean(0) * coeffs.var(0), first)
    bits1[fitted_rank:] = 0
    used = np.flatnonzero(bits1)
    w1 = weight @ (basis[used].T ** 2)
    levels1 = _fit_levels(coeffs[:, used], w1, bits1[used],
                          [lloyd_levels(coeffs[:, j], 2 ** (int(bits1[j]) + 1)) for j in used])
    shared = {"mean": mean.astype(np.float32), "basis": basis16,
              "bits": np.zeros(rank + k, np.uint8),
              "levels": np.zeros((rank + k, tcq_levels_width()), np.float32)}
    shared["bits"][:rank] = bits1
    shared["levels"][used] = levels1
    # stage 2 on the coded approximation, as the reader ranks the classes
    codes1, _ = _tcq_encode(coeffs[:, used], w1, shared["levels"][used].astype(np.float64),
                            bits1[used])
    approx = _tcq_approx(codes1, shared)
    support = basis_support(approx, k)
    residual = np.take_along_axis(z - approx, support, -1)
    w2 = np.take_along_axis(_kl_weight(z), support, -1)
    groups = k // TCQ_GROUP
    energy = (w2 * residual**2).reshape(len(z), groups, TCQ_GROUP).mean(axis=(0, 2))
    bits2 = np.repeat(_allocate(energy, second // TCQ_GROUP), TCQ_GROUP)
    used2 = np.flatnonzero(bits2)
    start = [lloyd_levels(residual[:, (r // TCQ_GROUP) * TCQ_GROUP
                                   : (r // TCQ_GROUP + 1) * TCQ_GROUP],
                          2 ** (int(bits2[r]) + 1)) for r in used2]
    shared["bits"][rank:] = bits2
    shared["levels"][rank + used2] = _fit_levels(residual[:, used2], w2[:, used2],
                                                 bits2[used2], start)
    return shared


def _tcq_approx(codes1: np.ndarray, shared: dict[str, np.ndarray]) -> np.ndarray:
    """Stage-1 logits ``mean + sum_j level_j basis_j`` (float64) from the coefficient codes
    ``[N, T1]``, summed component by component with elementwise operations."""
    rank = shared["basis"].shape[0]
    used = np.flatnonzero(shared["bits"][:rank])
    values = _tcq_walk(codes1, shared["levels"][used].astype(np.float64))
    z = np.broadcast_to(shared["mean"].astype(np.float64), (len(codes1),) + shared["mean"].shape)
    z = z.copy()
    for i, j in enumerate(used):
        z += values[:, i : i + 1] * shared["basis"][j].astype(np.float64)
    return z


def _tcq_layout(shared: dict[str, np.ndarray]) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """(rank, used coefficients, used residual ranks, bit widths in stored order)."""
    rank = shared["basis"].shape[0]
    bits = shared["bits"].astype(np.int64)
    used1, used2 = np.flatnonzero(bits[:rank]), np.flatnonzero(bits[rank:])
    return rank, used1, used2, np.concatenate([bits[:rank][used1], bits[rank:][used2]])


def _pack(codes: np.ndarray, widths: np.ndarray, nbytes: int) -> np.ndarray:
    """Codes ``[N, T]`` of ``widths`` bits -> little-endian bitstreams ``[N, nbytes]`` (uint8)."""
    value = np.repeat(np.arange(len(widths)), widths)
    shift = np.concatenate([np.arange(b) for b in widths]) if len(widths) else value
    stream = np.zeros((len(codes), nbytes * 8), np.uint8)
    stream[:, : len(value)] = (codes[:, value] >> shift) & 1
    return np.packbits(stream, axis=-1, bitorder="little")


def _unpack(packed: np.ndarray, widths: np.ndarray) -> np.ndarray:
    stream = np.unpackbits(packed, axis=-1, bitorder="little").astype(np.int64)
    if not len(widths):
        return np.zeros((len(packed), 0), np.int64)
    shift = np.concatenate([np.arange(b) for b in widths])
    starts = np.concatenate([[0], np.cumsum(widths)[:-1]])
    return np.add.reduceat(stream[:, : len(shift)] << shift, starts, axis=1)


def encode_tcq(logits: np.ndarray, shared: dict[str, np.ndarray], bits: int) -> np.ndarray:
    """``[..., C]`` logits -> ``[..., bits / 8]`` uint8 rows (the codes' bitstream).

    Coefficients of the centered logits in the basis are trellis-coded with
    per-row weights (the KL weight of each direction), the stage-1 logits
    decoded as a reader decodes them, and the residual logits of the classes
    they rank highest trellis-coded with the classes' KL weights.
    """
    z = _centered(logits)
    shape = z.shape[:-1]
    z = z.reshape(-1, z.shape[-1])
    rank, used1, used2, widths = _tcq_layout(shared)
    k = len(shared["bits"]) - rank
    if z.shape[-1] != shared["mean"].shape[0]:
        raise ValueError(f"logits have {z.shape[-1]} classes; the tcq arrays "
                         f"{shared['mean'].shape[0]}.")
    if widths.sum() > bits:
        raise ValueError(f"the tcq arrays code {widths.sum()} bits per row; rows hold {bits}.")
    mean = shared["mean"].astype(np.float64)
    basis = shared["basis"].astype(np.float64)
    levels = shared["levels"].astype(np.float64)
    coeffs = (z - mean) @ basis[used1].T
    approx = mean + ((z - mean) @ basis.T) @ basis
    weight = _kl_weight(z)
    np.put_along_axis(weight, basis_support(approx, k), 0.0, -1)
    codes1, _ = _tcq_encode(coeffs, weight @ (basis[used1].T ** 2), levels[used1],
                            shared["bits"][used1])
    approx = _tcq_approx(codes1, shared)
    support = basis_support(approx, k)[:, used2]
    residual = np.take_along_axis(z - approx, support, -1)
    codes2, _ = _tcq_encode(residual, np.take_along_axis(_kl_weight(z), support, -1),
                            levels[rank + used2], shared["bits"][rank + used2])
    packed = _pack(np.concatenate([codes1, codes2], 1), widths, bits // 8)
    return packed.reshape(shape + (bits // 8,))


def decode_tcq(packed: np.ndarray, shared: dict[str, np.ndarray]) -> np.ndarray:
    """Inverse of :func:`encode_tcq`: the full distribution ``[..., C]`` (float32)."""
    packed = np.asarray(packed, dtype=np.uint8)
    shape = packed.shape[:-1]
    rank, used1, used2, widths = _tcq_layout(shared)
    k = len(shared["bits"]) - rank
    codes = _unpack(packed.reshape(-1, packed.shape[-1]), widths)
    z = _tcq_approx(codes[:, : len(used1)], shared)
    support = basis_support(z, k)[:, used2]
    delta = _tcq_walk(codes[:, len(used1) :], shared["levels"][rank + used2].astype(np.float64))
    np.put_along_axis(z, support, np.take_along_axis(z, support, -1) + delta, -1)
    return softmax(z).astype(np.float32).reshape(shape + (z.shape[-1],))


#: Logit rows from which a ``tcq`` compression's basis and codebooks are fitted.
TCQ_CALIBRATION_ROWS = 16384
#: The per-cache arrays of a tcq cache, by their keys in :func:`fit_tcq`'s result.
SHARED_ARRAYS = {"mean": "teacher/tcq_mean", "basis": "teacher/tcq_basis",
                 "bits": "teacher/tcq_bits", "levels": "teacher/tcq_levels"}


def tcq_arrays(arrays: Any) -> dict[str, np.ndarray]:
    """The shared arrays of a tcq cache (file names), keyed as :func:`fit_tcq` returns
    them (``mean``, ``basis``, ``bits``, ``levels``)."""
    return {key: arrays[name] for key, name in SHARED_ARRAYS.items()}


class TcqCodec(Codec):
    kind = "tcq"
    uses_topk = uses_rank = uses_bits = True
    calibration_rows = TCQ_CALIBRATION_ROWS

    def validate(self, spec: Any) -> None:
        check_tcq(spec.num_classes, spec.rank, spec.topk, spec.bits)

    def shared_layout(self, spec: Any) -> Layout:
        r, k, c = spec.rank, spec.topk, spec.num_classes
        return {"teacher/tcq_mean": ((c,), np.dtype(np.float32)),
                "teacher/tcq_basis": ((r, c), np.dtype(np.float16)),
                "teacher/tcq_bits": ((r + k,), np.dtype(np.uint8)),
                "teacher/tcq_levels": ((r + k, tcq_levels_width()), np.dtype(np.float32))}

    def row_layout(self, spec: Any) -> Layout:
        return {"teacher/tcq_codes": ((spec.num_samples, spec.num_views, spec.bits // 8),
                                      np.dtype(np.uint8))}

    def fit(self, logits, spec):
        fitted = fit_tcq(logits, spec.rank, spec.topk, spec.bits)
        return {SHARED_ARRAYS[key]: value for key, value in fitted.items()}

    def encode(self, logits, spec, shared=None):
        return {"teacher/tcq_codes": encode_tcq(logits, tcq_arrays(self._need(shared)),
                                                spec.bits)}

    def decode(self, rows, spec, shared=None):
        return decode_tcq(rows["teacher/tcq_codes"], tcq_arrays(self._need(shared)))

    def describe(self, spec: Any) -> str:
        return (f"rank-{spec.rank} logit basis + residuals of its top {spec.topk} classes, "
                f"trellis-coded in {spec.bits} bits")
