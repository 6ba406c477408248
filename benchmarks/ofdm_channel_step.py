"""Cost of one OFDM channel pass (forward + gradient) on the default grid, side by side.

At speed 0 :class:`~tosc_sionna.OFDMChannel` computes the frequency response
for one OFDM symbol and repeats it over the slot; the reference arm forces
Sionna's full per-symbol computation (``GenerateOFDMChannel`` over all 14
symbols) on the same layer configuration. Interleaved repeats, best and
spread reported. Writes ``benchmarks/results/ofdm_channel_step.json`` (``--quick``: batch
8, 2 repeats of 2 steps, ``ofdm_channel_step_quick.json``).

    python -m benchmarks.ofdm_channel_step [--batch 128] [--repeats 5] [--steps 10] [--quick]
"""

from __future__ import annotations

import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import tosc_sionna as ts  # noqa: E402
from benchmarks import common  # noqa: E402


def make_step(static: bool, batch: int, n: int):
    channel = ts.OFDMChannel("tdl-a", return_noise=True)
    channel.build((None, 2 * n))
    channel._static = static  # the reference arm: Sionna's full generation
    x = tf.Variable(tf.random.normal([batch, 2 * n]) / np.sqrt(2.0))

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            y, no_eff = channel(x, tf.fill([batch], 10.0))
            loss = tf.reduce_mean(tf.square(y)) + tf.reduce_mean(no_eff)
        return tape.gradient(loss, x)

    step()  # trace
    return step


def main(argv: list[str] | None = None) -> None:
    parser = common.parser(__doc__, quick="smoke run: batch 8, 2 repeats of 2 steps",
                           out=common.RESULTS, out_help="results folder, or a .json results file")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--n-symbols", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args(argv)
    if args.quick:
        args.batch, args.repeats, args.steps = 8, 2, 2
    ts.set_seed(0)
    arms = {name: make_step(name == "static", args.batch, args.n_symbols)
            for name in ("static", "full")}
    seconds = common.time_interleaved(arms, args.repeats, calls=args.steps)
    times = {name: [1e3 * s for s in t["all"]] for name, t in seconds.items()}
    best = {name: 1e3 * t["best"] for name, t in seconds.items()}
    result = {
        "what": "OFDMChannel forward + gradient, default grid (14 x 456, TDL-A, LMMSE CSI)",
        "batch": args.batch,
        "n_symbols": args.n_symbols,
        "ms_per_step_best": best,
        "ms_per_step_all": times,
        "spread": {name: t["spread"] for name, t in seconds.items()},
        "full_over_static": best["full"] / best["static"],
    }
    common.write_results(common.results_file(args.out, "ofdm_channel_step", args.quick), result,
                         argv, __name__)
    print(json.dumps({k: result[k] for k in ("ms_per_step_best", "full_over_static")}))


if __name__ == "__main__":
    main()
