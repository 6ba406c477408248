"""Train a small task-oriented link on Fashion-MNIST over each channel layer.

A quick look at the building blocks (about 30 s on a 2-core CPU): for AWGN,
Rayleigh block fading and OFDM over 3GPP TDL-A, train the student link for
one epoch on a subset of the training images with a per-example SNR drawn
from the training range, then print test accuracy at a few fixed SNRs.

    python examples/link_demo.py [--train-images N] [--epochs E] [--seed S]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TF start-up chatter

import tosc_sionna as ts  # noqa: E402  (before Keras: it picks Keras' backend from the line)

# isort: split
import keras  # noqa: E402

from tosc_sionna.data import DatasetNotFoundError, load_fashion_mnist  # noqa: E402

BATCH = 128
CHANNELS = {
    "awgn": lambda: ts.AWGNChannel(),
    "rayleigh (LMMSE CSI, 4 pilots)": lambda: ts.RayleighBlockFadingChannel(
        csi="ls", num_pilots=4, return_noise=True
    ),
    "ofdm tdl-a (LMMSE CSI + eq.)": lambda: ts.OFDMChannel("tdl-a", return_noise=True),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train-images", type=int, default=12000)
    parser.add_argument("--test-images", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--n-symbols", type=int, default=16)
    parser.add_argument("--snr-eval", type=float, nargs="+", default=[0.0, 10.0, 20.0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument(
        "--jit", action="store_true",
        help="compile with XLA (TensorFlow line): on a CPU it slows the default "
             "separable student's steps 7-14x (benchmarks/results/xla_training.json)",
    )
    args = parser.parse_args(argv)

    try:
        x_train, y_train = load_fashion_mnist("train", args.data_dir)
        x_test, y_test = load_fashion_mnist("test", args.data_dir)
    except DatasetNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    # Whole batches only: a last, smaller batch would trigger a retrace.
    train = (min(args.train_images, len(x_train)) // BATCH) * BATCH
    x_train, y_train = x_train[:train], y_train[:train]
    x_test, y_test = x_test[: args.test_images], y_test[: args.test_images]

    header = f"{'channel':28s}" + "".join(f"{s:>8.1f}dB" for s in args.snr_eval)
    print(f"n = {args.n_symbols} complex symbols per image; {len(x_train)} training "
          f"images, {args.epochs} epoch(s); accuracy on {len(x_test)} test images")
    print(header)
    start = time.time()
    for name, make_channel in CHANNELS.items():
        ts.set_seed(args.seed)
        link = ts.make_link(make_channel(), num_symbols=args.n_symbols, seed=args.seed)
        link.compile(
            optimizer=keras.optimizers.Adam(2e-3),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
            jit_compile=args.jit,
        )
        link.fit(x_train, y_train, batch_size=BATCH, epochs=args.epochs, verbose=0)
        row = f"{name:28s}"
        for snr in args.snr_eval:
            link.set_eval_snr(snr)
            _, accuracy = link.evaluate(x_test, y_test, batch_size=500, verbose=0)
            row += f"{accuracy:>10.3f}"
        print(row, flush=True)
    print(f"total {time.time() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
