"""Fidelity vs size of the teacher-output compressions, on a real teacher.

Runs the teacher over N Fashion-MNIST train images x V views (the cache's own
augmentation), then for top-k (k = 1, 2, 3, 5) and float16 logits measures the
KL divergence from the full teacher distribution to its reconstruction (mean,
99th percentile, max, in nats; also at temperature 4, as distillation uses it)
and the bytes stored per sample per view. Writes
``benchmarks/results/compression_fidelity.json``; the shipped cache's
compression is chosen from it.

    python benchmarks/compression_fidelity.py --model teachers/fashion-mnist-lite0 [--limit N]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from cache_tools.augment import DEFAULT_AUGMENTATION, view_seeds
from cache_tools.compression import decode_topk, encode_topk, index_dtype, kl_divergence, softmax
from cache_tools.datasets import FASHION_MNIST_CLASSES, load_fashion_mnist
from cache_tools.extract import teacher_outputs
from cache_tools.teachers import load_teacher


def tempered(p: np.ndarray, tau: float) -> np.ndarray:
    q = np.power(np.clip(p, 1e-30, None), 1.0 / tau)
    return q / q.sum(-1, keepdims=True)


def stats(full: np.ndarray, restored: np.ndarray) -> dict[str, float]:
    kl = kl_divergence(full, restored).ravel()
    kl4 = kl_divergence(tempered(full, 4.0), tempered(restored, 4.0)).ravel()
    return {"kl_mean": float(kl.mean()), "kl_p99": float(np.percentile(kl, 99)),
            "kl_max": float(kl.max()), "kl_tau4_mean": float(kl4.mean()),
            "kl_tau4_max": float(kl4.max())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--limit", type=int, default=2000)
    parser.add_argument("--views", type=int, default=2)
    parser.add_argument(
        "--out", default=str(Path(__file__).parent / "results" / "compression_fidelity.json")
    )
    args = parser.parse_args()
    teacher = load_teacher(args.model, class_names=list(FASHION_MNIST_CLASSES))
    images, _ = load_fashion_mnist("train")
    seeds = view_seeds(0, np.arange(args.limit), args.views)
    logits = np.concatenate([
        teacher_outputs(teacher, images[i : i + 250], seeds[i : i + 250], DEFAULT_AUGMENTATION)[0]
        for i in range(0, args.limit, 250)
    ])
    full = softmax(logits)
    c = logits.shape[-1]
    rows = {}
    for k in (1, 2, 3, 5):
        values, indices = encode_topk(logits, k)
        rows[f"top{k}"] = {"bytes": k * (2 + index_dtype(c).itemsize),
                           **stats(full, decode_topk(values, indices, c))}
    rows["logits_float16"] = {"bytes": 2 * c,
                              **stats(full, softmax(logits.astype(np.float16).astype(np.float32)))}
    for name, row in rows.items():
        print(f"{name:15s} {row['bytes']:3d} B  KL mean {row['kl_mean']:.2e}  p99 "
              f"{row['kl_p99']:.2e}  max {row['kl_max']:.2e}  | tau=4 mean "
              f"{row['kl_tau4_mean']:.2e} max {row['kl_tau4_max']:.2e}")
    result = {"teacher": args.model, "samples": args.limit, "views": args.views,
              "classes": c, "compressions": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
