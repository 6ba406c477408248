"""Distributions and their distances, as training sees them (NumPy only).

Shared by every codec (:mod:`tosc_cache.codecs`), the writer's fidelity
record and the tools that measure compression fidelity.
"""

from __future__ import annotations

import numpy as np

#: Probability floor of ``tosc_sionna.losses.temper`` (training tempers with it).
PROB_FLOOR = 1e-12
#: Temperatures at which extraction records the reconstruction fidelity.
FIDELITY_TEMPERATURES = (1.0, 2.0, 4.0, 8.0)


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)



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

