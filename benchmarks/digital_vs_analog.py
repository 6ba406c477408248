"""Analog semantic link vs the digital baseline (quantize, 5G LDPC, QAM) at equal bandwidth.

For n = 16 and n = 64 complex channel uses per image (plus 4 pilots over
Rayleigh with LS estimation, the same for both links):

* **analog**: the distilled student (the ``conv-w32-h256`` preset, width 32, stochastic
  encoder sending its mean, channel-adaptive modules) sending 2n reals as n
  uncoded complex symbols, trained over the channel it is evaluated on
  (AWGN, or block Rayleigh with LS CSI and the effective noise at the receiver);
* **digital**: the same student architecture sending k reals, trained with
  the b-bit quantizer in the loop (straight-through estimator) and no
  channel errors (the separation assumption: the code delivers the bits),
  then evaluated through :class:`~tosc_sionna.DigitalChannel` (clip,
  quantize, one 5G LDPC codeword, M-QAM, AWGN or block Rayleigh with LS CSI
  and ZF, soft demapping, 20 BP iterations, dequantize) at operating points
  (b, r, M) that spend exactly n channel uses;
* **class index**: the analog student classifies at the transmitter
  (noise-free) and sends the 4-bit class index, zero-padded to the 12-bit
  5G LDPC minimum, with LDPC + QPSK at the lowest rate that fits n
  (n = 16: rate 3/8, all 16 uses; n = 64: rate 1/5, the 5G minimum, 30 uses).

All students: the shipped Fashion-MNIST cache (EfficientNet-Lite0 teacher),
IB distillation loss (alpha 0.5, tau 4, beta 1e-4), training SNR uniform in
[-10, 20] dB, Adam with cosine decay from 2e-3, 5,000 training images held
out (never trained on), one training seed. The schedule is shorter than
kd_awgn's 30 epochs (``--epochs``, default 5) and the same for every
student. Accuracy on the whole test split at SNR -10..20 dB in 2.5 dB steps,
one channel draw per image (an independent fade and noise per image), with
95% Wilson intervals over the images.

The "cliff" of a curve is the lowest SNR from which its accuracy stays
within 1 point of the link's error-free accuracy (a digital link's AWGN
accuracy at 20 dB; an analog student's own 20 dB accuracy;
linear interpolation between grid points; none if not reached by 20 dB);
``analog_vs_digital`` gives analog minus the best digital point per SNR.
``--summarize FILE`` recomputes both for a results file. Results are written
as they are measured, so an interrupted run keeps what it has:
``benchmarks/results/digital_vs_analog.json`` and ``digital_vs_analog.png``.
Runs on either Sionna line (the results' provenance says which line measured).

    python -m benchmarks.digital_vs_analog [--epochs 5] [--quick] [--out DIR]
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tosc_sionna as ts  # noqa: E402  (before Keras: it picks Keras' backend from the line)

# isort: split
import keras  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks import common, harness  # noqa: E402
from benchmarks.common import backend  # noqa: E402
from tosc_sionna.data import TeacherCache, TeacherCacheDataset, default_teacher_cache  # noqa: E402
from tosc_sionna.evaluation import accuracy_vs_snr  # noqa: E402

NUM_PILOTS = 4
CHANNELS = ("awgn", "rayleigh")
#: Operating points (b bits per value, LDPC rate r, QAM order M, k values) per n:
#: each spends exactly n complex channel uses (checked against DigitalChannel).
OPERATING_POINTS = {
    16: [(2, 1 / 2, 4, 8), (2, 1 / 2, 16, 16), (4, 2 / 3, 64, 16)],
    64: [(4, 1 / 2, 4, 16), (4, 1 / 2, 16, 32), (4, 3 / 4, 64, 72)],
}
#: Class-index reference: code rate per n (12 info bits -> 2 n coded QPSK bits, >= 1/5).
INDEX_RATE = {16: 12 / 32, 64: 1 / 5}
#: Clip of the b-bit uniform quantizer, in units of the std of one real after
#: power normalization (1/sqrt 2): Max's (1960) step for a Gaussian times 2^(b-1).
CLIP_SIGMAS = {1: 1.596, 2: 1.992, 3: 2.344, 4: 2.680, 5: 3.008, 6: 3.328}


class QuantizerInTheLoop(ts.DigitalChannel):
    """Training stand-in for the digital link: clip + quantize with the straight-through
    gradient and no channel errors (what the LDPC code delivers above its cliff)."""

    def call(self, x, snr_db):
        x = keras.ops.cast(x, "float32")
        return x + keras.ops.stop_gradient(self.quantize_values(x) - x)


def digital_channel(b: int, r: float, m: int, channel: str, **kwargs) -> ts.DigitalChannel:
    clip = CLIP_SIGMAS[b] / np.sqrt(2.0)
    fading = {"csi": "ls", "num_pilots": NUM_PILOTS} if channel == "rayleigh" else {}
    return ts.DigitalChannel(num_bits=b, clip=clip, code_rate=r, modulation_order=m,
                             channel=channel, **fading, **kwargs)


def analog_channel(channel: str) -> keras.layers.Layer:
    if channel == "awgn":
        return ts.AWGNChannel()
    return ts.RayleighBlockFadingChannel(csi="ls", num_pilots=NUM_PILOTS, return_noise=True)


def train(channel: keras.layers.Layer, num_symbols: int, data: TeacherCacheDataset,
          epochs: int, steps: int, seed: int) -> tuple[ts.TaskOrientedLink, float]:
    # measured on the previous default student (the results say so)
    link = harness.student(channel, data.cache.spec.num_classes, seed, harness.PREVIOUS_STUDENT,
                           num_symbols=num_symbols)
    return link, harness.fit(link, data, epochs, steps)


def cliff_db(snrs: list[float], accuracy: list[float], within: float = 0.01,
             reference: float | None = None) -> float | None:
    """Lowest SNR from which the accuracy stays within ``within`` of ``reference``
    (default: its value at the top SNR); None if it is not there at the top SNR."""
    top = (accuracy[-1] if reference is None else reference) - within
    if accuracy[-1] < top:
        return None
    i = len(accuracy) - 1
    while i > 0 and accuracy[i - 1] >= top:
        i -= 1
    if i == 0:
        return snrs[0]
    a0, a1 = accuracy[i - 1], accuracy[i]
    return float(snrs[i - 1] + (top - a0) / (a1 - a0) * (snrs[i] - snrs[i - 1]))


def summarize(results: dict) -> dict:
    """Cliffs against each link's error-free accuracy, and analog minus the best digital point.

    A digital (or class-index) link's error-free accuracy is its accuracy over
    AWGN at the top SNR (the code decodes every codeword there; the same
    student serves both channels), so a Rayleigh curve that has not recovered
    by 20 dB has no cliff in range (None) instead of one at its own low top.
    An analog student is trained for its channel: its reference is its own
    accuracy at the top SNR.
    """
    curves = results["curves"]

    def link(c: dict) -> tuple:
        return (c["kind"], c["n"], c.get("num_bits"), c.get("code_rate"),
                c.get("modulation_order"))

    for c in curves:
        # an analog student is trained per channel: its own top SNR is its error-free level
        awgn = c if c["kind"] == "analog" else next(
            (a for a in curves if a["channel"] == "awgn" and link(a) == link(c)), c)
        c["error_free_accuracy"] = awgn["accuracy"][-1]
        c["cliff_db"] = cliff_db(c["snr_db"], c["accuracy"], reference=awgn["accuracy"][-1])
    margins = {}
    for n in sorted({c["n"] for c in curves}):
        for channel in CHANNELS:
            here = [c for c in curves if (c["n"], c["channel"]) == (n, channel)]
            analog = next((c for c in here if c["kind"] == "analog"), None)
            digital = [c for c in here if c["kind"] == "digital"]
            if analog is None or not digital:
                continue
            best = np.max([c["accuracy"] for c in digital], axis=0)
            margins[f"n={n} {channel}"] = {
                "snr_db": analog["snr_db"],
                "analog_minus_best_digital": (np.array(analog["accuracy"]) - best).tolist(),
                "analog_ahead_at_db": [s for s, d in zip(analog["snr_db"],
                                                         np.array(analog["accuracy"]) - best,
                                                         strict=True) if d > 0.005]}
    results["analog_vs_digital"] = margins
    results["cliff_definition"] = ("lowest SNR from which accuracy stays within 1 point of the "
                                   "link's error-free accuracy (digital and index: its AWGN "
                                   "accuracy at 20 dB; analog, trained per channel: its own "
                                   "20 dB accuracy), interpolated; None: not reached by 20 dB")
    return results


def index_sweep(predictions: np.ndarray, labels: np.ndarray, n: int, channel: str,
                snrs: list[float], batch: int = 2000) -> dict:
    """Accuracy of sending the predicted class index with LDPC + QPSK."""
    layer = ts.DigitalChannel(num_bits=4, clip=8.0, code_rate=INDEX_RATE[n], modulation_order=4,
                              channel=channel,
                              **({"csi": "ls", "num_pilots": NUM_PILOTS}
                                 if channel == "rayleigh" else {}))
    # index c -> value c - 7.5 (cell c of the 16 cells of width 1 on [-8, 8]); 2 zero values pad
    # the 4 bits to 12 (a real system would shorten the code with known filler bits)
    values = np.zeros((len(predictions), 3), np.float32)
    values[:, 0] = predictions - 7.5
    send = backend.compiled(lambda v, snr: layer(v, snr_db=snr))
    accuracy = []
    for snr in snrs:
        decoded = np.concatenate([
            backend.to_numpy(send(backend.tensor(values[i:i + batch]), backend.tensor(snr)))[:, 0]
            for i in range(0, len(values), batch)])
        accuracy.append(float(np.mean(np.round(decoded + 7.5).astype(np.int64) == labels)))
    return {"snr_db": snrs, "accuracy": accuracy, "channel_uses": layer.channel_uses,
            "effective_code_rate": layer.effective_code_rate,
            "clean_accuracy": float(np.mean(predictions == labels))}


def plot(results: dict, path: Path) -> None:
    ns = sorted({c["n"] for c in results["curves"]})
    with common.figure(path, nrows=len(CHANNELS), ncols=len(ns), squeeze=False, sharey=True,
                       figsize=(6.2 * len(ns), 4.4 * len(CHANNELS))) as (_, axes):
        draw(results, ns, axes)


def draw(results: dict, ns: list[int], axes) -> None:
    for row, channel in enumerate(CHANNELS):
        for col, n in enumerate(ns):
            ax = axes[row][col]
            for c in results["curves"]:
                if c["n"] != n or c["channel"] != channel:
                    continue
                style = {"analog": "-", "digital": "--", "index": ":"}[c["kind"]]
                ax.plot(c["snr_db"], c["accuracy"], style, marker="o", markersize=3,
                        label=c["label"])
            ax.axhline(results["teacher_accuracy"], color="grey", lw=0.8,
                       label="teacher (clean)")
            ax.set_title(f"{channel.upper() if channel == 'awgn' else 'Rayleigh (LS)'}, "
                         f"n = {n} channel uses")
            ax.set_xlabel("SNR (Es/N0 per channel use) [dB]")
            ax.set_ylabel("test accuracy")
            ax.set_ylim(0.0, 1.0)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7, loc="lower right")


def main(argv: list[str] | None = None) -> int:
    parser = common.parser(
        __doc__, quick="smoke run: 60 steps, n = 16 only, 1,000 test images, 4 SNRs",
        epochs=5, out=common.RESULTS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--summarize", metavar="FILE", default=None,
                        help="only recompute the cliffs and margins of a results file (and "
                             "its plot)")
    args = parser.parse_args(argv)
    if args.summarize:
        path = Path(args.summarize)
        results = summarize(json.loads(path.read_text()))
        # the run's provenance kept as earlier_provenance
        common.save_merged(path, results, record=common.run_provenance(argv, __name__))
        plot(results, path.with_suffix(".png"))
        print(json.dumps(results["analog_vs_digital"], indent=1))
        return 0
    if args.epochs < 1:
        print(f"error: --epochs must be >= 1; got {args.epochs}", file=sys.stderr)
        return 2

    ts.set_seed(args.seed)
    cache = TeacherCache(default_teacher_cache())
    split = harness.splits(cache)
    data = TeacherCacheDataset(cache, batch_size=128, seed=args.seed, rows=split["train_rows"])
    x_test, y_test = split["x_test"], split["y_test"]
    steps = len(data)
    ns = list(OPERATING_POINTS)
    points = OPERATING_POINTS
    snrs = list(np.arange(-10.0, 20.01, 2.5))
    if args.quick:
        steps, ns, snrs, args.epochs = 60, [16], [-5.0, 5.0, 10.0, 20.0], 1
        points = {16: OPERATING_POINTS[16][:1]}
        x_test, y_test = x_test[:1000], y_test[:1000]
    for n in ns:  # every operating point spends exactly n data channel uses
        for b, r, m, k in points[n]:
            uses = digital_channel(b, r, m, "awgn").code_parameters(k)["channel_uses"]
            assert uses == n, (n, b, r, m, k, uses)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = "digital_vs_analog_quick" if args.quick else "digital_vs_analog"
    results = {
        "benchmark": "digital_vs_analog", "quick": args.quick, "epochs": args.epochs,
        "steps_per_epoch": steps, "seed": args.seed, "snr_db": snrs,
        "test_images": len(y_test), "draws": 1, "num_pilots_rayleigh": NUM_PILOTS,
        "teacher_accuracy": float(cache.attrs.get("teacher_test_accuracy", float("nan"))),
        "student": harness.PREVIOUS_STUDENT,  # deliberately not the default: see harness
        "curves": [],
    }

    def record(curve: dict) -> None:
        curve["cliff_db"] = cliff_db(curve["snr_db"], curve["accuracy"])
        results["curves"].append(curve)
        summarize(results)
        common.write_results(out / f"{name}.json", results, argv, __name__)
        print(f"{curve['label']:<44} n={curve['n']:<3} {curve['channel']:<8} "
              + " ".join(f"{a:.3f}" for a in curve["accuracy"]), flush=True)

    def sweep(link: ts.TaskOrientedLink) -> dict:
        s = accuracy_vs_snr(link, x_test, y_test, snrs, draws=1, batch_size=2000)
        return {k: s[k] for k in ("snr_db", "accuracy", "accuracy_ci95")}

    digital_students: dict[tuple[int, int], tuple[ts.TaskOrientedLink, float]] = {}
    for n in ns:
        for channel in CHANNELS:
            analog, seconds = train(analog_channel(channel), n, data, args.epochs, steps, args.seed)
            record({"kind": "analog", "n": n, "channel": channel, "label": f"analog, {n} symbols",
                    "channel_uses": n + (NUM_PILOTS if channel == "rayleigh" else 0),
                    "train_seconds": seconds, **sweep(analog)})
            if channel == "awgn":  # the transmitter-side classifier of the index reference
                analog.set_eval_snr(60.0)
                predictions = np.argmax(analog.predict(x_test, batch_size=2000, verbose=0), -1)
            curve = index_sweep(predictions, y_test, n, channel, snrs)
            record({"kind": "index", "n": n, "channel": channel,
                    "label": f"class index, LDPC r={curve['effective_code_rate']:.3g} + QPSK "
                             f"({curve['channel_uses']} uses)", **curve})
        for b, r, m, k in points[n]:
            if (b, k) not in digital_students:  # the quantizer is all training sees
                ts.set_seed(args.seed)
                digital_students[(b, k)] = train(
                    QuantizerInTheLoop(num_bits=b, clip=CLIP_SIGMAS[b] / np.sqrt(2.0)),
                    k // 2, data, args.epochs, steps, args.seed)
            student, seconds = digital_students[(b, k)]
            for channel in CHANNELS:
                layer = digital_channel(b, r, m, channel)
                link = harness.relink(student, layer)
                ts.set_seed(args.seed)
                curve = sweep(link)
                record({"kind": "digital", "n": n, "channel": channel,
                        "label": f"digital b={b} r={r:.3g} {m}-QAM (k={k})",
                        "num_bits": b, "code_rate": r, "modulation_order": m, "num_values": k,
                        "effective_code_rate": layer.effective_code_rate,
                        "channel_uses": layer.channel_uses, "clip": layer.clip,
                        "train_seconds": seconds, **curve})
        plot(results, out / f"{name}.png")
    print(f"wrote {out / (name + '.json')} and {out / (name + '.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
