"""Cost of building the OFDM LMMSE channel estimator: the Kronecker factors against the whole
pilot covariance, side by side.

:class:`~tosc_sionna.channels.ofdm_grid.PilotLMMSEEstimator` decomposes the
two factors of a Kronecker pilot covariance (``R_t,pp (x) R_f,pp``) where the
pilots are every (OFDM symbol, subcarrier) pair of two sets; the reference
arm decomposes the ``K x K`` pilot covariance itself (the construction before
0.5), both from the same covariances, pilots and targets of a built
``OFDMChannel("tdl-a")`` (shared slots of n = 16 symbols). Interleaved
repeats, best and spread reported, on the default grid (38 resource blocks, 2
pilot symbols: 912 pilots) and on a 100 MHz carrier (273 resource blocks, 4
pilot symbols: 13,104 pilots), where only the factored arm runs: the whole
covariance alone would take 2.7 GB and its decomposition hours. Writes
``benchmarks/results/ofdm_estimator_build.json`` (``--quick``: 4 resource
blocks, 2 repeats, ``ofdm_estimator_build_quick.json``).

    python -m benchmarks.ofdm_estimator_build [--repeats 3] [--quick] [--out FILE]
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tosc_sionna as ts  # noqa: E402  (before Keras: it picks Keras' backend from the line)

# isort: split
from benchmarks import common  # noqa: E402
from tosc_sionna.channels import ofdm_grid  # noqa: E402

#: name: (resource blocks, pilot OFDM symbols, whether the whole covariance is decomposed too)
GRIDS = {"default": (38, (2, 11), True), "100 MHz": (273, (2, 5, 8, 11), False)}
QUICK_GRIDS = {"default": (4, (2, 11), True)}


def estimator_inputs(resource_blocks: int, pilot_symbols: tuple[int, ...]) -> tuple:
    """``(r_t, r_f, pilots, pilot_values, targets)`` of a built TDL-A channel's estimator."""
    channel = ts.OFDMChannel("tdl-a", num_resource_blocks=resource_blocks,
                             pilot_ofdm_symbol_indices=pilot_symbols, csi="perfect")
    channel.build((None, 32))
    _, pilots, values = ofdm_grid.grid_positions(channel.grid)
    r_t, r_f = channel._covariances()
    return r_t, r_f, pilots, values, channel.slot_positions.reshape(-1, 2)


def main(argv: list[str] | None = None) -> int:
    parser = common.parser(__doc__, quick="smoke run: 4 resource blocks, 2 repeats",
                           out=common.RESULTS, out_help="results folder, or a .json results file")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    grids = QUICK_GRIDS if args.quick else GRIDS
    if args.quick:
        args.repeats = 2
    result = {"what": "PilotLMMSEEstimator construction from a built OFDMChannel('tdl-a')'s "
                      "covariances (shared slots, n = 16), seconds",
              "grids": {}}
    for name, (blocks, pilot_symbols, full) in grids.items():
        inputs = estimator_inputs(blocks, pilot_symbols)
        arms = {"kronecker": lambda inputs=inputs: ofdm_grid.PilotLMMSEEstimator(*inputs)}
        if full:
            arms["full"] = lambda inputs=inputs: ofdm_grid.PilotLMMSEEstimator(*inputs,
                                                                               factor=False)
        seconds = common.time_interleaved(arms, args.repeats)
        row = {"resource_blocks": blocks, "pilot_ofdm_symbols": len(pilot_symbols),
               "pilots": int(len(inputs[2])), "targets": int(len(inputs[4])),
               "rank": ofdm_grid.PilotLMMSEEstimator(*inputs).rank,
               "seconds_best": {k: t["best"] for k, t in seconds.items()},
               "seconds_all": {k: t["all"] for k, t in seconds.items()},
               "spread": {k: t["spread"] for k, t in seconds.items()}}
        if full:
            row["full_over_kronecker"] = (row["seconds_best"]["full"]
                                          / row["seconds_best"]["kronecker"])
        result["grids"][name] = row
        print(f"{name}: {row['pilots']} pilots, rank {row['rank']}: "
              + ", ".join(f"{k} {v:.3f} s" for k, v in row["seconds_best"].items()), flush=True)
    out = common.write_results(common.results_file(args.out, "ofdm_estimator_build", args.quick),
                               result, argv, __name__)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
