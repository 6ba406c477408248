"""Accuracy-vs-SNR sweeps of a trained link, and their plot."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from .data.pixels import student_inputs
from .snr import check_snr_db

_Z95 = 1.959964  # standard-normal 97.5% quantile: two-sided 95%


def wilson_interval(accuracy: float, num_examples: int, z: float = _Z95) -> tuple[float, float]:
    r"""Wilson score interval of a binomial proportion (95% for the default ``z``).

    .. math::
        \frac{\hat p + z^2 / 2N \pm z \sqrt{\hat p (1 - \hat p) / N + z^2 / 4N^2}}
        {1 + z^2 / N}

    Parameters
    ----------
    accuracy : float
        Observed proportion ``p_hat`` in [0, 1].
    num_examples : int
        ``N``, the number of independent trials (test images), >= 1.
    z : float, (default 1.959964)
        Standard-normal quantile (1.96: 95%).

    Output
    ------
    (low, high) : (float, float)
        The interval, within [0, 1].
    """
    if num_examples < 1:
        raise ValueError(f"num_examples must be >= 1; got {num_examples}.")
    if not 0.0 <= accuracy <= 1.0:
        raise ValueError(f"accuracy must lie in [0, 1]; got {accuracy}.")
    n, p, z2 = float(num_examples), float(accuracy), z * z
    center = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * np.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return float(max(0.0, center - half)), float(min(1.0, center + half))


class _Sampling(keras.Model):
    # the link with its encoder sampled at inference: a model of its own, so the
    # link's compiled predict function stays as it is
    def __init__(self, link: Any) -> None:
        super().__init__(name="sampling_link")
        self.link = link

    def call(self, x: Any) -> Any:
        return self.link(x, sample=True)


class _InputBatches(keras.utils.PyDataset):
    # one batch of floats at a time: a split of uint8 pixels is never converted whole
    # (a dataset of known length: Keras neither warns at its end nor reads past it)
    def __init__(self, images: Any, batch_size: int) -> None:
        super().__init__()
        self.images, self.batch_size = images, batch_size

    def __len__(self) -> int:
        return math.ceil(len(self.images) / self.batch_size)

    def __getitem__(self, index: int) -> tuple[np.ndarray]:
        start = index * self.batch_size
        return (student_inputs(self.images[start:start + self.batch_size]),)


def accuracy_vs_snr(
    link: Any,
    images: Any,
    labels: np.ndarray,
    snr_db: Sequence[float],
    draws: int = 3,
    batch_size: int = 500,
    sample_encoder: bool = False,
    seed: int | None = None,
) -> dict[str, Any]:
    """Sweep fixed SNRs over a whole split, with ``draws`` channel realizations each.

    Works with any link whose evaluation SNR is set by ``set_eval_snr`` (a
    :class:`~tosc_sionna.TaskOrientedLink` over any channel layer). Each draw
    passes every image once through an independent channel and noise
    realization (seed them with :func:`tosc_sionna.set_seed` beforehand).

    By default a stochastic encoder is evaluated deterministically
    (``z = mu``), as deployed. The information-bottleneck trade-off it was
    trained for describes the *sampling* encoder
    ``z = mu + sigma * eps``; ``sample_encoder=True`` evaluates that one
    (each draw then also draws fresh encoder noise) through the link's own
    ``call(x, sample=True)``.

    Two error bars are reported, for two different sources of spread:

    * ``accuracy_std``: the standard deviation over the channel draws
      (``ddof=1``), i.e. channel-draw spread of one trained link on these
      images; ``None`` for a single draw.
    * ``accuracy_ci95``: a 95% Wilson interval for the accuracy over the
      finite test set (binomial in the ``num_examples`` images, the draws
      reusing the same images), with ``accuracy_se`` its normal-approximation
      standard error ``sqrt(p (1 - p) / N)`` (0.26 points at 93% on 10,000
      images; the 95% interval is about +-0.50 points). Read differences
      between links against it.

    Neither covers training randomness (seeds): compare retrained links for that.

    Parameters
    ----------
    link : TaskOrientedLink (or any Keras model with ``set_eval_snr``)
        Its ``predict`` is given a ``keras.utils.PyDataset`` of the batches.
    images : [N, H, W(, C)], uint8 pixels or float in [0, 1]
        Any array-like read in slices of ``batch_size`` (a NumPy array, a memory
        map, an h5py dataset): only one batch at a time is converted to float32
        (:func:`~tosc_sionna.data.student_inputs`), so a large split need not fit
        in memory as floats.
    labels : [N], int
    snr_db : sequence of float
        SNRs (dB) to sweep.
    draws : int, (default 3)
        Channel realizations per SNR (>= 1).
    batch_size : int, (default 500)
        Images per batch read, converted and predicted (>= 1).
    sample_encoder : bool, (default False)
        Sample the stochastic encoder at evaluation (needs a link with a
        stochastic encoder, ``link.stochastic``).
    seed : int or None, (default None)
        With ``sample_encoder``: seed of the encoder noise (``link.reseed``).
        ``None`` draws one from NumPy's global generator, so
        :func:`tosc_sionna.set_seed` beforehand makes the sweep reproducible.

    Returns
    -------
    dict
        ``snr_db`` and ``accuracy`` (mean over draws) as equal-length lists,
        ``accuracy_std`` (over draws, ``ddof=1``; ``None`` entries for one
        draw), ``accuracy_se`` and ``accuracy_ci95`` (``[low, high]`` per
        SNR) over the test images, ``accuracy_draws`` ``[snr][draw]``,
        ``draws``, ``num_examples``, ``sample_encoder`` and ``error_bars``
        (a description of the two).
    """
    snrs = [float(s) for s in snr_db]
    check_snr_db(snrs)
    if draws < 1:
        raise ValueError(f"draws must be >= 1; got {draws}.")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}.")
    labels = np.asarray(labels).astype(np.int64)
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images but {len(labels)} labels.")
    if len(labels) < 1:
        raise ValueError("no images to evaluate.")
    model = link
    if sample_encoder:
        if not getattr(link, "stochastic", False):
            raise ValueError("sample_encoder=True needs a link with a stochastic encoder.")
        link.reseed(int(np.random.randint(2**31 - 1)) if seed is None else int(seed))
        model = _Sampling(link)
    per_snr = []
    for snr in snrs:
        link.set_eval_snr(snr)
        per_snr.append([float(np.mean(np.argmax(
            model.predict(_InputBatches(images, batch_size), verbose=0), -1) == labels))
            for _ in range(draws)])
    n = int(len(labels))
    accuracy = [float(np.mean(a)) for a in per_snr]
    return {
        "snr_db": snrs,
        "accuracy": accuracy,
        "accuracy_std": [float(np.std(a, ddof=1)) if draws > 1 else None for a in per_snr],
        "accuracy_se": [float(np.sqrt(p * (1 - p) / n)) for p in accuracy],
        "accuracy_ci95": [list(wilson_interval(p, n)) for p in accuracy],
        "accuracy_draws": per_snr,
        "draws": int(draws),
        "num_examples": n,
        "sample_encoder": bool(sample_encoder),
        "error_bars": {
            "accuracy_std": "channel-draw spread: std over draws (ddof=1), None for 1 draw",
            "accuracy_se": "binomial standard error over the test images, sqrt(p(1-p)/N)",
            "accuracy_ci95": "95% Wilson interval over the test images",
        },
    }


def format_table(sweep: dict[str, Any], reference: float | None = None,
                 reference_name: str = "teacher") -> str:
    """The sweep as a text table (optionally with a reference accuracy beside it).

    Columns: SNR, mean accuracy, the channel-draw standard deviation
    (``n/a`` for one draw) and, when the sweep has it, the 95% interval over
    the test images.
    """
    ci = sweep.get("accuracy_ci95")
    head = f"{'SNR [dB]':>9}  {'accuracy':>9}  {'± std (draws)':>13}"
    if ci is not None:
        head += f"  {'95% CI (images)':>17}"
    if reference is not None:
        head += f"  {reference_name + ' (clean)':>16}"
    lines = [head]
    for i, (snr, acc, std) in enumerate(zip(sweep["snr_db"], sweep["accuracy"],
                                            sweep["accuracy_std"], strict=True)):
        std_text = "n/a" if std is None else f"{std:.4f}"
        line = f"{snr:>9.1f}  {acc:>9.4f}  {std_text:>13}"
        if ci is not None:
            line += f"  {f'[{ci[i][0]:.4f}, {ci[i][1]:.4f}]':>17}"
        if reference is not None:
            line += f"  {reference:>16.4f}"
        lines.append(line)
    return "\n".join(lines)


def plot_accuracy_vs_snr(
    sweeps: dict[str, dict[str, Any]], path: str | os.PathLike,
    reference: float | None = None, title: str = "Task accuracy vs SNR",
) -> None:
    """Plot one or more sweeps (label -> sweep) to an image file (matplotlib).

    Error bars: the 95% interval over the test images (``accuracy_ci95``).
    """
    try:
        # a Figure of its own, not pyplot: the caller's backend (a notebook's inline
        # plots) is left as it is, and nothing needs a display
        from matplotlib.figure import Figure
    except ImportError as err:  # pragma: no cover - depends on the install
        raise ImportError(
            "Plotting needs matplotlib: pip install 'tosc-sionna[examples]'."
        ) from err
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    for label, sweep in sweeps.items():
        acc = np.asarray(sweep["accuracy"], dtype=float)
        if sweep.get("accuracy_ci95") is not None:  # 95% interval over the test images
            ci = np.asarray(sweep["accuracy_ci95"], dtype=float)
            yerr = np.stack([acc - ci[:, 0], ci[:, 1] - acc])
        else:  # an older sweep: channel-draw spread
            yerr = np.asarray([0.0 if s is None else s for s in sweep["accuracy_std"]])
        ax.errorbar(sweep["snr_db"], acc, yerr=yerr, marker="o", capsize=3, label=label)
    if reference is not None:
        ax.axhline(reference, color="k", linestyle="--",
                   label=f"teacher, clean ({reference:.3f})")
    ax.set_xlabel("SNR (Es/N0) [dB]")
    ax.set_ylabel("accuracy")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
