"""``view_seeds``: the per-seed ``np.random.SeedSequence`` loop vs the vectorized mixing.

Both arms build the same ``[N, V]`` uint64 seeds (checked bit-identical);
the loop is the original implementation. Interleaved repeats, best reported.
Writes ``benchmarks/results/view_seeds.json``.

    python benchmarks/view_seeds.py [--rows 20000] [--views 4] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from tosc_cache.augment import view_seeds


def loop_view_seeds(base_seed: int, sample_indices: np.ndarray, num_views: int) -> np.ndarray:
    """The original double loop."""
    sample_indices = np.asarray(sample_indices, dtype=np.int64)
    seeds = np.zeros((len(sample_indices), num_views), dtype=np.uint64)
    for view in range(1, num_views):
        for row, index in enumerate(sample_indices):
            seeds[row, view] = np.random.SeedSequence(
                [int(base_seed), int(index), view]
            ).generate_state(1, dtype=np.uint64)[0]
    return seeds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--views", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/results/view_seeds.json")
    args = parser.parse_args()

    indices = np.arange(args.rows)
    arms = {"loop": loop_view_seeds, "vectorized": view_seeds}
    times: dict[str, list[float]] = {name: [] for name in arms}
    outputs = {}
    for _ in range(args.repeats):  # interleaved
        for name, fn in arms.items():
            start = time.perf_counter()
            outputs[name] = fn(args.seed, indices, args.views)
            times[name].append(time.perf_counter() - start)
    identical = bool(np.array_equal(outputs["loop"], outputs["vectorized"]))
    if not identical:
        raise SystemExit("vectorized view_seeds differs from the loop")

    best = {name: min(ts) for name, ts in times.items()}
    result = {
        "what": "tosc_cache.augment.view_seeds: SeedSequence loop vs vectorized",
        "rows": args.rows,
        "views": args.views,
        "repeats": args.repeats,
        "seconds_best": best,
        "seconds_all": times,
        "loop_over_vectorized": best["loop"] / best["vectorized"],
        "bit_identical": identical,
        "numpy": np.__version__,
        "machine": {"processor": platform.processor() or platform.machine(),
                    "cores": os.cpu_count()},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("seconds_best", "loop_over_vectorized")}))


if __name__ == "__main__":
    main()
