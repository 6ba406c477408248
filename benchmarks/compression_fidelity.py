"""Fidelity vs size of the teacher-output compressions, on a real teacher, as training sees it.

Runs the teacher over N Fashion-MNIST train images x V views (the cache's own
augmentation), then, for each compression the cache offers (top-k for several
k, float16 logits, and the low-rank ``basis`` with 4-bit residuals for the k
classes it ranks highest), measures
the KL divergence from the full teacher distribution to its reconstruction
after both are tempered exactly as training tempers them
(:func:`tosc_cache.probability.temper`: probabilities floored at 1e-12,
``p^(1/tau)`` renormalized), at tau = 1 and tau = 4: mean, 99th percentile and
max in nats, and the mean and max times ``tau**2`` (the weight the
distillation loss gives the KL). Bytes are stored bytes per sample per view,
indices included; a ``basis`` also counts its per-cache arrays (mean and
basis, float32) spread over the rows measured (a full cache spreads them
over more rows, so it is smaller).

The basis is fitted, as extraction fits it, on the first
``CALIBRATION_ROWS`` logit rows; the fidelity is measured on all rows.

    python -m benchmarks.compression_fidelity --model teachers/fashion-mnist-lite0
    python -m benchmarks.compression_fidelity --model LITE0_IMAGENET_DIR --limit 10000 \\
        --views 1 --logits /tmp/lite0-logits.npz \\
        --out benchmarks/results/compression_fidelity_imagenet1000.json

``--logits FILE.npz`` keeps the teacher's logits (computed once if FILE is
missing), so other compressions can be measured without running the teacher.
``--quick``: 100 images x 2 views, ``compression_fidelity_quick.json``.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from benchmarks import common
from tosc_cache.codecs import (
    CALIBRATION_ROWS,
    basis_bytes,
    decode_basis,
    decode_topk,
    encode_basis,
    encode_topk,
    fit_basis,
    index_dtype,
)
from tosc_cache.probability import fidelity, softmax

TEMPERATURES = (1.0, 4.0)


def teacher_logits(model: str, limit: int, views: int, batch: int = 100) -> np.ndarray:
    """Logits ``[limit, views, C]`` of the teacher for the first train images' views."""
    from cache_tools.extract import teacher_outputs
    from cache_tools.teachers import load_teacher
    from tosc_cache.augment import DEFAULT_AUGMENTATION, view_seeds
    from tosc_cache.datasets import FASHION_MNIST_CLASSES, load_fashion_mnist

    teacher = load_teacher(model, class_names=list(FASHION_MNIST_CLASSES))
    images, _ = load_fashion_mnist("train")
    seeds = view_seeds(0, np.arange(limit), views)
    return np.concatenate([
        teacher_outputs(teacher, images[i : i + batch], seeds[i : i + batch],
                        DEFAULT_AUGMENTATION)[0]
        for i in range(0, limit, batch)
    ])


def measure(logits: np.ndarray, topks: list[int], bases: list[tuple[int, int]]) -> dict:
    """Bytes per view and tempered fidelity of each compression, for logits ``[N, V, C]``."""
    rows = logits.shape[0] * logits.shape[1]
    c = logits.shape[-1]
    index_bytes = index_dtype(c).itemsize
    full = softmax(logits)
    out = {}
    for k in topks:
        values, indices = encode_topk(logits, k)
        out[f"top{k}"] = {"bytes": k * (2 + index_bytes),
                          "fidelity": fidelity(full, decode_topk(values, indices, c),
                                               TEMPERATURES)}
    out["logits_float16"] = {
        "bytes": 2 * c,
        "fidelity": fidelity(full, softmax(logits.astype(np.float16).astype(np.float64)),
                             TEMPERATURES),
    }
    calibration = logits.reshape(-1, c)[:CALIBRATION_ROWS]
    for rank, k in bases:
        fitted = fit_basis(calibration, rank, k)
        codes, residuals = encode_basis(logits, fitted, k)
        per_row = basis_bytes(rank, k)
        shared = sum(a.nbytes for a in fitted.values())
        out[f"basis{rank}_k{k}"] = {
            "bytes": per_row + shared / rows, "bytes_per_row": per_row,
            "bytes_shared": shared,
            # what a full train-split cache (60,000 samples x 4 views) pays per view
            "bytes_in_60000x4_cache": per_row + shared / 240_000,
            "fidelity": fidelity(full, decode_basis(codes, residuals, fitted, k), TEMPERATURES),
        }
    return out


def main(argv: list[str] | None = None) -> None:
    parser = common.parser(__doc__, quick="smoke run: 100 images x 2 views",
                           out=common.RESULTS, out_help="results folder, or a .json results file")
    parser.add_argument("--model", required=True)
    parser.add_argument("--limit", type=int, default=2000)
    parser.add_argument("--views", type=int, default=2)
    parser.add_argument("--logits", help="npz file keeping the teacher's logits")
    parser.add_argument("--topk", type=int, nargs="+",
                        help="k of the top-k rows (default: 1 2 3 5, and 10 20 50 100 for "
                        "more than 100 classes)")
    parser.add_argument("--basis", nargs="+",
                        default=["2:4", "4:4", "16:32", "32:64", "46:32", "64:128", "64:256"],
                        help="RANK:K of the basis rows (default 2:4 4:4 16:32 32:64 46:32 "
                        "64:128 64:256)")
    args = parser.parse_args(argv)
    if args.quick:
        args.limit, args.views = 100, 2
    out = common.results_file(args.out, "compression_fidelity", args.quick)
    seconds = None
    if args.logits and Path(args.logits).exists():
        stored = np.load(args.logits)
        logits, seconds = stored["logits"], float(stored["seconds"])
        if logits.shape[:2] != (args.limit, args.views):
            raise SystemExit(f"{args.logits} holds {logits.shape[:2]} rows x views, not "
                             f"{(args.limit, args.views)}.")
    else:
        start = time.perf_counter()
        logits = teacher_logits(args.model, args.limit, args.views)
        seconds = time.perf_counter() - start
        if args.logits:
            np.savez(args.logits, logits=logits, seconds=seconds)
    c = logits.shape[-1]
    topks = args.topk or [k for k in (1, 2, 3, 5, 10, 20, 50, 100) if k < c and (k <= 5 or c > 100)]
    bases = [tuple(int(x) for x in b.split(":")) for b in args.basis]
    bases = [(r, k) for r, k in bases if r <= c and k <= c]
    rows = measure(logits, topks, bases)
    for name, row in rows.items():
        f1, f4 = row["fidelity"]["1"], row["fidelity"]["4"]
        print(f"{name:16s} {row['bytes']:7.1f} B | tau=1 KL mean {f1['kl_mean']:.2e} max "
              f"{f1['kl_max']:.2e} | tau=4 KL mean {f4['kl_mean']:.2e} max {f4['kl_max']:.2e}, "
              f"x16 mean {f4['scaled_kl_mean']:.2e}")
    full = softmax(logits.reshape(-1, c))
    result = {
        "teacher": args.model, "samples": args.limit, "views": args.views, "classes": c,
        "dataset": "fashion-mnist train (first samples; view 0 unaugmented)",
        "teacher_entropy_mean_nats": float(-(full * np.log(np.maximum(full, 1e-300))).sum(-1)
                                           .mean()),
        "teacher_max_prob_mean": float(full.max(-1).mean()),
        "temperatures": list(TEMPERATURES),
        "kl": "KL(temper(teacher, T) || temper(reconstruction, T)), nats; temper floors "
              "probabilities at 1e-12 as training does; scaled_* = T^2 x KL (the loss weight)",
        "bytes": "stored bytes per sample per view, indices included; basis rows add their "
                 "per-cache arrays spread over these rows",
        "basis_calibration_rows": min(CALIBRATION_ROWS, len(full)),
        "teacher_seconds": seconds,
        "compressions": rows,
    }
    common.write_results(out, result, argv, __name__)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
