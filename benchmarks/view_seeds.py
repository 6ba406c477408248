"""``view_seeds``: the per-seed ``np.random.SeedSequence`` loop vs the vectorized mixing.

Both arms build the same ``[N, V]`` uint64 seeds (checked bit-identical);
the loop is the original implementation. Interleaved repeats, best reported.
Writes ``benchmarks/results/view_seeds.json`` (``--quick``: 1,000 rows, 2 repeats,
``view_seeds_quick.json``).

    python -m benchmarks.view_seeds [--rows 20000] [--views 4] [--repeats 3] [--quick] [--out FILE]
"""

from __future__ import annotations

import json

import numpy as np

from benchmarks import common
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


def main(argv: list[str] | None = None) -> None:
    parser = common.parser(__doc__.splitlines()[0], quick="smoke run: 1,000 rows, 2 repeats",
                           out=common.RESULTS,
                           out_help="results folder, or a .json results file")
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--views", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.repeats = 1000, 2

    indices = np.arange(args.rows)
    arms = {"loop": loop_view_seeds, "vectorized": view_seeds}
    outputs = {}

    def arm(name):
        def run():
            outputs[name] = arms[name](args.seed, indices, args.views)
        return run

    times = common.time_interleaved({name: arm(name) for name in arms}, args.repeats)
    identical = bool(np.array_equal(outputs["loop"], outputs["vectorized"]))
    if not identical:
        raise SystemExit("vectorized view_seeds differs from the loop")

    best = {name: t["best"] for name, t in times.items()}
    result = {
        "what": "tosc_cache.augment.view_seeds: SeedSequence loop vs vectorized",
        "rows": args.rows,
        "views": args.views,
        "repeats": args.repeats,
        "seconds_best": best,
        "seconds_all": {name: t["all"] for name, t in times.items()},
        "spread": {name: t["spread"] for name, t in times.items()},
        "loop_over_vectorized": best["loop"] / best["vectorized"],
        "bit_identical": identical,
    }
    common.write_results(common.results_file(args.out, "view_seeds", args.quick), result,
                         argv, __name__)
    print(json.dumps({k: result[k] for k in ("seconds_best", "loop_over_vectorized")}))


if __name__ == "__main__":
    main()
