"""The main job: distil the shipped Fashion-MNIST teacher into a tiny link over a noisy channel.

With ``--cache C.h5`` it trains from any teacher cache instead (any dataset
``tosc-cache extract`` read: a hub id, a saved or an image folder); the test
split comes from the same dataset (``--dataset`` if it moved).

Fast distillation: the student trains from the pre-stored teacher cache (the
teacher is never loaded), with the information-bottleneck distillation loss,
an SNR drawn per example from the training range and channel-adaptive
modules at both ends. It then sweeps accuracy vs SNR over the whole test split
(several channel draws per SNR), prints a table beside the teacher's clean
accuracy, and writes ``results.json`` and ``accuracy_vs_snr.png`` into --out.

    python examples/kd_awgn.py [--quick] [--epochs E] [--n-symbols N] [--channel awgn]
        [--snr-train LOW HIGH] [--labelled-fraction F [--no-teacher]] [--cache FILE]
        [--out DIR] [--seed S] [--dataset D] [--downsample K]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TF start-up chatter

import keras  # noqa: E402
import numpy as np  # noqa: E402

import tosc_sionna as ts  # noqa: E402
from tosc_sionna.data import (  # noqa: E402
    CacheError,
    DatasetNotFoundError,
    TeacherCacheDataset,
    default_teacher_cache,
    load_dataset,
)
from tosc_sionna.evaluation import accuracy_vs_snr, format_table, plot_accuracy_vs_snr  # noqa: E402
from tosc_sionna.losses import ib_metrics  # noqa: E402

CHANNELS = {
    "awgn": lambda: ts.AWGNChannel(),
    "rayleigh": lambda: ts.RayleighBlockFadingChannel(csi="ls", num_pilots=4, return_noise=True),
    "ofdm-tdl-a": lambda: ts.OFDMChannel("tdl-a", return_noise=True),
}


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="a short run (about a minute): fewer images, epochs and SNRs")
    parser.add_argument("--epochs", type=int, default=None, help="default 30 (quick: 1)")
    parser.add_argument("--n-symbols", type=int, default=16,
                        help="complex channel uses per image")
    parser.add_argument("--snr-train", type=float, nargs=2, default=[-10.0, 20.0],
                        metavar=("LOW", "HIGH"))
    parser.add_argument("--width", type=int, default=32,
                        help="filters of the encoder's first convolution")
    parser.add_argument("--channel", choices=sorted(CHANNELS), default="awgn")
    parser.add_argument("--dataset", default=None,
                        help="where the cache's dataset is (default: the one it names)")
    parser.add_argument("--test-split", default="test", help="split to evaluate on")
    parser.add_argument("--downsample", type=int, default=1,
                        help="average-pool large images by this factor first (e.g. 8 at 224)")
    parser.add_argument("--cache", default=None, help="teacher cache (default: the shipped one)")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", default="kd_awgn_out")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--labelled-fraction", type=float, default=1.0,
                        help="fraction of training images whose labels the student sees")
    parser.add_argument("--no-teacher", action="store_true",
                        help="teacher-free baseline: labels only (alpha = 1), trained on the "
                             "labelled images only, with as many steps as a distilled run")
    parser.add_argument("--alpha", type=float, default=0.5,
                        help="weight of the label term (few labels: use a small one, e.g. 0.05)")
    parser.add_argument("--temperature", type=float, default=4.0)
    parser.add_argument("--beta", type=float, default=1e-4,
                        help="weight of the rate term (stochastic encoder)")
    parser.add_argument("--draws", type=int, default=None, help="channel draws per SNR")
    parser.add_argument("--sample-encoder", action="store_true",
                        help="evaluate the sampling encoder z = mu + sigma * eps (the one the "
                             "information bottleneck describes) instead of z = mu")
    return parser.parse_args(argv)


def evaluation_split(
    data: TeacherCacheDataset, args: argparse.Namespace
) -> tuple[np.ndarray, np.ndarray]:
    """The evaluation split of the cache's dataset, read as the cache's was: float32
    ``[N, H, W, C]`` in [0, 1] and int32 labels."""
    spec = data.cache.spec
    images, labels, names = load_dataset(spec.dataset if args.dataset is None else args.dataset,
                                         args.test_split, args.data_dir,
                                         **data.cache.read_options)
    if list(names) != list(spec.class_names):
        raise ValueError(f"The {args.test_split} split's classes differ from the cache's.")
    if args.quick:
        images, labels = images[:2000], labels[:2000]
    x = np.asarray(images[:]).astype(np.float32) / 255.0
    return (x[..., None] if x.ndim == 3 else x), np.asarray(labels).astype(np.int32)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.no_teacher:
        args.alpha = 1.0
    epochs = args.epochs or (1 if args.quick else 30)
    draws = args.draws or (1 if args.quick else 3)
    snrs = [-10.0, 0.0, 10.0, 20.0] if args.quick else list(np.arange(-10.0, 20.01, 2.5))
    try:
        cache = args.cache or default_teacher_cache()
        ts.set_seed(args.seed)
        data = TeacherCacheDataset(cache, batch_size=128, seed=args.seed,
                                   data_dir=args.data_dir, dataset=args.dataset,
                                   labelled_fraction=args.labelled_fraction,
                                   labelled_only=args.no_teacher)
        x_test, y_test = evaluation_split(data, args)
    except (FileNotFoundError, DatasetNotFoundError, CacheError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    steps = min(len(data), 300) if args.quick else len(data)
    spec = data.cache.spec

    link = ts.make_link(CHANNELS[args.channel](), num_symbols=args.n_symbols,
                        num_classes=spec.num_classes, width=args.width, stochastic=True,
                        rate_weight=args.beta, snr_train_db=tuple(args.snr_train),
                        seed=args.seed, downsample=args.downsample)
    loss = ts.IBDistillationLoss(alpha=args.alpha, temperature=args.temperature)
    schedule = keras.optimizers.schedules.CosineDecay(2e-3, decay_steps=epochs * steps)
    link.compile(optimizer=keras.optimizers.Adam(schedule), loss=loss, metrics=ib_metrics(loss))
    verbose = 1 if sys.stdout.isatty() else 2
    start = time.time()
    link.fit(data, epochs=epochs, steps_per_epoch=steps, verbose=verbose)
    train_seconds = time.time() - start

    sweep = accuracy_vs_snr(link, x_test, y_test, snrs, draws=draws,
                            sample_encoder=args.sample_encoder)
    teacher_accuracy = float(data.cache.attrs.get("teacher_test_accuracy", float("nan")))
    tx = link.encoder.count_params() + link.tx_cam.count_params()
    rx = link.rx_cam.count_params() + link.decoder.count_params()
    print(f"\nstudent over {args.channel}, n = {args.n_symbols} symbols/image, "
          f"{len(y_test)} test images x {draws} channel draws per SNR")
    print(format_table(sweep, reference=teacher_accuracy))
    print(f"student {tx + rx:,} parameters (tx {tx:,}, rx {rx:,}); teacher "
          f"{spec.teacher_params:,}; training {train_seconds:.1f} s")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = {
        "snr_db": sweep["snr_db"], "accuracy": sweep["accuracy"],
        "accuracy_std": sweep["accuracy_std"], "accuracy_se": sweep["accuracy_se"],
        "accuracy_ci95": sweep["accuracy_ci95"], "accuracy_draws": sweep["accuracy_draws"],
        "error_bars": sweep["error_bars"], "sample_encoder": sweep["sample_encoder"],
        "draws": draws,
        "test_images": len(y_test), "teacher_accuracy": teacher_accuracy,
        "channel": args.channel, "n_symbols": args.n_symbols,
        "student_params": tx + rx, "student_tx_params": tx, "student_rx_params": rx,
        "teacher_params": int(spec.teacher_params), "train_seconds": train_seconds,
        "epochs": epochs, "steps_per_epoch": steps, "width": args.width,
        "snr_train_db": args.snr_train,
        "labelled_fraction": args.labelled_fraction, "teacher_free": args.no_teacher,
        "alpha": args.alpha,
        "temperature": args.temperature, "beta": args.beta, "seed": args.seed,
        "quick": args.quick, "cache": str(cache), "dataset": spec.dataset,
        "input_shape": list(data.input_shape), "downsample": args.downsample,
    }
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    plot_accuracy_vs_snr({f"student ({args.channel})": sweep}, out / "accuracy_vs_snr.png",
                         reference=teacher_accuracy)
    print(f"wrote {out / 'results.json'} and {out / 'accuracy_vs_snr.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
