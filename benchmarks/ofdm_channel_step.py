"""Cost of one OFDM channel pass (forward + gradient) on the default grid, side by side.

At speed 0 :class:`~tosc_sionna.OFDMChannel` computes the frequency response
for one OFDM symbol and repeats it over the slot; the reference arm forces
Sionna's full per-symbol computation (``GenerateOFDMChannel`` over all 14
symbols) on the same layer configuration. Both arms run with the default
slots shared by the batch's examples and with a slot per example
(``slot="per_example"``, the layout before 0.5). Interleaved repeats, best and
spread reported. Runs on either Sionna line (a step: ``tf.function`` over a
``GradientTape`` on TensorFlow, eager torch autograd on torch; the results'
provenance says which line measured). Writes
``benchmarks/results/ofdm_channel_step.json`` (``--quick``: batch 8, 2 repeats of 2 steps,
``ofdm_channel_step_quick.json``).

    python -m benchmarks.ofdm_channel_step [--batch 128] [--repeats 5] [--steps 10] [--quick]
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tosc_sionna as ts  # noqa: E402  (before Keras: it picks Keras' backend from the line)

# isort: split
import numpy as np  # noqa: E402
from keras import ops  # noqa: E402

from benchmarks import common  # noqa: E402
from benchmarks.common import backend  # noqa: E402

SLOTS = ("shared", "per_example")


def make_step(static: bool, batch: int, n: int, slot: str = "shared"):
    channel = ts.OFDMChannel("tdl-a", return_noise=True, slot=slot)
    channel.build((None, 2 * n))
    channel._static = static  # the reference arm: Sionna's full generation
    x = backend.variable(np.random.default_rng(0).normal(size=(batch, 2 * n)) / np.sqrt(2.0))
    snr = backend.tensor(np.full(batch, 10.0))

    def loss(x):
        y, no_eff = channel(x, snr_db=snr)
        return ops.mean(ops.square(y)) + ops.mean(no_eff)

    step = backend.gradient_step(loss, x)
    step()  # trace (TensorFlow)
    return step


def examples_per_slot(n: int) -> int:
    """Examples one shared slot carries at ``n`` complex symbols each."""
    channel = ts.OFDMChannel("tdl-a")
    channel.build((None, 2 * n))
    return channel.examples_per_slot


def main(argv: list[str] | None = None) -> int:
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
    arms = {f"{slot}, {name}": make_step(name == "static", args.batch, args.n_symbols, slot)
            for slot in SLOTS for name in ("static", "full")}
    seconds = common.time_interleaved(arms, args.repeats, calls=args.steps)
    times = {name: [1e3 * s for s in t["all"]] for name, t in seconds.items()}
    best = {name: 1e3 * t["best"] for name, t in seconds.items()}
    per_slot = examples_per_slot(args.n_symbols)
    result = {
        "what": "OFDMChannel forward + gradient, default grid (14 x 456, TDL-A, LMMSE CSI)",
        "batch": args.batch,
        "n_symbols": args.n_symbols,
        "slots": {"shared": -(-args.batch // per_slot), "per_example": args.batch},
        "ms_per_step_best": best,
        "ms_per_step_all": times,
        "spread": {name: t["spread"] for name, t in seconds.items()},
        "full_over_static": {slot: best[f"{slot}, full"] / best[f"{slot}, static"]
                             for slot in SLOTS},
        "per_example_over_shared": best["per_example, static"] / best["shared, static"],
    }
    common.write_results(common.results_file(args.out, "ofdm_channel_step", args.quick), result,
                         argv, __name__)
    print(json.dumps({k: result[k] for k in ("ms_per_step_best", "full_over_static",
                                              "per_example_over_shared")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
