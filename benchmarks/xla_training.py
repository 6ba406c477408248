"""Training-step cost of the link with and without XLA, side by side in one run.

For each channel layer: time of the first epoch (tracing/compiling plus the
steps) and of a second, steady epoch, with ``jit_compile`` False and True, on
real Fashion-MNIST, for the default student over every channel and for
other students (``--compare-students``) over AWGN. TensorFlow line only
(XLA is TensorFlow's compiler; on the torch line it exits with status 2 and
one line saying so). Writes
``benchmarks/results/xla_training.json`` (``--quick``: 256 images, the AWGN channel only,
``xla_training_quick.json``).

    python -m benchmarks.xla_training [--train-images N] [--quick] [--out FILE]
"""

from __future__ import annotations

import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tosc_sionna as ts  # noqa: E402  (before Keras: it picks Keras' backend from the line)

# isort: split
import keras  # noqa: E402

from benchmarks import common  # noqa: E402
from tosc_sionna.data import load_fashion_mnist  # noqa: E402

CHANNELS = {
    "awgn": lambda: ts.AWGNChannel(),
    "rayleigh-ls": lambda: ts.RayleighBlockFadingChannel(csi="ls", return_noise=True),
    "ofdm-tdl-a": lambda: ts.OFDMChannel("tdl-a", return_noise=True),
}
BATCH = 128


def time_epochs(make_channel, jit: bool, x, y, student: str = ts.DEFAULT_STUDENT
                ) -> dict[str, float]:
    ts.set_seed(0)
    link = ts.make_link(make_channel(), num_symbols=16, seed=0, student=student)
    link.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=jit,
    )
    times = []
    for _ in range(2):
        start = time.perf_counter()
        link.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)
        times.append(time.perf_counter() - start)
    return {"first_epoch_s": times[0], "steady_epoch_s": times[1]}


def main(argv: list[str] | None = None) -> int:
    parser = common.parser(__doc__, quick="smoke run: 256 images, the AWGN channel only",
                           out=common.RESULTS, out_help="results folder, or a .json results file")
    parser.add_argument("--train-images", type=int, default=12032)
    parser.add_argument(
        "--compare-students", nargs="*", default=["conv-w32-h256"], metavar="PRESET",
        help="other students timed over AWGN only (default: conv-w32-h256, plain "
             "convolutions, beside the default's separable ones)")
    args = parser.parse_args(argv)
    if keras.backend.backend() != "tensorflow":
        print(f"benchmarks.xla_training measures TensorFlow's XLA: it runs on the TensorFlow "
              f"line (Sionna 1.2) only, not on this {keras.backend.backend()} line",
              file=sys.stderr)
        return 2
    channels = CHANNELS
    if args.quick:
        args.train_images, channels = 256, {"awgn": CHANNELS["awgn"]}
    for preset in args.compare_students:  # at once, not after minutes of the default's runs
        try:
            ts.presets.student_preset(preset)
        except ValueError as err:
            parser.error(str(err))
    args.compare_students = [p for p in args.compare_students if p != ts.DEFAULT_STUDENT]
    out = common.results_file(args.out, "xla_training", args.quick)
    x, y = load_fashion_mnist("train")
    n = (args.train_images // BATCH) * BATCH
    x, y = x[:n], y[:n]
    results = {
        "student": ts.DEFAULT_STUDENT,  # make_link's default, labels-only training
        "train_images": n,
        "batch_size": BATCH,
        "channels": {},
    }
    runs = [(ts.DEFAULT_STUDENT, name) for name in channels]
    runs += [(student, "awgn") for student in args.compare_students]
    results["other_students"] = {}
    for student, name in runs:
        row = {mode: time_epochs(channels[name], mode == "xla", x, y, student)
               for mode in ("graph", "xla")}
        row["steady_speedup_xla"] = (
            row["graph"]["steady_epoch_s"] / row["xla"]["steady_epoch_s"]
        )
        if student == ts.DEFAULT_STUDENT:
            results["channels"][name] = row
        else:
            results["other_students"].setdefault(student, {})[name] = row
        print(
            f"{student} {name:12s} graph: first {row['graph']['first_epoch_s']:.1f} s, "
            f"steady {row['graph']['steady_epoch_s']:.1f} s | xla: first "
            f"{row['xla']['first_epoch_s']:.1f} s, steady {row['xla']['steady_epoch_s']:.1f} s "
            f"| steady speedup {row['steady_speedup_xla']:.2f}x",
            flush=True,
        )
    common.write_results(out, results, argv, __name__)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
