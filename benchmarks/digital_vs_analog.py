"""Analog semantic link vs the digital baseline at its best and the finite-blocklength limit.

For n = 16 and n = 64 complex data channel uses per image (plus 4 pilots over
Rayleigh with LS estimation, the same for both links):

* **analog**: the distilled student (the ``conv-w32-h256`` preset, width 32, stochastic
  encoder sending its mean, channel-adaptive modules) sending 2n reals as n
  uncoded complex symbols, trained over the channel it is evaluated on
  (AWGN, or block Rayleigh with LS CSI and the effective noise at the receiver);
* **digital, searched**: the same student architecture sending k reals, trained with
  the b-bit quantizer in the loop (straight-through estimator) and no
  channel errors (the separation assumption: the code delivers the bits),
  then evaluated through :class:`~tosc_sionna.DigitalChannel` (clip,
  quantize, one 5G LDPC codeword, repetition below rate 1/5 and shortening
  below 12 bits, the 5G output interleaver, M-QAM, AWGN or block Rayleigh
  with LS CSI and ZF, soft demapping, 20 BP iterations, dequantize; no CRC:
  a wrong value reaches the student's decoder as noise, while a CRC would
  cost rate and erase the whole example). Every point of
  :data:`SEARCH_SPACE` (b bits per value, k values, M-QAM) whose code rate
  ``r = k b / (n log2 M)`` makes it spend exactly n data channel uses and
  lies in 5G's [30/1024, 948/1024] is evaluated on validation images
  (``--val-images``, default 2,000: a seeded subset of the 5,000 held-out
  training images, the same for every point); per n, channel and SNR the
  point best on **validation** is chosen (ties go to the first point in
  search order) and its **test** accuracy reported
  (``digital_search[n].best_on_validation``). Only the (point, channel)
  pairs chosen at some SNR are evaluated on the test split, at every SNR
  (complete curves); the others keep ``test_accuracy: null``. 2,000
  validation images resolve an accuracy to about +-1 point (95%), which can
  only make the selection pick a slightly worse point: the reported test
  numbers are still measured on images and channel draws the selection never
  saw (:func:`benchmarks.harness.evaluate_test` seeds its own draws). A
  student depends on (b, k) only, so one student serves every M and both n;
* **class index**: the analog AWGN student classifies at the transmitter
  (noise-free) and sends the 4-bit class index as a shortened 5G LDPC
  codeword (8 known filler bits) with QPSK at the rate that fills n
  (n = 16: rate 1/8; n = 64: rate 1/32, the rate-1/5 mother codeword
  repeated);
* **finite-blocklength limit** (``finite_blocklength[n][channel]``): the
  best any code could do for "classify at the transmitter, send the
  decision": ``log2 C`` bits (C classes) over n data uses at the class
  index's clean accuracy, a decoding error giving a random class, from the
  normal approximation of :mod:`tosc_sionna.finite_blocklength` (AWGN, and
  its quasi-static average over the Rayleigh fade), with and without the
  ``1/2 log2 n`` term (the two bracket the limit); pilots are not part of
  the bound. Drawn as the "ideal code" band.

All students: the shipped Fashion-MNIST cache (EfficientNet-Lite0 teacher),
IB distillation loss (alpha 0.5, tau 4, beta 1e-4), training SNR uniform in
[-10, 20] dB, Adam with cosine decay from 2e-3, 5,000 training images held
out for validation (never trained on), one training seed. The schedule is
shorter than kd_awgn's 30 epochs (``--epochs``, default 5) and the same for
every student. Accuracy at SNR -10..20 dB in 2.5 dB steps, one channel draw
per image (an independent fade and noise per image); the analog and index
curves over the whole test split with 95% Wilson intervals.

The "cliff" of an analog or index curve is the lowest SNR from which its
accuracy stays within 1 point of the link's error-free accuracy (the index
link's AWGN accuracy at 20 dB; an analog student's own 20 dB accuracy;
linear interpolation between grid points; none if not reached by 20 dB).
``analog_vs_digital`` gives, per n, channel and SNR, analog minus the best
digital point on validation (test accuracy) and analog minus the limit.
``--summarize FILE`` recomputes them for a results file. Results are written
as they are measured, so an interrupted run keeps what it has:
``benchmarks/results/digital_vs_analog.json`` and ``digital_vs_analog.png``.
A rerun **resumes** from that file when it was measured with the same
settings (:data:`RESUME_KEYS`: seed, epochs, validation images, SNRs, ...):
an n whose analog and index curves are there is not measured again, a point
with its validation numbers is not evaluated again, a chosen pair with its
test numbers not tested again, and only the students still needed are
trained (each from a fresh data order: retrained for a test pass on the same
machine, Sionna line and number of CPUs, a student is the one its validation
numbers came from, as a quick run resumed from a file lacking one point and
one test reproduced to the last digit; on another number of CPUs the thread
pools sum in another order and the weights differ in their last digits, so
``cpu_threads`` is a resume key).
Delete the file, or pass other settings, to start over (a student checkpoint serves
only a run that resumes, with the settings and on the Sionna line that trained it).
Runs on either Sionna line (the results' provenance says which line measured).

**Cost of the full run.** The search holds 73 points at n = 16 and 124 at
n = 64 (87 below rate 1/5), from 49 distinct (b, k) students; with the 4
analog students that is 53 students x 5 epochs x 430 steps (about 5-8 minutes
a student on 2 CPU cores: 5-7 hours). Decoding, measured at 0.4-0.6 ms a
codeword at n = 16 and 1-2 ms at n = 64 on 2 shared CPU cores (batches of
1,000):

* validation, every point: 2 channels x 13 SNRs x 2,000 images = 52,000
  codewords a point; n = 16: 73 x 52,000 = 3.8 million (0.4-0.6 h),
  n = 64: 124 x 52,000 = 6.4 million (1.8-3.6 h);
* test, the chosen pairs: at most 13 distinct points (one per SNR) per n and
  channel, so at most 26 pairs per n x 13 SNRs x 10,000 images = 3.4 million
  codewords per n (n = 16: 0.4-0.6 h, n = 64: 0.9-1.9 h); fewer where a
  point wins at several SNRs;

at most 17 million codewords and 3.5-6.7 hours of decoding (10.2 million and
2.2-4.2 hours for validation, the test pass at most 6.8 million and 1.3-2.4
hours), against 77 million codewords and 17-31 hours when every point was
also evaluated on the test split and on all 5,000 validation images. With
training, 9-14 hours on this machine (a GPU shortens the decoding), and an
interrupted run resumes: every trained digital student is kept in
``digital_vs_analog_students/`` beside the results (weights and the settings
that trained them; not committed), so a resumed run, or the test pass and
n = 64 after a restart, reloads it instead of training it again.
``--quick`` (n = 16, two points from one student, 60 steps, 1,000 validation
and test images, 4 SNRs) takes a minute or two and writes the same structure.

    python -m benchmarks.digital_vs_analog [--epochs 5] [--val-images 2000] [--quick]
                                           [--out DIR]
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tosc_sionna as ts  # noqa: E402  (before Keras: it picks Keras' backend from the line)

# isort: split
import keras  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks import common, harness  # noqa: E402
from benchmarks.common import backend  # noqa: E402
from tosc_sionna import finite_blocklength as fbl  # noqa: E402
from tosc_sionna.channels.digital import (  # noqa: E402
    LDPC5G_RATE_MAX,
    LDPC5G_RATE_MIN,
    LDPC5G_RATE_MIN_REPEATED,
)
from tosc_sionna.data import TeacherCache, TeacherCacheDataset, default_teacher_cache  # noqa: E402
from tosc_sionna.evaluation import accuracy_vs_snr  # noqa: E402

NUM_PILOTS = 4
CHANNELS = ("awgn", "rayleigh")
#: Data channel uses per image.
NS = (16, 64)
#: The digital operating points searched for each n: every (b bits per value, k values,
#: M-QAM) whose code rate r = k b / (n log2 M) lies in [30/1024, 948/1024] (5G NR's range:
#: repetition below 1/5, shortening below 12 bits). k is even: the student sends k reals
#: as k / 2 complex symbols.
SEARCH_SPACE = {
    "num_bits": (1, 2, 3, 4, 6),
    "num_values": (4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128),
    "modulation_order": (4, 16, 64),
}
#: --quick: two points of one student at n = 16, one shortened (8 bits, rate 1/4) and one
#: shortened and repeated (rate 1/8 over 16-QAM)
QUICK_POINTS = {16: [(2, 4, 4), (2, 4, 16)]}
#: The class-index reference sends log2(16) = 4 bits (room for up to 16 classes).
INDEX_BITS = 4
#: Clip of the b-bit uniform quantizer, in units of the std of one real after
#: power normalization (1/sqrt 2): Max's (1960) step for a Gaussian times 2^(b-1).
CLIP_SIGMAS = {1: 1.596, 2: 1.992, 3: 2.344, 4: 2.680, 5: 3.008, 6: 3.328}
#: Validation images every searched point is evaluated on (--val-images; +-1 point at 95%
#: is enough to choose among points, the reported numbers are the test split's), and the
#: seed of their subset of the held-out images.
VAL_IMAGES, VAL_SUBSET_SEED = 2000, 0
#: The settings a results file must share with a run for the run to resume from it.
RESUME_KEYS = ("benchmark", "quick", "epochs", "steps_per_epoch", "seed", "snr_db", "draws",
               "test_images", "validation_images", "validation_subset_seed",
               "num_pilots_rayleigh", "student", "cpu_threads")
#: Resume keys added after results files were written: a file without one still resumes.
#: ``cpu_threads``: the CPUs the process may use, which size the thread pools and so the order
#: of floating-point sums: a student retrained on another count is not the same student (a
#: thread setting such as ``OMP_NUM_THREADS`` does the same and is not recorded: keep it). A
#: resumed file without the key gets this run's count, though its first students may not
#: have been trained on it.
LATER_RESUME_KEYS = ("cpu_threads",)
#: ``evaluate(entry, channel, split)``: a searched point's accuracy at the run's SNRs over
#: ``channel`` on the "validation" or the "test" split
Evaluate = Callable[[dict, str, str], list[float]]


class QuantizerInTheLoop(ts.DigitalChannel):
    """Training stand-in for the digital link: clip + quantize with the straight-through
    gradient and no channel errors (what the LDPC code delivers above its cliff)."""

    def call(self, x, snr_db):
        x = keras.ops.cast(x, "float32")
        return x + keras.ops.stop_gradient(self.quantize_values(x) - x)


def cpu_threads() -> int:
    """The CPUs this process may use (its affinity where the OS has one), which size
    TensorFlow's and torch's thread pools unless a thread setting overrides them."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def digital_channel(b: int, r: float, m: int, channel: str, **kwargs) -> ts.DigitalChannel:
    clip = CLIP_SIGMAS[b] / np.sqrt(2.0)
    fading = {"csi": "ls", "num_pilots": NUM_PILOTS} if channel == "rayleigh" else {}
    return ts.DigitalChannel(num_bits=b, clip=clip, code_rate=r, modulation_order=m,
                             channel=channel, **fading, **kwargs)


def code_rate(n: int, b: int, k: int, m: int) -> float:
    """The rate at which k b-bit values fill exactly n M-QAM symbols."""
    return k * b / (n * int(round(np.log2(m))))


def search_points(n: int) -> list[dict]:
    """The operating points of :data:`SEARCH_SPACE` that spend exactly n data channel uses
    at a 5G code rate, in search order (b, then k, then M); sizes from
    :meth:`~tosc_sionna.DigitalChannel.code_parameters` (no Sionna object built)."""
    points = []
    for b in SEARCH_SPACE["num_bits"]:
        for k in SEARCH_SPACE["num_values"]:
            for m in SEARCH_SPACE["modulation_order"]:
                r = code_rate(n, b, k, m)
                if not (LDPC5G_RATE_MIN_REPEATED <= r <= LDPC5G_RATE_MAX and k * b >= 1):
                    continue
                params = digital_channel(b, r, m, "awgn").code_parameters(k)
                points.append({"num_bits": b, "num_values": k, "modulation_order": m,
                               "code_rate": r, "below_one_fifth": r < LDPC5G_RATE_MIN,
                               "filler_bits": params["filler_bits"],
                               "channel_uses": params["channel_uses"],
                               "channel_uses_rayleigh": n + NUM_PILOTS})
    return points


def point_label(point: dict) -> str:
    return (f"b={point['num_bits']} k={point['num_values']} {point['modulation_order']}-QAM "
            f"r={point['code_rate']:.3g}")


def point_key(point: dict) -> tuple[int, int, int]:
    return point["num_bits"], point["num_values"], point["modulation_order"]


def best_on_validation(points: list[dict], channel: str) -> np.ndarray:
    """Per SNR, the index of the point with the best validation accuracy over ``channel``
    (the first in search order on ties)."""
    return np.argmax([p[channel]["val_accuracy"] for p in points], axis=0)


def select_on_validation(points: list[dict], channel: str, snrs: list[float]) -> dict:
    """Per SNR, the point with the best validation accuracy over ``channel`` (the first in
    search order on ties) and its test accuracy (which only the chosen points have)."""
    best = best_on_validation(points, channel)
    return {"snr_db": list(snrs),
            "point": [{key: points[i][key] for key in
                       ("num_bits", "num_values", "modulation_order", "code_rate")}
                      for i in best],
            "label": [point_label(points[i]) for i in best],
            "val_accuracy": [points[i][channel]["val_accuracy"][j] for j, i in enumerate(best)],
            "test_accuracy": [points[i][channel]["test_accuracy"][j]
                              for j, i in enumerate(best)]}


def chosen_pairs(points: list[dict]) -> list[tuple[int, str]]:
    """The distinct (point index, channel) pairs chosen on validation at some SNR: those the
    test pass evaluates, in search order, AWGN first."""
    chosen = {(int(i), channel) for channel in CHANNELS
              for i in best_on_validation(points, channel)}
    return sorted(chosen, key=lambda pair: (pair[0], CHANNELS.index(pair[1])))


def run_search(points: list[dict], snrs: list[float], evaluate: Evaluate, search: dict,
               save: Callable[[], None]) -> dict:
    """The search at one n: every point of ``points`` (in search order) on validation, then
    on the test split only the (point, channel) pairs chosen at some SNR, and the choice.

    ``search`` is the ``digital_search[n]`` entry being written (``points``,
    ``best_on_validation``), possibly a resumed run's: a point it holds with validation
    numbers is not evaluated again, a pair with test numbers not tested again. ``save`` is
    called after each measurement. Returns ``search``, its points in search order.
    """
    done = {point_key(e): e for e in search["points"] if all(c in e for c in CHANNELS)}
    for point in points:
        if point_key(point) in done:
            continue
        entry = {**point, "label": point_label(point), "snr_db": list(snrs)}
        for channel in CHANNELS:
            entry[channel] = {"val_accuracy": evaluate(entry, channel, "validation"),
                              "test_accuracy": None}  # measured only if chosen
        # appended: a resumed file's points not reached yet stay in the file meanwhile
        search["points"].append(done.setdefault(point_key(point), entry))
        save()
        print(f"{entry['label']:<40} n={point['channel_uses']:<3} validation "
              + " | ".join(f"{c}: " + " ".join(f"{a:.3f}" for a in entry[c]["val_accuracy"])
                           for c in CHANNELS), flush=True)
    # search order: it breaks ties (a point outside the search space is dropped)
    search["points"] = [done[point_key(p)] for p in points]
    for i, channel in chosen_pairs(search["points"]):
        entry = search["points"][i]
        if entry[channel]["test_accuracy"] is None:
            entry[channel]["test_accuracy"] = evaluate(entry, channel, "test")
            save()
            print(f"{entry['label']:<40} {channel:<8} test "
                  + " ".join(f"{a:.3f}" for a in entry[channel]["test_accuracy"]), flush=True)
    search["best_on_validation"] = {channel: select_on_validation(search["points"], channel,
                                                                  snrs)
                                    for channel in CHANNELS}
    save()
    return search


def validation_subset(num_held_out: int, num_images: int,
                      seed: int = VAL_SUBSET_SEED) -> np.ndarray:
    """Sorted indices of the ``num_images`` held-out images every searched point is
    evaluated on: a seeded draw, the same for every point and every run (a smaller subset
    lies inside a larger one: both are a prefix of the same permutation)."""
    if not 1 <= num_images <= num_held_out:
        raise ValueError(f"cannot take {num_images} validation images of {num_held_out}.")
    # a stream of its own, not split_rows' (which drew the held-out rows with seed 0)
    return np.sort(np.random.default_rng([int(seed), 2**32 - 2]).permutation(
        num_held_out)[:num_images])


def resumable(path: Path, results: dict) -> dict:
    """The results file at ``path`` if a run with ``results``' settings can resume from it
    (the same :data:`RESUME_KEYS`), else an empty dict."""
    if not path.exists():
        return {}
    prior = json.loads(path.read_text())
    differ = [key for key in RESUME_KEYS if prior.get(key) != results[key]
              and not (key in LATER_RESUME_KEYS and key not in prior)]
    if differ:
        print(f"{path} was measured with other settings ({', '.join(differ)}): starting over",
              flush=True)
        return {}
    print(f"resuming from {path}", flush=True)
    return prior


def bound_entry(n: int, channel: str, snrs: list[float], clean_accuracy: float,
                num_classes: int) -> dict:
    """The finite-blocklength limit of classify-then-send: log2(num_classes) bits over n data
    uses, with and without the 1/2 log2 n term, and the task accuracy it allows."""
    bits = float(np.log2(num_classes))
    error = fbl.awgn_block_error if channel == "awgn" else fbl.rayleigh_block_error
    entry = {"snr_db": list(snrs), "n": n, "bits": bits, "num_classes": num_classes,
             "clean_accuracy": clean_accuracy}
    for suffix, log_term in (("", True), ("_no_log_term", False)):
        eps = error(n, bits, snrs, log_term=log_term)
        entry[f"block_error{suffix}"] = np.asarray(eps).tolist()
        entry[f"accuracy{suffix}"] = fbl.classify_then_send_accuracy(
            clean_accuracy, num_classes, eps).tolist()
    return entry


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


def student_checkpoint(stem: Path, settings: dict,
                       build: Callable[[], ts.TaskOrientedLink],
                       fit: Callable[[ts.TaskOrientedLink], float],
                       probe: np.ndarray, reuse: bool = True) -> tuple[ts.TaskOrientedLink, float]:
    """A trained student and its training seconds: with ``reuse``, reloaded from
    ``stem.weights.h5`` when ``stem.json`` says a run with the same ``settings`` trained it;
    else ``build()``, trained by ``fit`` and saved there (weights first, then the record that
    vouches for them, each staged under a name of its own and renamed into place, so an
    interrupted save, or another run's, is never taken for a student).

    A reloaded student is the trained one to the last bit: the run resumes across sessions
    without training its students again (about 5-25 minutes each here).
    """
    weights, record = stem.with_suffix(".weights.h5"), stem.with_suffix(".json")
    link = build()
    if reuse and record.exists() and weights.exists():
        saved = json.loads(record.read_text())
        if saved.get("settings") == settings:
            # built by a prediction only here: one before training could draw from the seed
            # stream the training then sees
            link.predict(probe, verbose=0)
            link.load_weights(weights)
            return link, float(saved["train_seconds"])
    record.unlink(missing_ok=True)  # the weights about to be replaced lose their voucher
    seconds = fit(link)
    stem.parent.mkdir(parents=True, exist_ok=True)
    replace_whole(weights, link.save_weights)
    replace_whole(record, lambda path: Path(path).write_text(
        json.dumps({"settings": settings, "train_seconds": seconds}) + "\n"))
    return link, seconds


def replace_whole(target: Path, write: Callable[[str], object]) -> None:
    """``write(path)`` into a file of this call's own beside ``target`` (same suffixes: Keras
    reads the kind of file from them), then renamed onto ``target``."""
    fd, staged = tempfile.mkstemp(prefix=f"{target.name}.",
                                  suffix="".join(target.suffixes), dir=target.parent)
    os.close(fd)
    try:
        write(staged)
        os.replace(staged, target)
    finally:
        Path(staged).unlink(missing_ok=True)


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
    """Cliffs of the analog and index curves, and per n, channel and SNR the margins of
    analog against the best digital point on validation and against the limit.

    An index link's error-free accuracy is its accuracy over AWGN at the top
    SNR (the code decodes every codeword there; the same classifier serves
    both channels), so a Rayleigh curve that has not recovered by 20 dB has
    no cliff in range (None) instead of one at its own low top. An analog
    student is trained for its channel: its reference is its own accuracy at
    the top SNR.
    """
    curves = results["curves"]
    for c in curves:
        # an analog student is trained per channel: its own top SNR is its error-free level
        awgn = c if c["kind"] == "analog" else next(
            (a for a in curves if a["channel"] == "awgn" and (a["kind"], a["n"]) ==
             (c["kind"], c["n"])), c)
        c["error_free_accuracy"] = awgn["accuracy"][-1]
        c["cliff_db"] = cliff_db(c["snr_db"], c["accuracy"], reference=awgn["accuracy"][-1])
    margins = {}
    for n in sorted({c["n"] for c in curves}):
        for channel in CHANNELS:
            analog = next((c for c in curves
                           if (c["kind"], c["n"], c["channel"]) == ("analog", n, channel)), None)
            best = results.get("digital_search", {}).get(str(n), {}).get(
                "best_on_validation", {}).get(channel)
            if analog is None or best is None:
                continue
            acc = np.array(analog["accuracy"])
            diff = acc - np.array(best["test_accuracy"])
            entry = {"snr_db": analog["snr_db"],
                     "analog_minus_best_digital": diff.tolist(),
                     "analog_ahead_at_db": [s for s, d in zip(analog["snr_db"], diff,
                                                              strict=True) if d > 0.005]}
            bound = results.get("finite_blocklength", {}).get(str(n), {}).get(channel)
            if bound is not None:
                entry["analog_minus_limit"] = (acc - np.array(bound["accuracy"])).tolist()
                entry["analog_minus_limit_no_log_term"] = (
                    acc - np.array(bound["accuracy_no_log_term"])).tolist()
            margins[f"n={n} {channel}"] = entry
    results["analog_vs_digital"] = margins
    results["cliff_definition"] = ("lowest SNR from which accuracy stays within 1 point of the "
                                   "link's error-free accuracy (index: its AWGN accuracy at "
                                   "20 dB; analog, trained per channel: its own 20 dB "
                                   "accuracy), interpolated; None: not reached by 20 dB")
    return results


def index_sweep(predictions: np.ndarray, labels: np.ndarray, n: int, channel: str,
                snrs: list[float], batch: int = 2000) -> dict:
    """Accuracy of sending the predicted class index, shortened, with LDPC + QPSK over n uses."""
    # 4 bits in the 2 n coded bits of n QPSK symbols; 8 known filler bits shorten the code
    layer = ts.DigitalChannel(num_bits=INDEX_BITS, clip=8.0,
                              code_rate=INDEX_BITS / (2 * n), modulation_order=4,
                              channel=channel,
                              **({"csi": "ls", "num_pilots": NUM_PILOTS}
                                 if channel == "rayleigh" else {}))
    # index c -> value c - 7.5 (cell c of the 16 cells of width 1 on [-8, 8])
    values = (predictions - 7.5).astype(np.float32)[:, None]
    send = backend.compiled(lambda v, snr: layer(v, snr_db=snr))
    accuracy = []
    for snr in snrs:
        decoded = np.concatenate([
            backend.to_numpy(send(backend.tensor(values[i:i + batch]), backend.tensor(snr)))[:, 0]
            for i in range(0, len(values), batch)])
        accuracy.append(float(np.mean(np.round(decoded + 7.5).astype(np.int64) == labels)))
    params = layer.code_parameters(1)
    return {"snr_db": snrs, "accuracy": accuracy, "channel_uses": layer.channel_uses,
            "effective_code_rate": layer.effective_code_rate,
            "repetitions": params["repetitions"], "filler_bits": params["filler_bits"],
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
            search = results.get("digital_search", {}).get(str(n), {})
            # only the points chosen at some SNR have test numbers
            tested = [p for p in search.get("points", [])
                      if p.get(channel, {}).get("test_accuracy") is not None]
            for i, point in enumerate(tested):
                ax.plot(point["snr_db"], point[channel]["test_accuracy"], color="0.8", lw=0.6,
                        label="digital points chosen at some SNR (test)" if i == 0 else None)
            best = search.get("best_on_validation", {}).get(channel)
            if best is not None:
                ax.plot(best["snr_db"], best["test_accuracy"], "--", color="C1", marker="s",
                        markersize=3, label="digital, best on validation (test)")
            for c in results["curves"]:
                if c["n"] != n or c["channel"] != channel:
                    continue
                # "digital": a results file from before the search (one curve per point)
                style = {"analog": ("-", "C0"), "index": (":", "C2"),
                         "digital": ("--", None)}[c["kind"]]
                ax.plot(c["snr_db"], c["accuracy"], style[0], color=style[1], marker="o",
                        markersize=3, label=c["label"])
            bound = results.get("finite_blocklength", {}).get(str(n), {}).get(channel)
            if bound is not None:
                ax.fill_between(bound["snr_db"], bound["accuracy_no_log_term"],
                                bound["accuracy"], color="C3", alpha=0.25, lw=0)
                ax.plot(bound["snr_db"], bound["accuracy"], color="C3", lw=1.0,
                        label="ideal code: classify, send log2 C bits\n"
                              "(normal approx.; band: without the 1/2 log2 n term)")
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
        __doc__, quick="smoke run: 60 steps, n = 16 only, two searched points, 1,000 "
                       "validation and test images, 4 SNRs",
        epochs=5, out=common.RESULTS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--val-images", type=int, default=VAL_IMAGES, metavar="N",
                        help="validation images each searched point is evaluated on: a "
                             f"seeded subset of the {harness.VAL_IMAGES:,} held-out images "
                             f"(default {VAL_IMAGES:,}; --quick: at most 1,000)")
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
    if not 1 <= args.val_images <= harness.VAL_IMAGES:
        print(f"error: --val-images must be in [1, {harness.VAL_IMAGES}]; got "
              f"{args.val_images}", file=sys.stderr)
        return 2

    ts.set_seed(args.seed)
    cache = TeacherCache(default_teacher_cache())
    snrs = [float(s) for s in np.arange(-10.0, 20.01, 2.5)]
    ns, limit = list(NS), None
    points = {n: search_points(n) for n in ns}
    if args.quick:
        ns, snrs, args.epochs, limit = [16], [-5.0, 5.0, 10.0, 20.0], 1, 1000
        points = {n: [p for p in search_points(n) if point_key(p) in QUICK_POINTS[n]]
                  for n in ns}
    split = harness.splits(cache, limit=limit)
    subset = validation_subset(len(split["y_val"]), min(args.val_images, len(split["y_val"])))
    split.update(x_val=split["x_val"][subset], y_val=split["y_val"][subset])

    def dataset() -> TeacherCacheDataset:
        # one per student: its epochs' data order then depends on the seed alone, not on
        # the students trained before it (a resumed run retrains the same student)
        return TeacherCacheDataset(cache, batch_size=128, seed=args.seed,
                                   rows=split["train_rows"])

    x_test, y_test = split["x_test"], split["y_test"]
    steps = 60 if args.quick else split["steps"]
    num_classes = cache.spec.num_classes
    for n in ns:  # every operating point spends exactly n data channel uses
        assert points[n] and all(p["channel_uses"] == n for p in points[n]), n

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = "digital_vs_analog_quick" if args.quick else "digital_vs_analog"
    results = {
        "benchmark": "digital_vs_analog", "quick": args.quick, "epochs": args.epochs,
        "steps_per_epoch": steps, "seed": args.seed, "snr_db": snrs,
        "test_images": len(y_test), "validation_images": len(split["y_val"]),
        "validation_subset_seed": VAL_SUBSET_SEED, "draws": 1,
        "num_pilots_rayleigh": NUM_PILOTS, "cpu_threads": cpu_threads(),
        "teacher_accuracy": float(cache.attrs.get("teacher_test_accuracy", float("nan"))),
        "student": harness.PREVIOUS_STUDENT,  # deliberately not the default: see harness
        "search_space": {**SEARCH_SPACE, "n": ns,
                         "code_rate_range": [LDPC5G_RATE_MIN_REPEATED, LDPC5G_RATE_MAX],
                         "crc": None, "selection": "best validation accuracy per n, channel "
                                                  "and SNR; its test accuracy reported (only "
                                                  "points chosen at some SNR are tested)"},
        "curves": [], "digital_search": {}, "finite_blocklength": {},
    }
    # what an interrupted run with these settings measured: kept, written back at once
    prior = resumable(out / f"{name}.json", results)
    for key in ("curves", "digital_search", "finite_blocklength"):
        results[key] = prior.get(key, results[key])

    def save() -> None:
        summarize(results)
        common.write_results(out / f"{name}.json", results, argv, __name__)

    def record(curve: dict) -> None:
        results["curves"].append(curve)
        save()
        print(f"{curve['label']:<44} n={curve['n']:<3} {curve['channel']:<8} "
              + " ".join(f"{a:.3f}" for a in curve["accuracy"]), flush=True)

    def sweep(link: ts.TaskOrientedLink) -> dict:
        s = accuracy_vs_snr(link, x_test, y_test, snrs, draws=1, batch_size=2000)
        return {k: s[k] for k in ("snr_db", "accuracy", "accuracy_ci95")}

    digital_students: dict[tuple[int, int], tuple[ts.TaskOrientedLink, float]] = {}
    # a student serves only a resumed run (deleting the results file starts over), and only
    # one with its settings on its line
    settings = {**{key: results[key] for key in RESUME_KEYS}, "line": common.sionna_line()}
    checkpoints = out / f"{name}_students"

    def digital_student(b: int, k: int) -> tuple[ts.TaskOrientedLink, float]:
        # trained when first needed (the quantizer is all training sees), or reloaded from
        # the checkpoint an earlier run with these settings left
        if (b, k) not in digital_students:
            quantizer = QuantizerInTheLoop(num_bits=b, clip=CLIP_SIGMAS[b] / np.sqrt(2.0))
            digital_students[(b, k)] = student_checkpoint(
                checkpoints / f"b{b}_k{k}", settings,
                lambda: harness.student(quantizer, num_classes, args.seed,
                                        harness.PREVIOUS_STUDENT, num_symbols=k // 2),
                lambda link: harness.fit(link, dataset(), args.epochs, steps),
                split["x_val"][:2], reuse=bool(prior))
        return digital_students[(b, k)]

    def evaluate(entry: dict, channel: str, split_name: str) -> list[float]:
        b, k, m, r = (entry[key] for key in ("num_bits", "num_values", "modulation_order",
                                             "code_rate"))
        student, seconds = digital_student(b, k)
        layer = digital_channel(b, r, m, channel)
        link = harness.relink(student, layer)
        if split_name == "test":
            return harness.evaluate_test(link, split, snrs, draws=1, seed=args.seed)
        val, _ = harness.evaluate(link, split, snrs, draws=1, seed=args.seed, test=False)
        built = layer.code_parameters(k)  # after build: the known bits are found
        entry.update(train_seconds=seconds, effective_code_rate=layer.effective_code_rate,
                     clip=layer.clip, repetitions=built["repetitions"],
                     mother_bits=built["mother_bits"])
        return val

    for n in ns:
        measured = {(c["kind"], c["channel"]) for c in results["curves"] if c["n"] == n}
        if not (measured >= {(kind, channel) for kind in ("analog", "index")
                             for channel in CHANNELS}
                and set(results["finite_blocklength"].get(str(n), {})) >= set(CHANNELS)):
            # measured again whole (the index curves need the AWGN student's decisions)
            results["curves"] = [c for c in results["curves"] if c["n"] != n]
            for channel in CHANNELS:
                analog, seconds = train(analog_channel(channel), n, dataset(), args.epochs,
                                        steps, args.seed)
                record({"kind": "analog", "n": n, "channel": channel,
                        "label": f"analog, {n} symbols",
                        "channel_uses": n + (NUM_PILOTS if channel == "rayleigh" else 0),
                        "train_seconds": seconds, **sweep(analog)})
                if channel == "awgn":  # the transmitter-side classifier of the index reference
                    analog.set_eval_snr(60.0)
                    predictions = np.argmax(analog.predict(x_test, batch_size=2000, verbose=0),
                                            -1)
                curve = index_sweep(predictions, y_test, n, channel, snrs)
                record({"kind": "index", "n": n, "channel": channel,
                        "label": f"class index, shortened LDPC "
                                 f"r={curve['effective_code_rate']:.3g} "
                                 f"+ QPSK ({curve['channel_uses']} uses)", **curve})
                results["finite_blocklength"].setdefault(str(n), {})[channel] = bound_entry(
                    n, channel, snrs, curve["clean_accuracy"], num_classes)
                save()
        search = results["digital_search"].setdefault(
            str(n), {"points": [], "best_on_validation": {}})
        run_search(points[n], snrs, evaluate, search, save)
        plot(results, out / f"{name}.png")
    print(f"wrote {out / (name + '.json')} and {out / (name + '.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
