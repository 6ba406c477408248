"""Where an example's symbols sit on an OFDM resource grid, and how the receiver estimates
the channel there (NumPy precomputation, backend tensors to apply it).

Coordinates are ``(ofdm_symbol, subcarrier)`` on the full FFT grid (guard
and DC carriers included), the layout of Sionna's received grid ``y`` and
frequency response ``h_freq``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import scipy.linalg
from sionna.phy.channel import ChannelModel, GenerateOFDMChannel
from sionna.phy.channel.tr38901 import TDL
from sionna.phy.ofdm import ResourceGrid, tdl_time_cov_mat

from ..backends import ops

#: How an example's n symbols are placed on the grid's data resource elements.
MAPPINGS = ("contiguous", "spread")
#: Who shares a slot: the examples of a batch, or each example its own slot.
SLOTS = ("shared", "per_example")

# Relative eigenvalue below which a pilot-covariance direction carries no channel energy.
_RANK_TOL = 1e-9


def grid_positions(rg: ResourceGrid) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Data and pilot positions of a one-stream grid, in Sionna's mapping order.

    Returns
    -------
    data : [num_data, 2] int
        ``(ofdm_symbol, subcarrier)`` of each data resource element, in the
        order :class:`~sionna.phy.ofdm.ResourceGridMapper` fills them.
    pilots : [num_pilots, 2] int
        Positions of the pilots, in the order of ``rg.pilot_pattern.pilots``.
    pilot_values : [num_pilots] complex
    """
    rg_type = ops.to_numpy(rg.build_type_grid())[0, 0]  # [T, fft]: 0 data, 1 pilot
    data = np.argwhere(rg_type == 0)
    pilots = np.argwhere(rg_type == 1)
    values = ops.to_numpy(rg.pilot_pattern.pilots)[0, 0]
    return data, pilots, values


def check_placement(data: np.ndarray, num_symbols: int, mapping: str) -> None:
    """Refuse an unknown mapping, or more symbols than the grid's data resource elements."""
    if mapping not in MAPPINGS:
        raise ValueError(f"mapping must be one of {MAPPINGS}; got {mapping!r}.")
    if num_symbols > len(data):
        raise ValueError(
            f"{num_symbols} complex symbols do not fit the resource grid's {len(data)} "
            "data resource elements; use more resource blocks or OFDM symbols, or fewer "
            "symbols."
        )


def symbol_positions(data: np.ndarray, num_symbols: int, mapping: str) -> np.ndarray:
    """Indices into ``data`` (see :func:`grid_positions`) of an example's symbols.

    * ``"contiguous"``: the first ``n`` data resource elements (Sionna's order:
      subcarriers of the first data OFDM symbol, then the next symbol).
    * ``"spread"``: symbol ``k`` goes to the data subcarrier at fraction
      ``(k + 1/2) / n`` of the band and to data OFDM symbol ``(k * s) mod T``
      (``s`` coprime with the number ``T`` of data OFDM symbols, close to
      ``0.4 T``), the nearest free data element where that one is taken: an
      example spans the whole band and all data OFDM symbols, so it sees the
      channel's frequency and time selectivity.
    """
    check_placement(data, num_symbols, mapping)
    if mapping == "contiguous":
        return np.arange(num_symbols)
    times = np.unique(data[:, 0])
    freqs = np.unique(data[:, 1])
    num_t = len(times)
    step = min(
        (s for s in range(1, num_t + 1) if math.gcd(s, num_t) == 1),
        key=lambda s: abs(s - 0.4 * num_t),
    )
    index = {(int(t), int(f)): i for i, (t, f) in enumerate(data)}
    t_rank = {int(t): i for i, t in enumerate(times)}
    f_rank = {int(f): i for i, f in enumerate(freqs)}
    free = np.ones(len(data), bool)
    chosen = []
    for k in range(num_symbols):
        t = int(times[(k * step) % num_t])
        f = int(freqs[int((k + 0.5) * len(freqs) / num_symbols)])
        i = index.get((t, f))
        if i is None or not free[i]:
            # nearest free data element, frequency distance first
            cost = [
                (abs(f_rank[int(df)] - f_rank[f]) * num_t + abs(t_rank[int(dt)] - t_rank[t]))
                if free[j] else np.inf
                for j, (dt, df) in enumerate(data)
            ]
            i = int(np.argmin(cost))
        free[i] = False
        chosen.append(i)
    return np.asarray(chosen)


def slot_positions(data: np.ndarray, num_symbols: int, mapping: str,
                   slot: str) -> np.ndarray:
    """Indices into ``data`` of every example a slot carries, ``[examples_per_slot, n]``.

    * ``slot="shared"``: ``E = floor(D / n)`` examples fill the slot's ``D``
      data resource elements (the remaining ``D - E n`` stay empty).
      ``"contiguous"``: example ``j`` takes data elements ``j n .. j n + n - 1``
      in Sionna's order (adjacent subcarriers of one data OFDM symbol, running
      on into the next symbol at the band edge), a narrowband allocation;
      ``"spread"``: with the data elements numbered subcarrier by subcarrier
      (all data OFDM symbols of the lowest subcarrier first), example ``j``
      takes every ``E``-th one from ``j`` (``j, j + E, j + 2E, ...``): a
      comb over the whole band, its symbols about ``E / T`` subcarriers
      apart for ``T`` data OFDM symbols.
    * ``slot="per_example"``: one example per slot, placed by
      :func:`symbol_positions`.
    """
    if slot not in SLOTS:
        raise ValueError(f"slot must be one of {SLOTS}; got {slot!r}.")
    if slot == "per_example":
        return symbol_positions(data, num_symbols, mapping)[None, :]
    check_placement(data, num_symbols, mapping)
    per_slot = len(data) // num_symbols
    j = np.arange(per_slot)[:, None]
    k = np.arange(num_symbols)[None, :]
    if mapping == "contiguous":
        return j * num_symbols + k
    by_subcarrier = np.lexsort((data[:, 0], data[:, 1]))
    return by_subcarrier[j + k * per_slot]


def effective_diversity(r_t: np.ndarray, r_f: np.ndarray, positions: np.ndarray) -> float:
    """Independent fades an example sees: ``(tr R)^2 / tr(R^2)`` of its channel covariance.

    ``R`` is the covariance of the channel at the example's resource elements
    ``positions`` (``[n, 2]``, ``(ofdm_symbol, subcarrier)``) under the
    separable model ``R_t (x) R_f``: 1 for one flat fade, ``n`` for ``n``
    independent ones (the number of equal eigenvalues with the same spread).
    """
    r = r_t[np.ix_(positions[:, 0], positions[:, 0])] * r_f[np.ix_(positions[:, 1],
                                                                   positions[:, 1])]
    return float(np.real(np.trace(r)) ** 2 / np.sum(np.abs(r) ** 2))


def tdl_covariances(
    letter: str, model: TDL, rg: ResourceGrid, carrier_frequency: float, speed: float,
    los_angle_of_arrival: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Time ``[T, T]`` and frequency ``[fft, fft]`` covariances of a 3GPP TDL model.

    The frequency covariance ``R_f[u, v] = sum_l P_l exp(-2j pi tau_l df (u - v))``
    comes from the model object's own delays and powers, so it always
    matches the profile the model draws from (Sionna 2's ``tdl_freq_cov_mat``
    reads the V19.2 tables whatever the model's ``spec_version``).
    """
    r_t = tdl_time_cov_mat(
        letter, speed, carrier_frequency, rg.ofdm_symbol_duration, rg.num_ofdm_symbols,
        los_angle_of_arrival, precision="double",
    )
    delays = ops.to_numpy(model.delays).astype(np.float64)
    powers = ops.to_numpy(model.mean_powers).astype(np.float64)
    powers = powers / powers.sum()
    # Toeplitz: R_f[u, v] depends on u - v only, one value per lag
    lags = np.arange(rg.fft_size)
    per_lag = np.exp(-2j * np.pi * rg.subcarrier_spacing * lags[:, None] * delays) @ powers
    r_f = scipy.linalg.toeplitz(per_lag)  # Hermitian: R_f[u, v] = conj(R_f[v, u])
    return ops.to_numpy(r_t).astype(np.complex128), r_f


def sampled_covariances(
    model: ChannelModel, rg: ResourceGrid, num_draws: int = 2048, seed: int = 1234,
    chunk: int = 128,
) -> tuple[np.ndarray, np.ndarray]:
    """Time and frequency covariances of any single-antenna model, from channel draws.

    The draws use Sionna's generator reseeded with ``seed`` and restored
    afterwards, so building a layer does not move Sionna's global generator.
    """
    generate = GenerateOFDMChannel(model, rg, normalize_channel=False)
    r_t = np.zeros([rg.num_ofdm_symbols] * 2, np.complex128)
    r_f = np.zeros([rg.fft_size] * 2, np.complex128)
    with ops.sionna_rng_seeded(seed):
        # in chunks: one call materializes [draws, paths, symbols, subcarriers]
        for _ in range(0, num_draws, chunk):
            h = ops.to_numpy(generate(chunk)).astype(np.complex128).reshape(
                chunk, rg.num_ofdm_symbols, rg.fft_size
            )
            r_f += np.einsum("btf,btg->fg", h, h.conj())
            r_t += np.einsum("btf,bsf->ts", h, h.conj())
    draws = chunk * -(-num_draws // chunk)
    r_f /= draws * rg.num_ofdm_symbols
    r_t /= draws * rg.fft_size
    return r_t / np.mean(np.real(np.diag(r_t))), r_f


def _kronecker_factors(
    pilots: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """``(symbols, subcarriers, symbol_of, subcarrier_of)`` when the pilots are every pair of
    a set of OFDM symbols and a set of subcarriers (pilot ``k`` at
    ``(symbols[symbol_of[k]], subcarriers[subcarrier_of[k]])``), else ``None``."""
    symbols, symbol_of = np.unique(pilots[:, 0], return_inverse=True)
    subcarriers, subcarrier_of = np.unique(pilots[:, 1], return_inverse=True)
    pairs = symbol_of * len(subcarriers) + subcarrier_of
    if len(pilots) != len(symbols) * len(subcarriers) or len(np.unique(pairs)) != len(pilots):
        return None
    return symbols, subcarriers, symbol_of, subcarrier_of


def _full_decomposition(r_t: np.ndarray, r_f: np.ndarray, pilots: np.ndarray,
                        targets: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(lam [r], U [K, r], R_dp U [n, r])`` from the eigendecomposition of ``R_pp``."""
    def cov(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return r_t[np.ix_(a[:, 0], b[:, 0])] * r_f[np.ix_(a[:, 1], b[:, 1])]

    lam, u = np.linalg.eigh(cov(pilots, pilots))
    keep = lam > _RANK_TOL * lam.max()
    u = u[:, keep]
    return lam[keep], u, cov(targets, pilots) @ u


def _signal_eigenpairs(r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The eigenpairs of a covariance above ``_RANK_TOL`` times its mean eigenvalue (at most
    its largest, so nothing the rank cut-off keeps is lost): LAPACK's subset driver skips
    the rest (about 5x faster than all of them for a 3,276-subcarrier TDL covariance of
    rank 23)."""
    floor = _RANK_TOL * float(np.real(np.trace(r))) / len(r)
    return scipy.linalg.eigh(r, subset_by_value=(floor, np.inf), driver="evr")


def _kronecker_decomposition(
    r_t: np.ndarray, r_f: np.ndarray, symbols: np.ndarray, subcarriers: np.ndarray,
    symbol_of: np.ndarray, subcarrier_of: np.ndarray, targets: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_full_decomposition` for pilots on a symbols x subcarriers product:
    the eigenpairs of ``R_t,pp (x) R_f,pp`` are the products of the factors' (``lam_i mu_j``,
    ``u_i (x) v_j``), and ``R_dp (u_i (x) v_j) = (R_t,dp u_i) (R_f,dp v_j)`` elementwise."""
    lam_t, u_t = _signal_eigenpairs(r_t[np.ix_(symbols, symbols)])
    lam_f, u_f = _signal_eigenpairs(r_f[np.ix_(subcarriers, subcarriers)])
    lam = np.outer(lam_t, lam_f)
    i, j = np.nonzero(lam > _RANK_TOL * lam.max())
    # the factors hold only their kept eigenvectors (a few dozen columns): index, then pair
    u = u_t[symbol_of][:, i] * u_f[subcarrier_of][:, j]  # [K, r]
    m = ((r_t[:, symbols] @ u_t)[targets[:, 0]][:, i]
         * (r_f[:, subcarriers] @ u_f)[targets[:, 1]][:, j])  # [n, r]
    return lam[i, j], u, m


class PilotLMMSEEstimator:
    r"""LMMSE channel estimate at chosen resource elements from all pilots of one grid.

    With pilots ``y_p = h_p * p + w`` (unit-modulus ``p``), the estimate at
    the targets is ``E[h_d | y_p] = R_dp (R_pp + no I)^-1 (y_p / p)`` and its
    error variance ``diag(R_dd - R_dp (R_pp + no I)^-1 R_pd)`` (evaluated
    without cancellation at high SNR), with the
    channel covariance ``R = R_t (x) R_f`` (time times frequency). One
    eigendecomposition ``R_pp = U diag(lam) U^H`` at construction makes the
    per-example cost ``O(K r + n r)`` for ``K`` pilots, ``n`` targets and the
    rank ``r`` of ``R_pp`` (at most the number of paths times the number of
    pilot OFDM symbols), whatever the noise variance of each example. When
    the pilots are every pair of ``P_t`` OFDM symbols and ``P_f`` subcarriers
    (Sionna's Kronecker pattern with one stream), ``R_pp = R_t,pp (x) R_f,pp``
    and its decomposition is that of the two factors: ``O(P_t^3 + P_f^3)``
    time and no ``K x K`` or ``n x K`` matrix (a 273-resource-block grid with
    4 pilot symbols builds in seconds); other patterns decompose ``R_pp``
    itself, ``O(K^3)``.

    Parameters
    ----------
    r_t : [T, T], complex
    r_f : [fft, fft], complex
    pilots : [K, 2], int
        Pilot positions ``(ofdm_symbol, subcarrier)``.
    pilot_values : [K], complex
        Unit-modulus pilot symbols.
    targets : [n, 2], int
        Where the estimate is wanted.
    dtype : backend complex dtype, (default "complex64")
    factor : bool, (default True)
        Decompose the two Kronecker factors where the pilots are a product;
        ``False`` always decomposes the whole ``R_pp`` (the reference).

    Input
    -----
    y_pilots : [batch, K], complex
        Received pilot resource elements.
    no : [batch], float
        Noise variance.

    Output
    ------
    h_hat : [batch, n], complex
    err_var : [batch, n], float
        ``E|h - h_hat|^2`` at each target.
    """

    def __init__(
        self,
        r_t: np.ndarray,
        r_f: np.ndarray,
        pilots: np.ndarray,
        pilot_values: np.ndarray,
        targets: np.ndarray,
        dtype: Any = "complex64",
        factor: bool = True,
    ) -> None:
        power = np.abs(pilot_values) ** 2
        if not np.allclose(power, 1.0, atol=1e-5):
            raise ValueError(
                "LMMSE channel estimation needs unit-modulus pilots (a Kronecker pilot "
                "pattern with normalize=True); use interpolation='lin' for other patterns."
            )

        pilots, targets = np.asarray(pilots), np.asarray(targets)
        factors = _kronecker_factors(pilots) if factor else None
        if factors is None:
            lam, u, m = _full_decomposition(r_t, r_f, pilots, targets)
        else:
            lam, u, m = _kronecker_decomposition(r_t, r_f, *factors, targets)
        m_power = np.abs(m) ** 2
        rdtype = "float64" if "complex128" in str(dtype) else "float32"
        # LS (y_p / p = y_p conj(p) for unit-modulus p), then U^H, as one [K, r] matrix
        self._project = ops.constant(u.conj() * pilot_values.conj()[:, None], dtype)
        self._lam = ops.constant(lam, rdtype)
        self._m_t = ops.constant(m.T, dtype)  # [r, n]
        # err = prior - sum |m|^2 / (lam + no) = floor + sum |m|^2 no / (lam (lam + no)),
        # floor = prior - sum |m|^2 / lam (the error at no = 0), computed here in
        # float64: the direct difference cancels catastrophically at high SNR.
        prior = np.real(r_t[targets[:, 0], targets[:, 0]] * r_f[targets[:, 1], targets[:, 1]])
        floor = np.maximum(prior - m_power @ (1.0 / lam), 0.0)
        self._floor = ops.constant(floor, rdtype)
        self._m_power_t = ops.constant((m_power / lam[None, :]).T, rdtype)  # [r, n]
        self.rank = int(lam.size)

    def __call__(self, y_pilots: Any, no: Any) -> tuple[Any, Any]:
        inv = 1.0 / (self._lam[None, :] + no[:, None])  # [batch, r]
        z = ops.matmul(y_pilots, self._project) * ops.as_complex(inv, y_pilots)
        h_hat = ops.matmul(z, self._m_t)
        err_var = self._floor[None, :] + ops.matmul(no[:, None] * inv, self._m_power_t)
        return h_hat, err_var
