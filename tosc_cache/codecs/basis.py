"""``basis``: a low-rank model of the logits fitted per cache, plus 4-bit corrections.

A mean and ``rank`` principal directions over the classes (float32, stored
once) with ``rank`` int8 coefficients per row, plus 4-bit residual logits for
the k classes that approximation ranks highest (no indices stored): for many
classes (1000) at a few dozen bytes per row; keeps every class's logit
approximately, where top-k spreads the rest evenly, which tempering exposes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..probability import softmax
from .base import Codec, Layout

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



#: Logit rows (first samples, all their views) from which a ``basis`` is fitted.
CALIBRATION_ROWS = 2048
#: The per-cache arrays of a basis cache, by their keys in :func:`fit_basis`'s result.
SHARED_ARRAYS = {"mean": "teacher/basis_mean", "basis": "teacher/basis",
                 "scale": "teacher/basis_scale", "step": "teacher/basis_step"}


def basis_arrays(arrays: Any) -> dict[str, np.ndarray]:
    """The shared arrays of a basis cache (file names), keyed as :func:`fit_basis`
    returns them (``mean``, ``basis``, ``scale``, ``step``)."""
    return {key: arrays[name] for key, name in SHARED_ARRAYS.items()}


class BasisCodec(Codec):
    kind = "basis"
    uses_topk = uses_rank = True
    calibration_rows = CALIBRATION_ROWS

    def validate(self, spec: Any) -> None:
        c = spec.num_classes
        if not (0 <= spec.topk <= c and 1 <= spec.rank <= c):
            raise ValueError(f"a basis cache needs 1 <= rank <= {c} and 0 <= topk <= {c}; got "
                             f"rank {spec.rank}, topk {spec.topk}.")

    def shared_layout(self, spec: Any) -> Layout:
        r, c = spec.rank, spec.num_classes
        f32 = np.dtype(np.float32)
        return {"teacher/basis_mean": ((c,), f32), "teacher/basis": ((r, c), f32),
                "teacher/basis_scale": ((r,), f32), "teacher/basis_step": ((1,), f32)}

    def row_layout(self, spec: Any) -> Layout:
        n, v = spec.num_samples, spec.num_views
        return {"teacher/basis_coeffs": ((n, v, spec.rank), np.dtype(np.int8)),
                "teacher/basis_residuals": ((n, v, (spec.topk + 1) // 2), np.dtype(np.uint8))}

    def fit(self, logits, spec):
        rank = min(spec.rank, len(logits))
        fitted = fit_basis(logits, rank, spec.topk)
        if rank < spec.rank:  # fewer calibration rows than the rank: pad with unused directions
            pad = spec.rank - rank
            fitted["basis"] = np.concatenate(
                [fitted["basis"], np.zeros((pad, spec.num_classes), np.float32)])
            fitted["scale"] = np.concatenate([fitted["scale"], np.ones(pad, np.float32)])
        return {SHARED_ARRAYS[key]: value for key, value in fitted.items()}

    def encode(self, logits, spec, shared=None):
        codes, residuals = encode_basis(logits, basis_arrays(self._need(shared)), spec.topk)
        return {"teacher/basis_coeffs": codes, "teacher/basis_residuals": residuals}

    def decode(self, rows, spec, shared=None):
        return decode_basis(rows["teacher/basis_coeffs"], rows["teacher/basis_residuals"],
                            basis_arrays(self._need(shared)), spec.topk)

    def describe(self, spec: Any) -> str:
        return (f"rank-{spec.rank} logit basis (int8 coefficients) + 4-bit residuals of its "
                f"top {spec.topk} classes")
