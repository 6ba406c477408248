"""Compression of teacher outputs, and its exact inverse (NumPy only).

* ``topk``: the k largest probabilities as float16 with their class indices
  in the smallest unsigned integer type; on reconstruction the remaining mass
  ``1 - sum(top-k)`` is spread evenly over the other ``C - k`` classes.
* ``logits``: all C logits as float16 (best when C is small).
* ``basis``: a low-rank model of the logits fitted per cache (a mean and
  ``rank`` principal directions over the classes, float32, stored once) with
  ``rank`` int8 coefficients per row, plus 4-bit residual logits for the k
  classes that approximation ranks highest (no indices stored): for many
  classes (1000) at a few dozen bytes per row; keeps every class's logit
  approximately, where top-k spreads the rest evenly, which tempering exposes.
* ``tcq``: a fixed number of bits per row: the same kind of per-cache basis
  (float16) with its coefficients, then residual logits of the k classes the
  coded basis ranks highest, all trellis-coded (TCQ, per-value codebooks and
  bit widths fitted per cache); 64 bytes per row reach mean KL <= 0.01 at
  tau = 1 and 4 on a flat 1000-class teacher.
* features: pooled teacher features as float16, or int8 with one float32
  scale per row (symmetric, ``x ~ q * scale``).
"""

from __future__ import annotations

import numpy as np

PROB_METHODS = ("topk", "logits", "basis", "tcq")
FEATURE_METHODS = ("float16", "int8")

#: Probability floor of ``tosc_sionna.losses.temper`` (training tempers with it).
PROB_FLOOR = 1e-12
#: Total mass given to the classes outside a float16 top-k whose values round to >= 1.
TOPK_TAIL_FLOOR = 1e-6
#: Temperatures at which extraction records the reconstruction fidelity.
FIDELITY_TEMPERATURES = (1.0, 2.0, 4.0, 8.0)


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def index_dtype(num_classes: int) -> np.dtype:
    """The smallest unsigned integer type that holds class indices 0..C-1."""
    for dtype in (np.uint8, np.uint16, np.uint32):
        if num_classes - 1 <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    return np.dtype(np.uint64)


def encode_topk(logits: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``[..., C]`` logits -> top-k probabilities (float16) and indices, largest first."""
    num_classes = logits.shape[-1]
    if not 1 <= k <= num_classes:
        raise ValueError(f"top-k needs 1 <= k <= {num_classes} classes; got k={k}.")
    probs = softmax(logits)
    order = np.argsort(-probs, axis=-1, kind="stable")[..., :k]
    values = np.take_along_axis(probs, order, axis=-1)
    return values.astype(np.float16), order.astype(index_dtype(num_classes))


def decode_topk(values: np.ndarray, indices: np.ndarray, num_classes: int) -> np.ndarray:
    """Top-k -> full distribution ``[..., C]`` (float32), rest spread evenly.

    The remaining mass is ``1 - sum(top-k)`` computed in float64 from the
    float16 values; where rounding makes the kept values sum to 1 or more
    (a confident row), the other classes still get :data:`TOPK_TAIL_FLOOR` in
    all, never exactly zero (a zero tail has no tempered mass and makes
    KL(teacher || reconstruction) infinite).
    """
    values = np.asarray(values, dtype=np.float64)
    k = values.shape[-1]
    kept = values.sum(axis=-1, keepdims=True)
    if k < num_classes:
        rest = np.maximum(1.0 - kept, TOPK_TAIL_FLOOR) / (num_classes - k)
        probs = np.broadcast_to(rest, values.shape[:-1] + (num_classes,)).copy()
    else:
        probs = np.zeros(values.shape[:-1] + (num_classes,))
    np.put_along_axis(probs, indices.astype(np.int64), values, axis=-1)
    probs /= probs.sum(axis=-1, keepdims=True)
    return probs.astype(np.float32)


def encode_features(features: np.ndarray, method: str) -> tuple[np.ndarray, np.ndarray | None]:
    """``[..., D]`` -> (stored values, per-row scale or None)."""
    features = np.asarray(features, dtype=np.float32)
    if method == "float16":
        return features.astype(np.float16), None
    if method == "int8":
        scale = np.abs(features).max(axis=-1) / 127.0
        scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
        q = np.clip(np.rint(features / scale[..., None]), -127, 127).astype(np.int8)
        return q, scale
    raise ValueError(f"feature compression must be one of {FEATURE_METHODS}; got {method!r}.")


def decode_features(values: np.ndarray, scale: np.ndarray | None) -> np.ndarray:
    values = np.asarray(values, dtype=np.float32)
    return values if scale is None else values * np.asarray(scale, np.float32)[..., None]


def kl_divergence(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """KL(p || q) along the last axis, in nats (``0 log 0 = 0``)."""
    p = np.asarray(p, dtype=np.float64)
    q = np.clip(np.asarray(q, dtype=np.float64), 1e-30, None)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * (np.log(np.clip(p, 1e-300, None)) - np.log(q)), 0.0)
    return terms.sum(axis=-1)


def temper(probs: np.ndarray, temperature: float) -> np.ndarray:
    """The distribution training sees at temperature tau, from probabilities (float64).

    NumPy twin of ``tosc_sionna.losses.temper``: ``p^(1/tau)`` renormalized,
    computed as ``softmax(log(max(p, 1e-12)) / tau)`` (the same floor).
    """
    log_p = np.log(np.maximum(np.asarray(probs, dtype=np.float64), PROB_FLOOR))
    return softmax(log_p, temperature)


def tempered_kl(full: np.ndarray, restored: np.ndarray, temperature: float) -> np.ndarray:
    """``KL(temper(full, tau) || temper(restored, tau))`` along the last axis, nats.

    Training distills against ``temper(restored, tau)`` and weighs the KL by
    ``tau**2``; this is the unscaled KL (multiply by ``tau**2`` for what the
    loss sees).
    """
    return kl_divergence(temper(full, temperature), temper(restored, temperature))


def fidelity(
    full: np.ndarray, restored: np.ndarray,
    temperatures: tuple[float, ...] = FIDELITY_TEMPERATURES,
) -> dict[str, dict[str, float]]:
    """Summary of :func:`tempered_kl` per temperature: mean, p99 and max over rows.

    Keys are ``format_temperature(tau)``; each entry has ``kl_mean``,
    ``kl_p99``, ``kl_max`` (nats) and ``scaled_kl_mean``, ``scaled_kl_max``
    (times ``tau**2``, the weight the distillation loss gives the KL).
    """
    out = {}
    for tau in temperatures:
        kl = tempered_kl(full, restored, tau).ravel()
        out[format_temperature(tau)] = {
            "kl_mean": float(kl.mean()), "kl_p99": float(np.percentile(kl, 99)),
            "kl_max": float(kl.max()), "scaled_kl_mean": float(tau**2 * kl.mean()),
            "scaled_kl_max": float(tau**2 * kl.max()),
        }
    return out


def format_temperature(temperature: float) -> str:
    """``4.0 -> "4"``, ``1.5 -> "1.5"``: the key of a temperature in recorded fidelity."""
    return f"{float(temperature):g}"


def logits_kl_bound(logits16: np.ndarray, temperature: float) -> np.ndarray:
    """Upper bound on the tempered KL of softmax(float16 logits), per row.

    Rounding shifts each logit by at most half a float16 spacing ``h``, so the
    log-probabilities move by values in a range ``r <= 2 max h``; by Hoeffding's
    lemma ``KL(softmax(z / T) || softmax((z + d) / T)) <= r**2 / (8 T**2)``
    (the 1e-12 floor of :func:`temper` only narrows the range).
    """
    z = np.abs(np.asarray(logits16, dtype=np.float16))
    half = np.spacing(z).astype(np.float64) / 2
    spread = 2 * half.max(axis=-1)
    return spread**2 / (8 * float(temperature) ** 2)


# -- "basis": a low-rank model of the logits, fitted per cache, plus 4-bit corrections ---------

#: Bits of a basis cache's residual codes (two per byte).
RESIDUAL_BITS = 4
_RESIDUAL_ZERO = 2 ** (RESIDUAL_BITS - 1)  # code of a zero residual; codes are 0..15
#: int8 coefficient range / largest calibration coefficient.
COEFF_HEADROOM = 1.5


def fit_basis(logits: np.ndarray, rank: int, k: int = 0) -> dict[str, np.ndarray]:
    """The per-cache arrays of a ``basis`` compression, fitted on calibration logits.

    * ``mean`` ``[C]`` and ``basis`` ``[rank, C]`` (orthonormal rows): principal
      components of the centered logit rows ``z - mean_c(z)`` (softmax ignores a
      row's shift);
    * ``scale`` ``[rank]``: int8 step of each coefficient (largest calibration
      coefficient x 1.5 / 127);
    * ``step`` ``[1]``: step of the 4-bit residuals of the ``k`` classes the
      basis ranks highest (99th percentile of their calibration residuals / 7).
    All float32.
    """
    z = np.asarray(logits, dtype=np.float64).reshape(-1, logits.shape[-1])
    num_classes = z.shape[-1]
    if not 0 <= rank <= min(num_classes, len(z)):
        raise ValueError(f"rank must lie in [0, {min(num_classes, len(z))}]; got {rank}.")
    z = z - z.mean(axis=-1, keepdims=True)
    mean = z.mean(axis=0)
    _, _, vt = np.linalg.svd(z - mean, full_matrices=False)
    basis = vt[:rank].astype(np.float32)
    coeffs = (z - mean) @ basis.T.astype(np.float64)
    # headroom for rows beyond the calibration's range (they clip at +-127)
    scale = COEFF_HEADROOM * np.abs(coeffs).max(axis=0) / 127
    shared = {"mean": mean.astype(np.float32), "basis": basis,
              "scale": np.where(scale > 0, scale, 1.0).astype(np.float32),
              "step": np.ones(1, np.float32)}
    if k:
        approx = basis_approx(_coeff_codes(z, shared), shared)
        support = basis_support(approx, k)
        residual = np.take_along_axis(z, support, -1) - np.take_along_axis(approx, support, -1)
        step = np.percentile(np.abs(residual), 99) / (_RESIDUAL_ZERO - 1)
        shared["step"] = np.array([step if step > 0 else 1.0], np.float32)
    return shared


def _coeff_codes(z: np.ndarray, shared: dict[str, np.ndarray]) -> np.ndarray:
    coeffs = (z - shared["mean"].astype(np.float64)) @ shared["basis"].T.astype(np.float64)
    return np.clip(np.rint(coeffs / shared["scale"].astype(np.float64)), -127, 127).astype(
        np.int8)


def basis_approx(codes: np.ndarray, shared: dict[str, np.ndarray]) -> np.ndarray:
    """Low-rank logits ``mean + sum_j codes_j scale_j basis_j`` (float64), bit-reproducibly.

    Summed component by component with elementwise IEEE operations (no BLAS,
    whose summation order varies by machine): the writer and every reader get
    the same values, hence the same :func:`basis_support`.
    """
    codes = np.asarray(codes)
    mean, basis, scale = shared["mean"], shared["basis"], shared["scale"]
    z = np.broadcast_to(mean.astype(np.float64), codes.shape[:-1] + mean.shape).copy()
    for j in range(basis.shape[0]):
        coeff = codes[..., j : j + 1].astype(np.float64) * np.float64(scale[j])
        z += coeff * basis[j].astype(np.float64)
    return z


def basis_support(approx: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` classes with the largest approximate logits (ties: lower index)."""
    return np.argsort(-approx, axis=-1, kind="stable")[..., :k]


def encode_basis(
    logits: np.ndarray, shared: dict[str, np.ndarray], k: int
) -> tuple[np.ndarray, np.ndarray]:
    """``[..., C]`` logits -> coefficient codes ``[..., rank]`` (int8) and the 4-bit residual
    codes of the ``k`` classes the basis ranks highest, two per byte ``[..., ceil(k / 2)]``
    (uint8, low nibble first).

    No class indices are stored: the reader ranks the classes by the same
    approximation. Residuals are the teacher's logit minus that approximation,
    in steps of ``shared["step"]``, clipped to -8..7 steps.
    """
    z = np.asarray(logits, dtype=np.float64)
    num_classes = z.shape[-1]
    if not 0 <= k <= num_classes:
        raise ValueError(f"k must lie in [0, {num_classes}]; got {k}.")
    z = z - z.mean(axis=-1, keepdims=True)
    codes = _coeff_codes(z, shared)
    approx = basis_approx(codes, shared)
    support = basis_support(approx, k)
    residual = np.take_along_axis(z, support, -1) - np.take_along_axis(approx, support, -1)
    steps = np.rint(residual / np.float64(shared["step"][0]))
    q = (np.clip(steps, -_RESIDUAL_ZERO, _RESIDUAL_ZERO - 1) + _RESIDUAL_ZERO).astype(np.uint8)
    if k % 2:
        q = np.concatenate([q, np.full(q.shape[:-1] + (1,), _RESIDUAL_ZERO, np.uint8)], -1)
    return codes, (q[..., 0::2] | (q[..., 1::2] << 4)).astype(np.uint8)


def decode_basis(
    codes: np.ndarray, residuals: np.ndarray, shared: dict[str, np.ndarray], k: int
) -> np.ndarray:
    """Inverse of :func:`encode_basis`: the full distribution ``[..., C]`` (float32)."""
    z = basis_approx(codes, shared)
    packed = np.asarray(residuals, dtype=np.uint8)
    q = np.stack([packed & 15, packed >> 4], axis=-1).reshape(packed.shape[:-1] + (-1,))[..., :k]
    support = basis_support(z, k)
    delta = (q.astype(np.float64) - _RESIDUAL_ZERO) * np.float64(shared["step"][0])
    np.put_along_axis(z, support, np.take_along_axis(z, support, -1) + delta, -1)
    return softmax(z).astype(np.float32)


def basis_bytes(rank: int, k: int) -> int:
    """Stored bytes per sample and view of a basis compression."""
    return rank + (k + 1) // 2


# -- "tcq": basis + ranked residuals, trellis-coded at a fixed number of bits per row ------
#
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
