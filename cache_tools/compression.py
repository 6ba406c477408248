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
* features: pooled teacher features as float16, or int8 with one float32
  scale per row (symmetric, ``x ~ q * scale``).
"""

from __future__ import annotations

import numpy as np

PROB_METHODS = ("topk", "logits", "basis")
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
