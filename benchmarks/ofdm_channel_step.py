"""Cost of one OFDM channel pass (forward + gradient) on the default grid, side by side.

At speed 0 :class:`~tosc_sionna.OFDMChannel` computes the frequency response
for one OFDM symbol and repeats it over the slot; the reference arm forces
Sionna's full per-symbol computation (``GenerateOFDMChannel`` over all 14
symbols) on the same layer configuration. Interleaved repeats, best and
spread reported. Writes ``benchmarks/results/ofdm_channel_step.json``.

    python benchmarks/ofdm_channel_step.py [--batch 128] [--repeats 5] [--steps 10]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import tosc_sionna as ts  # noqa: E402


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--n-symbols", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--out", default="benchmarks/results/ofdm_channel_step.json")
    args = parser.parse_args()
    ts.set_seed(0)
    arms = {name: make_step(name == "static", args.batch, args.n_symbols)
            for name in ("static", "full")}
    times: dict[str, list[float]] = {name: [] for name in arms}
    for _ in range(args.repeats):  # interleaved, so a slow phase hits both arms
        for name, step in arms.items():
            start = time.perf_counter()
            for _ in range(args.steps):
                step()
            times[name].append((time.perf_counter() - start) / args.steps * 1e3)
    best = {name: min(t) for name, t in times.items()}
    result = {
        "what": "OFDMChannel forward + gradient, default grid (14 x 456, TDL-A, LMMSE CSI)",
        "batch": args.batch,
        "n_symbols": args.n_symbols,
        "ms_per_step_best": best,
        "ms_per_step_all": times,
        "full_over_static": best["full"] / best["static"],
        "machine": {"processor": platform.processor() or platform.machine(),
                    "cores": os.cpu_count()},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("ms_per_step_best", "full_over_static")}))


if __name__ == "__main__":
    main()
