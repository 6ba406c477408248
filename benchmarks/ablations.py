"""Which part earns the accuracy: ablations of the student over AWGN, Rayleigh and OFDM.

Variants of the previous default student (``harness.PREVIOUS_STUDENT``,
``conv-w32-h256``, which the committed results were measured with; the
results say so): n = 16, width 32, stochastic encoder with beta 1e-4,
channel-adaptive modules at both ends,
IB distillation with alpha 0.5 and tau 4 from the shipped cache, training SNR
uniform in [-10, 20] dB):

* ``full``: as above;
* ``no-cam``: no channel-adaptive module at either end (identity);
* ``no-noise-input``: the receiver's module sees the SNR but not the
  equalizer's effective noise (Rayleigh and OFDM only: AWGN reports none);
* ``deterministic``: deterministic encoder, beta = 0;
* ``no-distillation``: labels only (alpha = 1);
* ``no-channel``: distilled without a channel (AWGN fixed at 60 dB, where
  the noise is negligible) and then evaluated through the channel;
* ``fixed-10db``: trained at 10 dB only instead of the range.

Channels: ``awgn``; ``rayleigh`` (block fading, LS estimate from 4 pilots,
effective noise to the receiver); ``ofdm-tdl-a`` (``OFDMChannel("tdl-a",
slot="per_example", mapping="spread")``: each example its own slot, the
layout the committed OFDM rows were measured with, before 0.5's shared
slot); ``ofdm-tdl-a-shared`` (``OFDMChannel("tdl-a")``, today's default:
examples share slots, contiguous allocation; not in the committed results
yet). Both with LS/LMMSE estimation and the effective noise.
Validation accuracy (the held-out 5,000 training images) at 0 and 10 dB,
2 channel draws, mean +- std over ``--seeds``; the test split only for the
``full`` row (``--test``). The schedule is shorter than kd_awgn's 30 epochs
(``--epochs``, default 3, the same for every variant). Runs accumulate in the
results file keyed by channel, variant, seed and epochs, so an interrupted run
keeps what it measured and a rerun does only what is missing; a save merges
with what other processes wrote meanwhile (channels can run side by side):
``benchmarks/results/ablations.json`` and ``.png``.

    python -m benchmarks.ablations [--epochs 3] [--seeds 0 1 2] [--channels ...]
        [--variants ...] [--test] [--quick]
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

import tosc_sionna as ts  # noqa: E402
from benchmarks import common, harness  # noqa: E402
from tosc_sionna.data import TeacherCache, TeacherCacheDataset, default_teacher_cache  # noqa: E402

SNRS = [0.0, 10.0]
CHANNELS = {
    "awgn": lambda: ts.AWGNChannel(),
    "rayleigh": lambda: ts.RayleighBlockFadingChannel(csi="ls", num_pilots=4, return_noise=True),
    # the committed rows' layout; the name predates shared slots, so it keeps them
    "ofdm-tdl-a": lambda: ts.OFDMChannel("tdl-a", return_noise=True, slot="per_example",
                                         mapping="spread"),
    "ofdm-tdl-a-shared": lambda: ts.OFDMChannel("tdl-a", return_noise=True),
}
VARIANTS = ("full", "no-cam", "no-noise-input", "deterministic", "no-distillation",
            "no-channel", "fixed-10db")


class NoAdaptation(ts.ChannelAdaptiveModule):
    """The ablated channel-adaptive module: features pass unchanged."""

    def build(self, *shapes):
        self.built = True

    def call(self, features, snr_db, noise=None):
        return features


def train_variant(variant: str, channel: str, num_classes: int, data: TeacherCacheDataset,
                  epochs: int, steps: int, seed: int) -> tuple[ts.TaskOrientedLink, float]:
    """The trained link of one variant, around the channel it is evaluated on."""
    overrides, alpha = {}, 0.5
    if variant == "no-cam":
        overrides = {"tx_cam": NoAdaptation(), "rx_cam": NoAdaptation()}
    elif variant == "no-noise-input":
        overrides = {"rx_cam": ts.ChannelAdaptiveModule(use_noise=False)}
    elif variant == "deterministic":
        overrides = {"stochastic": False}
    elif variant == "no-distillation":
        alpha = 1.0
    elif variant == "fixed-10db":
        overrides = {"snr_train_db": (10.0, 10.0)}
    elif variant == "no-channel":
        overrides = {"snr_train_db": (60.0, 60.0)}
    train_channel = ts.AWGNChannel() if variant == "no-channel" else CHANNELS[channel]()
    # the ablations were measured on the previous default student (results say so)
    link = harness.student(train_channel, num_classes, seed, harness.PREVIOUS_STUDENT,
                           **overrides)
    seconds = harness.fit(link, data, epochs, steps, alpha=alpha)
    if variant == "no-channel":
        link = harness.relink(link, CHANNELS[channel]())
    return link, seconds


def plot(results: dict, path: Path) -> None:
    channels = [c for c in CHANNELS if c in results["runs"]]
    with common.figure(path, ncols=len(channels), figsize=(5.5 * len(channels), 4.2),
                       squeeze=False, sharey=True) as (_, axes):
        draw(results, channels, axes)


def draw(results: dict, channels: list[str], axes) -> None:
    for ax, channel in zip(axes[0], channels, strict=True):
        runs = results["runs"][channel]
        names = [v for v in VARIANTS if runs.get(v)]
        for i, snr in enumerate(SNRS):
            acc = [np.array([r["val_accuracy"][i] for r in runs[v]]) for v in names]
            ax.bar(np.arange(len(names)) + (i - 0.5) * 0.38, [a.mean() for a in acc], 0.38,
                   yerr=[a.std(ddof=1) if len(a) > 1 else 0 for a in acc],
                   label=f"{snr:g} dB", capsize=2)
        ax.set_xticks(range(len(names)), names, rotation=35, ha="right", fontsize=8)
        ax.set_title(channel)
        ax.set_ylim(0.5, 1.0)
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel("validation accuracy (mean +- std over seeds)")
    axes[0][0].legend()


def main(argv: list[str] | None = None) -> int:
    parser = common.parser(
        __doc__, quick="CI subset: AWGN, full vs no-cam, 1 seed of 20 steps, 300 images",
        seeds=[0, 1, 2], epochs=3, out=common.RESULTS)
    parser.add_argument("--channels", nargs="+", choices=list(CHANNELS), default=list(CHANNELS))
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--test", action="store_true", help="test split for the full student")
    args = parser.parse_args(argv)
    if args.epochs < 1:
        print(f"error: --epochs must be >= 1; got {args.epochs}", file=sys.stderr)
        return 2
    cache = TeacherCache(default_teacher_cache())
    split = harness.splits(cache, test=args.test, limit=300 if args.quick else None)
    steps, draws = split["steps"], 2
    if args.quick:
        steps, draws, args.epochs, args.seeds = 20, 1, 1, args.seeds[:1]
        args.channels, args.variants = ["awgn"], ["full", "no-cam"]

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / ("ablations_quick.json" if args.quick else "ablations.json")
    results = json.loads(path.read_text()) if path.exists() else {
        "benchmark": "ablations", "snr_db": SNRS, "val_images": len(split["y_val"]),
        "draws": draws, "runs": {}}
    results["student"] = harness.PREVIOUS_STUDENT  # deliberately not the default: see harness
    written: set[tuple] = set()  # (channel, variant, seed, epochs) measured by this process

    def merge(on_disk: dict) -> None:
        for channel, variants in on_disk.get("runs", {}).items():
            for variant, theirs in variants.items():
                mine = results["runs"].setdefault(channel, {}).setdefault(variant, [])
                results["runs"][channel][variant] = common.merge_runs(
                    mine, theirs, written,
                    lambda r, c=channel, v=variant: (c, v, r["seed"], r["epochs"]))

    for seed in args.seeds:
        for channel in args.channels:
            for variant in args.variants:
                if variant == "no-noise-input" and channel == "awgn":
                    continue  # AWGN reports no effective noise: the same student as full
                runs = results["runs"].setdefault(channel, {}).setdefault(variant, [])
                test = args.test and variant == "full"
                done = next((r for r in runs if (r["seed"], r["epochs"])
                             == (seed, args.epochs)), None)
                if done is not None and (done["test_accuracy"] or not test):
                    continue
                data = TeacherCacheDataset(cache, seed=seed, rows=split["train_rows"])
                link, seconds = train_variant(variant, channel, cache.num_classes, data,
                                              args.epochs, steps, seed)
                val, test_accuracy = harness.evaluate(link, split, SNRS, draws, seed, test)
                run = {"seed": seed, "epochs": args.epochs, "steps_per_epoch": steps,
                       "train_seconds": seconds, "val_accuracy": val,
                       "test_accuracy": test_accuracy}
                if done is not None:
                    runs.remove(done)
                runs.append(run)
                written.add((channel, variant, seed, args.epochs))
                common.save_merged(path, results, merge, common.run_provenance(argv, __name__))
                plot(results, path.with_suffix(".png"))
                print(f"{channel:<11} {variant:<16} seed {seed}: val {val}"
                      f" ({seconds:.0f} s)", flush=True)
    print(f"wrote {path} and {path.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
