"""The 64-byte frontier for a flat 1000-class teacher (issue 11 item 4).

On the stored ImageNet EfficientNet-Lite0 logits of 10,000 Fashion-MNIST
images (``python -m benchmarks.compression_fidelity --logits``), two transform codes
of the same structure: a per-cache PCA basis of the centered logits, its
coefficients quantized with bit widths allocated greedily by eigenvalue x KL
weight, then residual logits of the K classes the reconstruction ranks
highest (no indices), in groups of 8 ranks with bits allocated by the group's
p-weighted residual energy.

* ``scalar`` (the earlier prototype, NumPy here): per-value 1-D Lloyd
  (k-means) codebooks.
* ``tcq`` (the cache mode, ``tosc-cache extract --tcq BYTES``,
  :func:`tosc_cache.codecs.fit_tcq` / ``encode_tcq`` / ``decode_tcq``):
  the same values trellis-coded (64-state TCQ, codebooks of 2^(b+1) levels
  refined by Viterbi passes and p-weighted centroids; the encoder weighs each
  value's error by the row's own KL weights), float16 basis.

Fidelity is the tempered KL as training sees it
(:func:`tosc_cache.probability.tempered_kl`) at tau = 1 and 4. Two
protocols: fit on rows 0..7999, evaluate on 8000..9999 (held out), and fit
and evaluate on all 10,000 rows (a cache compressing its own rows; the cache
mode fits on its first 16,384 views).

``--quick`` (a smoke run of the code, not of the frontier): one small configuration of each
method on 300 rows, fit on the first 240 for the held-out protocol, of the ``--logits`` file
or, without one, of synthetic 1000-class logits (seeded; low-rank plus noise);
``compression_frontier_imagenet1000_quick.json``.

    python -m benchmarks.compression_frontier_imagenet1000 --logits /tmp/lite0_1000_logits.npz
"""

from __future__ import annotations

import time

import numpy as np

from benchmarks import common
from tosc_cache.codecs import decode_tcq, encode_tcq, fit_tcq, lloyd_levels, tcq_split
from tosc_cache.probability import softmax, tempered_kl

#: Lloyd-Max distortion of a unit Gaussian at 0..8 bits (allocation only).
GAUSS_D = np.array([1, .3634, .1175, .03454, .0095, .0025, .00066, .00017, .00004])
CONFIGS = [  # (rank, stage-1 bits, K residual classes, stage-2 bits)
    (200, 384, 32, 128), (256, 368, 128, 128), (300, 336, 192, 160), (400, 512, 128, 128),
]
#: the fidelity target (issue 11): mean tempered KL at tau = 1 and 4, nats
TARGET_KL = 1e-2
TCQ_CONFIGS = [(256, 128, 448), (256, 128, 512), (256, 128, 576)]  # (rank, K, bits per row)
#: the smoke run's configurations and rows
QUICK_CONFIGS, QUICK_TCQ_CONFIGS, QUICK_ROWS = [(32, 64, 16, 32)], [(32, 16, 128)], 300


def synthetic_logits(rows: int, seed: int = 0) -> np.ndarray:
    """Stand-in 1000-class logits ``[rows, 1000]`` for a smoke run without the stored file:
    a few dominant directions plus noise, peaked like a classifier's."""
    rng = np.random.default_rng(seed)
    directions = rng.normal(size=(16, 1000))
    return (rng.normal(size=(rows, 16)) * np.linspace(4.0, 0.5, 16)) @ directions / 4 \
        + rng.normal(scale=0.5, size=(rows, 1000))


def quant(x, c):
    return c[np.searchsorted((c[1:] + c[:-1]) / 2, x)]


def allocate(weight, budget, maxb=6):
    bits = np.zeros(len(weight), int)
    for _ in range(budget):
        gain = weight * (GAUSS_D[bits] - GAUSS_D[np.minimum(bits + 1, 8)])
        gain[bits >= maxb] = -1
        bits[np.argmax(gain)] += 1
    return bits


def stage1(m, z):
    c = (z - m["mu"]) @ m["B"].T
    q = np.stack([quant(c[:, j], m["cbs"][j]) if m["bits"][j] else np.zeros(len(c))
                  for j in range(len(m["bits"]))], 1)
    return m["mu"] + q @ m["B"]


def fit(z, svd, rank, b1, k, b2, group=8):
    mu, vt = svd
    basis = vt[:rank]
    c = (z - mu) @ basis.T
    p, p4 = softmax(z), softmax(z / 4)
    a0 = mu + c @ basis
    sup = np.argsort(-a0, -1, kind="stable")[:, :k]
    pout = p.copy()
    np.put_along_axis(pout, sup, 0, -1)
    weight = ((pout / 2 + p4 / 32) @ (basis.T ** 2)).mean(0)  # KL per unit coefficient error
    bits = allocate(weight * c.var(0), b1)
    m = {"mu": mu, "B": basis, "bits": bits,
         "cbs": [lloyd_levels(c[:, j], 2 ** bits[j]) if bits[j] else None for j in range(rank)]}
    a = stage1(m, z)
    sup = np.argsort(-a, -1, kind="stable")[:, :k]
    res = np.take_along_axis(z - a, sup, -1)
    ws = np.take_along_axis(p / 2 + p4 / 32, sup, -1)
    g = k // group
    gw = np.array([(ws[:, i * group:(i + 1) * group] * res[:, i * group:(i + 1) * group] ** 2)
                   .mean() for i in range(g)])
    m["gbits"] = allocate(gw, b2 // group)
    m["gcb"] = [lloyd_levels(res[:, i * group:(i + 1) * group], 2 ** b) if b else None
                for i, b in enumerate(m["gbits"])]
    m["group"], m["k"] = group, k
    return m


def reconstruct(m, z):
    a = stage1(m, z)
    sup = np.argsort(-a, -1, kind="stable")[:, :m["k"]]
    res = np.take_along_axis(z - a, sup, -1)
    q = np.zeros_like(res)
    for i, b in enumerate(m["gbits"]):
        if b:
            s = slice(i * m["group"], (i + 1) * m["group"])
            q[:, s] = quant(res[:, s], m["gcb"][i])
    out = a.copy()
    np.put_along_axis(out, sup, np.take_along_axis(a, sup, -1) + q, -1)
    return out


def summary(z, rec, probs=False):
    full, q = softmax(z), (rec if probs else softmax(rec))
    out = {}
    for tau in (1, 4):
        kl = tempered_kl(full, q, tau)
        out[str(tau)] = {"kl_mean": float(kl.mean()), "kl_p99": float(np.percentile(kl, 99)),
                         "kl_max": float(kl.max())}
    out["top1_agreement"] = float(np.mean(full.argmax(-1) == q.argmax(-1)))
    return out


def tcq_row(split, z_fit, z_eval, rank, k, bits):
    t = time.perf_counter()
    shared = fit_tcq(z_fit, rank, k, bits)
    fit_s = time.perf_counter() - t
    t = time.perf_counter()
    packed = encode_tcq(z_eval, shared, bits)
    encode_s = time.perf_counter() - t
    t = time.perf_counter()
    restored = decode_tcq(packed, shared)
    decode_s = time.perf_counter() - t
    # readers decode any batch to the same bits
    chunks = np.concatenate([decode_tcq(packed[i : i + 333], shared)
                             for i in range(0, len(packed), 333)])
    table = sum(a.nbytes for a in shared.values())
    used = int(np.count_nonzero(shared["bits"][:rank]))
    content = (shared["mean"].nbytes + used * shared["basis"].shape[1] * 2 + len(shared["bits"])
               + 4 * int(np.sum(2 ** (shared["bits"][shared["bits"] > 0].astype(int) + 1))))
    first, second = tcq_split(bits)
    row = {"method": "tcq", "split": split, "rank": rank, "components_used": used,
           "stage1_bits": int(shared["bits"][:rank].sum()), "residual_classes": k,
           "residual_bits_by_rank_group": shared["bits"][rank::8].tolist(),
           "bits_split": [first, second], "bytes_per_row": packed.shape[-1],
           "table_bytes": int(table), "table_bytes_nonzero": int(content),
           "bytes_per_view_60000x4": packed.shape[-1] + table / 240_000,
           "bytes_per_view_10000x1": packed.shape[-1] + table / 10_000,
           "seconds": {"fit": round(fit_s, 1), "encode": round(encode_s, 1),
                       "decode": round(decode_s, 1), "rows_fit": len(z_fit),
                       "rows_coded": len(z_eval)},
           "decode_bit_identical_across_batches": bool(np.array_equal(chunks, restored)),
           "fidelity": summary(z_eval, restored, probs=True)}
    f = row["fidelity"]
    print(f"{split} tcq R={rank} K={k} {row['bytes_per_row']} B/row table {table} B | "
          f"tau1 {f['1']['kl_mean']:.3e} (max {f['1']['kl_max']:.3e}) tau4 "
          f"{f['4']['kl_mean']:.3e} (max {f['4']['kl_max']:.3e}) fit {fit_s:.0f}s "
          f"encode {encode_s:.0f}s", flush=True)
    return row


def status(rows: list[dict], target: float = TARGET_KL) -> dict:
    """What the rows show: per split and method, the fewest bytes per row whose mean KL is
    within ``target`` at tau = 1 and 4 (None if no configuration is), and whether 64 B are."""
    out: dict = {"target": f"mean KL <= {target:g} at tau = 1 and 4", "fewest_bytes_per_row": {},
                 "meets_target_at_64_bytes": {}}
    for row in rows:
        meets = all(row["fidelity"][tau]["kl_mean"] <= target for tau in ("1", "4"))
        fewest = out["fewest_bytes_per_row"].setdefault(row["split"], {})
        at64 = out["meets_target_at_64_bytes"].setdefault(row["split"], {})
        fewest.setdefault(row["method"], None)
        at64.setdefault(row["method"], False)
        if meets:
            best = fewest[row["method"]]
            fewest[row["method"]] = (row["bytes_per_row"] if best is None
                                     else min(best, row["bytes_per_row"]))
            at64[row["method"]] |= row["bytes_per_row"] <= 64
    return out


def main(argv: list[str] | None = None) -> None:
    parser = common.parser(__doc__, quick="smoke run: one small configuration per method, 300 "
                           "rows (synthetic without --logits)", out=common.RESULTS,
                           out_help="results folder, or a .json results file")
    parser.add_argument("--logits", help="the stored logits (required but for --quick)")
    args = parser.parse_args(argv)
    if not (args.logits or args.quick):
        parser.error("--logits is required (but for --quick)")
    configs, tcq_configs, cut = CONFIGS, TCQ_CONFIGS, 8000
    if args.logits:
        logits = np.load(args.logits)["logits"].reshape(-1, 1000).astype(np.float64)
        teacher = "ImageNet EfficientNet-Lite0 over 10,000 Fashion-MNIST train images, 1 view"
    else:
        logits = synthetic_logits(QUICK_ROWS)
        teacher = "synthetic 1000-class logits (--quick without --logits)"
    if args.quick:
        configs, tcq_configs = QUICK_CONFIGS, QUICK_TCQ_CONFIGS
        logits = logits[:QUICK_ROWS]
        cut = 4 * len(logits) // 5
        teacher += f", first {len(logits)} rows (--quick)"
    z = logits - logits.mean(-1, keepdims=True)
    results = []
    for split, fit_rows, eval_rows in (("heldout", slice(0, cut), slice(cut, None)),
                                       ("all", slice(None), slice(None))):
        t = time.perf_counter()
        mu = z[fit_rows].mean(0)
        _, _, vt = np.linalg.svd(z[fit_rows] - mu, full_matrices=False)
        for rank, b1, k, b2 in configs:
            m = fit(z[fit_rows], (mu, vt), rank, b1, k, b2)
            used = int(np.sum(m["bits"] > 0))
            per_row_bits = int(m["bits"].sum() + m["group"] * m["gbits"].sum())
            table = used * 1000 * 2 + 4 * 1000 + 4 * sum(2 ** b for b in m["bits"]) + 4 * sum(
                2 ** b for b in m["gbits"] if b)  # float16 basis rows used, float32 mean, codebooks
            row = {"method": "scalar", "split": split, "rank": rank, "components_used": used,
                   "stage1_bits": int(m["bits"].sum()), "residual_classes": k,
                   "residual_bits_by_rank_group": m["gbits"].tolist(),
                   "bytes_per_row": per_row_bits / 8, "table_bytes": int(table),
                   "bytes_per_view_60000x4": per_row_bits / 8 + table / 240_000,
                   "bytes_per_view_10000x1": per_row_bits / 8 + table / 10_000,
                   "fidelity": summary(z[eval_rows], reconstruct(m, z[eval_rows]))}
            f = row["fidelity"]
            print(f"{split} scalar R={rank} used={used} {row['bytes_per_row']} B/row "
                  f"table {table} B | "
                  f"tau1 {f['1']['kl_mean']:.3e} (max {f['1']['kl_max']:.3e}) tau4 "
                  f"{f['4']['kl_mean']:.3e} (max {f['4']['kl_max']:.3e}) "
                  f"{time.perf_counter() - t:.0f}s", flush=True)
            results.append(row)
        for rank, k, bits in tcq_configs:
            results.append(tcq_row(split, logits[fit_rows], logits[eval_rows], rank, k, bits))
    out = common.results_file(args.out, "compression_frontier_imagenet1000", args.quick)
    common.write_results(out, {
        "teacher": teacher,
        "kl": "KL(temper(teacher, T) || temper(reconstruction, T)), nats, 1e-12 floor",
        "status": status(results),
        "tables": "table_bytes: mean float32 + basis float16 (tcq; float16 counted for "
                  "scalar) + bit widths + codebooks as stored (tcq: zero-padded to 64 levels, "
                  "table_bytes_nonzero without padding and unused basis rows)",
        "results": results}, argv, __name__)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
