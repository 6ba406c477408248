"""Accuracy-vs-SNR sweeps of a trained link, and their plot."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from .snr import check_snr_db


def accuracy_vs_snr(
    link: Any,
    images: np.ndarray,
    labels: np.ndarray,
    snr_db: Sequence[float],
    draws: int = 3,
    batch_size: int = 500,
) -> dict[str, Any]:
    """Sweep fixed SNRs over a whole split, with ``draws`` channel realizations each.

    Works with any link whose evaluation SNR is set by ``set_eval_snr`` (a
    :class:`~tosc_sionna.TaskOrientedLink` over any channel layer). Each draw
    passes every image once through an independent channel and noise
    realization (seed them with :func:`tosc_sionna.set_seed` beforehand).

    Returns
    -------
    dict
        ``snr_db`` and ``accuracy`` (mean over draws) as equal-length lists,
        ``accuracy_std`` (over draws), ``accuracy_draws`` ``[snr][draw]``,
        ``draws`` and ``num_examples``.
    """
    snrs = [float(s) for s in snr_db]
    check_snr_db(snrs)
    if draws < 1:
        raise ValueError(f"draws must be >= 1; got {draws}.")
    labels = np.asarray(labels).astype(np.int64)
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images but {len(labels)} labels.")
    per_snr = []
    for snr in snrs:
        link.set_eval_snr(snr)
        per_snr.append([
            float(np.mean(np.argmax(link.predict(images, batch_size=batch_size, verbose=0), -1)
                          == labels))
            for _ in range(draws)
        ])
    return {
        "snr_db": snrs,
        "accuracy": [float(np.mean(a)) for a in per_snr],
        "accuracy_std": [float(np.std(a)) for a in per_snr],
        "accuracy_draws": per_snr,
        "draws": int(draws),
        "num_examples": int(len(labels)),
    }


def format_table(sweep: dict[str, Any], reference: float | None = None,
                 reference_name: str = "teacher") -> str:
    """The sweep as a text table (optionally with a reference accuracy beside it)."""
    head = f"{'SNR [dB]':>9}  {'accuracy':>9}  {'± std':>7}"
    if reference is not None:
        head += f"  {reference_name + ' (clean)':>16}"
    lines = [head]
    for snr, acc, std in zip(sweep["snr_db"], sweep["accuracy"], sweep["accuracy_std"],
                             strict=True):
        line = f"{snr:>9.1f}  {acc:>9.4f}  {std:>7.4f}"
        if reference is not None:
            line += f"  {reference:>16.4f}"
        lines.append(line)
    return "\n".join(lines)


def plot_accuracy_vs_snr(
    sweeps: dict[str, dict[str, Any]], path: str | os.PathLike,
    reference: float | None = None, title: str = "Task accuracy vs SNR",
) -> None:
    """Plot one or more sweeps (label -> sweep) to an image file (matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:  # pragma: no cover - depends on the install
        raise ImportError(
            "Plotting needs matplotlib: pip install 'tosc-sionna[examples]'."
        ) from err
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, sweep in sweeps.items():
        ax.errorbar(sweep["snr_db"], sweep["accuracy"], yerr=sweep["accuracy_std"],
                    marker="o", capsize=3, label=label)
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
    plt.close(fig)
