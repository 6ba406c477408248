"""The results page, ``docs/results.md``, generated from ``benchmarks/results/*.json``.

Every number on the page is read from a results file (the text around the tables is fixed
and holds none), so the page cannot drift from the measurements: ``--check`` (and
``tests/test_results_page.py``) fails when the committed page differs from what this
script generates. Each results file has a section (or more) with its table(s), a link to
its figure where one lies next to it, and its provenance (command, commit, machine, date,
Sionna line); a results file that no section renders, and is not listed in
:data:`SKIPPED` with a reason, is an error, so a new benchmark cannot be left off.

    python -m benchmarks.results_page [--out docs/results.md] [--check]

Imports neither Keras, TensorFlow nor torch.
"""

from __future__ import annotations

import argparse
import difflib
import json
import math
import re
import statistics
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.common.cli import RESULTS

ROOT = RESULTS.parents[1]
#: where the page is committed
PAGE = ROOT / "docs" / "results.md"
#: the command that regenerates it
COMMAND = "python -m benchmarks.results_page"
#: the figures, as the page (in docs/) links them
FIGURES = "../benchmarks/results"
#: results files the page leaves out on purpose, each with the reason (none today)
SKIPPED: dict[str, str] = {}

Data = dict[str, Any]
Lines = list[str]


# --- formatting: fixed, so that the page is a function of the files alone -----------------

def fmt(x: Any, digits: int = 3) -> str:
    """A number with ``digits`` significant digits (thousands separated from 1,000 up, no
    exponent); ``None`` as a dash; other values as text."""
    if x is None:
        return "—"
    if isinstance(x, bool) or not isinstance(x, int | float):
        return str(x)
    if isinstance(x, int) or (abs(x) >= 10 ** (digits - 1) and float(x).is_integer()):
        return f"{round(x):,}"
    if x == 0 or not math.isfinite(x):
        return f"{x:g}"
    if abs(x) >= 10 ** (digits - 1):
        return f"{x:,.0f}"
    decimals = digits - 1 - math.floor(math.log10(abs(x)))
    return f"{x:.{decimals}f}"


def acc(x: float | None) -> str:
    """An accuracy (or any fraction) to three decimals."""
    return "—" if x is None else f"{x:.3f}"


def sci(x: float | None) -> str:
    """A small quantity (a KL in nats) as ``4.2e-2``."""
    if x is None:
        return "—"
    mantissa, exponent = f"{x:.1e}".split("e")
    return mantissa if int(exponent) == 0 else f"{mantissa}e{int(exponent)}"


def short(x: Any) -> str:
    """A value as it is, floats to four significant digits (the generic renderer)."""
    return f"{x:.4g}" if isinstance(x, float) and abs(x) < 1e4 else fmt(x)


def times(x: float | None) -> str:
    """A ratio as ``1.85x``."""
    return "—" if x is None else f"{fmt(x)}x"


def db(x: float) -> str:
    """An SNR in dB, with a typographic minus."""
    return f"{x:g}".replace("-", "−")


def mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and standard deviation over seeds (ddof = 1, as the benchmarks report it;
    ``None`` for one value)."""
    values = list(values)
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def pm(values: Sequence[float | None]) -> str:
    """Mean ± std over seeds of accuracies (the mean alone for one seed)."""
    values = [v for v in values if v is not None]
    if not values:
        return "—"
    return plus_minus(*mean_std(values))


def plus_minus(mean: float, std: float | None) -> str:
    """An accuracy's mean ± std (the mean alone without a std), as a results file records it."""
    return acc(mean) if std is None else f"{acc(mean)} ± {acc(std)}"


def pair(first: str, second: str) -> str:
    return f"{first} / {second}"


def table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Lines:
    """A plain pipe table (GitHub and myst-parser render it alike)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return [*lines, ""]


def code(text: Any) -> str:
    return f"`{text}`"


def slug(title: str) -> str:
    """The anchor GitHub (and myst-parser's ``myst_heading_anchors``) gives a heading:
    lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")


def at(snrs: Sequence[float], values: Sequence[Any] | None, snr: float) -> Any:
    """``values`` at ``snr`` of the grid ``snrs`` (``None`` where absent)."""
    if values is None:
        return None
    snrs = [float(s) for s in snrs]
    return values[snrs.index(float(snr))] if float(snr) in snrs else None


# --- provenance ------------------------------------------------------------------------------

def line_text(line: Any) -> str | None:
    """The Sionna line a file records: ``Sionna 1.2.2 on Keras' tensorflow backend``; for a
    benchmark that ran both lines, both."""
    if not isinstance(line, dict):
        return None
    if "keras_backend" not in line and "sionna" not in line:
        parts = [line_text(v) for _, v in sorted(line.items())]
        return "; ".join(p for p in parts if p) or None
    if line.get("sionna") is None and line.get("keras_backend") is None:
        return None
    backend = line.get("keras_backend")
    text = f"Sionna {line.get('sionna') or '(not installed)'}"
    return f"{text} on Keras' {backend} backend" if backend else f"{text} (no Keras)"


def recorded_line(p: Data) -> str | None:
    """The line a provenance records, else the Sionna version among its recorded versions
    (files written before the line was recorded), else ``None``."""
    line = line_text(p.get("line"))
    if line is None and (p.get("versions") or {}).get("sionna"):
        line = f"Sionna {p['versions']['sionna']} (Keras' backend not recorded)"
    return line


def provenance_line(name: str, data: Data) -> str:
    """One line: the command that reproduces ``name``, its commit, machine, date and line."""
    p = data.get("provenance") or {}
    parts = [f"`{name}`: {code(p.get('command') or 'command not recorded')}"]
    parts.append(f"commit {code(str(p['commit'])[:7])}" if p.get("commit")
                 else "commit not recorded")
    parts.append(f"machine {p['machine']}" if p.get("machine") else "machine not recorded")
    parts.append(f"date {p['date']}" if p.get("date") else "date not recorded")
    line = recorded_line(p)
    if line:
        parts.append(line)
    text = "; ".join(parts)
    if p.get("backfilled"):
        text += f" (provenance {p['backfilled']})"
    if p.get("note"):
        text += f". Note: {p['note'].rstrip('.')}"
    earlier = data.get("earlier_provenance") or []
    if earlier:
        runs = [f"{code(e.get('command'))} ({code(str(e.get('commit'))[:7])}, "
                f"{e.get('date') or 'date not recorded'})" for e in earlier]
        text += ". Earlier runs kept in the file: " + "; ".join(runs)
    return f"- {text}."


# --- the renderers, one per kind of results file ---------------------------------------------

def student_text(d: Data) -> str:
    """A kd_awgn run's student, as its file names it."""
    if d.get("student"):
        return code(d["student"])
    if "width" not in d:
        return "not recorded"
    kind = "separable" if d.get("separable", False) else "plain convolutions"
    hidden = d.get("hidden_units")
    return f"width {d['width']}, {kind}" + (f", hidden units {units(hidden)}" if hidden else "")


def units(hidden: Any) -> str:
    return ", ".join(map(str, hidden)) if isinstance(hidden, list) else str(hidden)


def kd_settings(d: Data) -> str:
    seeds = d.get("seeds") or ([d["seed"]] if d.get("seed") is not None else [])
    parts = [
        f"student {student_text(d)} ({fmt(d.get('student_params'))} parameters: transmitter "
        f"{fmt(d.get('student_tx_params'))}, receiver {fmt(d.get('student_rx_params'))}; "
        f"teacher {fmt(d.get('teacher_params'))})",
        f"channel {d.get('channel')}, n = {d.get('n_symbols')}",
        f"{d.get('epochs')} epochs of {d.get('steps_per_epoch')} steps",
        f"training SNR {db(d['snr_train_db'][0])} to {db(d['snr_train_db'][1])} dB"
        if d.get("snr_train_db") else None,
        f"α = {d.get('alpha')}, τ = {d.get('temperature')}, β = {d.get('beta')}",
        ("stochastic encoder" if d["stochastic"] else "deterministic encoder")
        if "stochastic" in d else None,
        f"labelled fraction {d['labelled_fraction']}" if d.get("labelled_fraction", 1) != 1
        else None,
        f"seeds {', '.join(map(str, seeds))}" if seeds else None,
        f"{d.get('draws')} channel draw(s) per SNR over {fmt(d.get('test_images'))} test images",
        f"teacher's clean accuracy {d.get('teacher_accuracy')}",
    ]
    return "Settings: " + "; ".join(p for p in parts if p) + "."


def kd_training(d: Data) -> str:
    per_seed = d.get("per_seed") or []
    if len(per_seed) > 1:
        seconds = sorted(s["train_seconds"] for s in per_seed)
        return f"{fmt(seconds[0])}–{fmt(seconds[-1])} s"
    return f"{fmt(d.get('train_seconds'))} s"


def kd_validation(d: Data) -> str:
    v = d.get("validation") or {}
    if not v:
        return "—"
    std = v.get("accuracy_seed_std") or [None] * len(v["accuracy"])
    cells = [acc(a) if s is None else f"{acc(a)} ± {acc(s)}"
             for a, s in zip(v["accuracy"], std, strict=True)]
    return " / ".join(cells)


def kd_awgn(data: dict[str, Data]) -> Lines:
    """A run of ``examples/kd_awgn.py``: accuracy against SNR (mean and seed std)."""
    ((name, d),) = data.items()
    snrs = d["snr_db"]
    rows = [["student accuracy", *map(acc, d["accuracy"])]]
    if d.get("accuracy_seed_std"):
        rows.append(["seed std", *map(acc, d["accuracy_seed_std"])])
    elif d.get("accuracy_std") and any(s is not None for s in d["accuracy_std"]):
        rows.append(["channel-draw std", *map(acc, d["accuracy_std"])])
    lines = [kd_settings(d), "", *table(["SNR [dB]", *map(db, snrs)], rows)]
    v = d.get("validation") or {}
    if v:
        lines += [f"Validation ({fmt(d.get('val_images'))} held-out training images) at "
                  f"{' / '.join(db(s) for s in v['snr_db'])} dB: {kd_validation(d)}. "
                  f"Training {kd_training(d)}.", ""]
    else:
        lines += [f"No validation split. Training {kd_training(d)}.", ""]
    if d.get("per_seed"):
        lines += ["Per seed:", ""]
        lines += table(["seed", "test 0 dB", "test 10 dB", "validation 0 / 10 dB", "training"],
                       [[s.get("seed"), acc(at(s["snr_db"], s["accuracy"], 0)),
                         acc(at(s["snr_db"], s["accuracy"], 10)), kd_validation(s),
                         f"{fmt(s.get('train_seconds'))} s"] for s in d["per_seed"]])
    if d.get("combined_from"):
        lines += ["Joined (`--combine`) from: " + ", ".join(
            code(c["path"]) for c in d["combined_from"]) + ".", ""]
    if d.get("what"):
        lines += [f"The file says: {d['what']}", ""]
    return lines


def kd_lines_summary(data: dict[str, Data]) -> Lines:
    """The main job's runs side by side: Sionna line, schedule, seeds, test and validation."""
    rows = []
    for name, d in data.items():
        snrs = d["snr_db"]
        std = d.get("accuracy_seed_std")
        cell = [acc(at(snrs, d["accuracy"], s)) if not std else
                f"{acc(at(snrs, d['accuracy'], s))} ± {acc(at(snrs, std, s))}" for s in (0, 10)]
        seeds = d.get("seeds") or [d.get("seed")]
        rows.append([recorded_line(d.get("provenance") or {}) or "not recorded",
                     d.get("epochs"), ", ".join(map(str, seeds)), *cell, kd_validation(d),
                     kd_training(d), f"[{name}](#{SECTION_OF[name]})"])
    return table(["line", "epochs", "seeds", "test 0 dB", "test 10 dB", "validation 0 / 10 dB",
                  "training", "results file"], rows)


ABLATION_VARIANTS = {
    "full": "`full`: channel-adaptive modules, stochastic encoder, distilled, trained over "
            "the SNR range",
    "no-cam": "`no-cam`: no channel-adaptive module at either end",
    "no-noise-input": "`no-noise-input`: receiver without the effective-noise input",
    "deterministic": "`deterministic`: deterministic encoder (no rate term)",
    "no-distillation": "`no-distillation`: labels only",
    "no-channel": "`no-channel`: trained without a channel, evaluated through it",
    "fixed-10db": "`fixed-10db`: trained at one SNR only",
}
ABLATION_CHANNELS = {
    "awgn": "AWGN",
    "rayleigh": "Rayleigh (LS)",
    "ofdm-tdl-a": "OFDM TDL-A, a slot per example",
    "ofdm-tdl-a-shared": "OFDM TDL-A, shared slots",
}


def ordered(keys: Iterable[str], known: Iterable[str]) -> list[str]:
    """``keys`` in the order of ``known``, the unknown ones after, as they come."""
    keys, known = list(dict.fromkeys(keys)), list(known)
    return [k for k in known if k in keys] + [k for k in keys if k not in known]


def ablations(data: dict[str, Data]) -> Lines:
    """Variants x channels, validation (and test for the final variant) at two SNRs."""
    ((_, d),) = data.items()
    runs = d["runs"]
    channels = ordered(runs, ABLATION_CHANNELS)
    variants = ordered((v for c in channels for v in runs[c]), ABLATION_VARIANTS)
    snrs = " / ".join(db(s) for s in d["snr_db"])
    epochs = sorted({r["epochs"] for c in channels for v in runs[c].values() for r in v})
    seeds = sorted({r["seed"] for c in channels for v in runs[c].values() for r in v})
    lines = [f"Student {code(d.get('student'))}, {', '.join(map(str, epochs))} epochs, seeds "
             f"{', '.join(map(str, seeds))}; validation accuracy at {snrs} dB "
             f"({fmt(d.get('val_images'))} images, {d.get('draws')} channel draws), "
             "mean ± std over seeds:", ""]

    def cells(split: str, variant: str) -> list[str]:
        out = []
        for c in channels:
            rs = [r for r in runs[c].get(variant, []) if r.get(split) is not None]
            out.append(" / ".join(pm([r[split][i] for r in rs]) for i in range(2)) if rs
                       else "—")
        return out

    header = ["variant", *(ABLATION_CHANNELS.get(c, code(c)) for c in channels)]
    lines += table(header, [[ABLATION_VARIANTS.get(v, code(v)), *cells("val_accuracy", v)]
                            for v in variants])
    tested = [v for v in variants if any(r.get("test_accuracy") for c in channels
                                         for r in runs[c].get(v, []))]
    if tested:
        lines += [f"Test split at {snrs} dB:", ""]
        lines += table(header, [[ABLATION_VARIANTS.get(v, code(v)), *cells("test_accuracy", v)]
                                for v in tested])
    return lines


HYPER_LABELS = {"alpha": "α", "temperature": "τ", "beta": "β", "stochastic": "encoder"}


def hyperparameters(data: dict[str, Data]) -> Lines:
    """One setting varied at a time around the defaults, validation at two SNRs."""
    ((_, d),) = data.items()
    s = d.get("student", {})
    epochs = sorted({r["epochs"] for r in d["runs"]})
    lines = [f"Student: {frontier_name(s)}, n = {s.get('num_symbols')}; defaults "
             + ", ".join(f"{HYPER_LABELS.get(k, k)} = {v}" for k, v in d["defaults"].items())
             + f"; {', '.join(map(str, epochs))} epochs; validation "
             f"({fmt(d.get('val_images'))} images, {d.get('draws')} channel draws), "
             "mean ± std over seeds.", ""]
    rows = []
    for param, summary in d["summary"].items():
        for value, st in summary["values"].items():
            shown = ({"True": "stochastic", "False": "deterministic"}.get(value, value)
                     if param == "stochastic" else value)
            if value == str(summary.get("default")):
                shown += " (default)"
            if value == str(summary.get("best")):
                shown += " **best**"
            rows.append([HYPER_LABELS.get(param, param), shown, st["seeds"],
                         *(acc(m) if sd is None else f"{acc(m)} ± {acc(sd)}"
                           for m, sd in zip(st["mean"], st["std"], strict=True))])
    return lines + table(["parameter", "value", "seeds",
                          *(f"{db(x)} dB" for x in d["snr_db"])], rows)


def fast_distillation(data: dict[str, Data]) -> Lines:
    """Step time and accuracy of labels only, cached (1, 2, 4 views) and online KD."""
    ((_, d),) = data.items()
    t, summary = d["timing"], d["summary"]
    ratios = summary.get("epoch_ratio_cached_over_ce_only", {})

    def label(v: str) -> str:
        m = re.fullmatch(r"cached-v(\d+)", v)
        return f"cached, V = {m.group(1)}" if m else {"ce-only": "CE only"}.get(v, v)

    def ratio(v: str) -> str:
        if v in ratios:
            return f"{times(ratios[v])} CE only"
        if v == "online" and "epoch_ratio_online_over_cached_v4" in summary:
            return f"{times(summary['epoch_ratio_online_over_cached_v4'])} cached, V = 4"
        return "1" if v == "ce-only" else "—"

    lines = [f"Student: {d.get('student')}; teacher {code(d.get('teacher'))} "
             f"({fmt(d.get('teacher_params'))} parameters); batch {d.get('batch_size')}, "
             f"{d.get('steps_per_epoch')} steps per epoch. Step time: {t['rounds']} interleaved "
             f"rounds of {t['steps_per_round']} steps (the step includes its data loading); "
             f"teacher forward inside online training "
             f"{fmt(t.get('teacher_forward_ms_per_image'))} ms per image.", ""]
    lines += table(["variant", "best ms / step", "median ms / step", "spread",
                    "epoch (best) [s]", "reader ms / batch (best)", "epoch ratio"],
                   [[label(v), fmt(x["best_ms_per_step"]), fmt(x["median_ms_per_step"]),
                     times(x["spread"]), fmt(x["epoch_seconds_best"]),
                     fmt(x["reader_ms_per_batch_best"]), ratio(v)]
                    for v, x in t["variants"].items()])
    epochs = sorted({r["epochs"] for runs in d["accuracy"].values() for r in runs})
    lines += [f"Accuracy after {', '.join(map(str, epochs))} epochs, mean ± std over seeds:", ""]
    def cell(by_snr: Data) -> str:
        return " / ".join(plus_minus(x["mean"], None if x["seeds"] < 2 else x["std"])
                          for x in by_snr.values())

    rows = []
    for v, splits in summary["accuracy"].items():
        seeds = {x["seeds"] for s in splits.values() for x in s.values()}
        rows.append([label(v), ", ".join(map(str, sorted(seeds))), cell(splits["validation"]),
                     cell(splits["test"])])
    snrs = " / ".join(next(iter(summary["accuracy"].values()))["validation"])
    lines += table(["variant", "seeds", f"validation {snrs}", f"test {snrs}"], rows)
    proj = summary.get("projection_vit_b16")
    if proj:
        f = proj["vit_b16_forward"]
        lines += [f"{proj['what']}:", ""]
        lines += table(["ViT-B/16 forward, best ms / image", "median", "parameters",
                        "image size", "cached epoch [s]", "online epoch, projected [s]",
                        "online / cached, projected"],
                       [[fmt(f["best_ms_per_image"]), fmt(f["median_ms_per_image"]),
                         fmt(f["params"]), f["image_size"], fmt(proj["cached_epoch_seconds"]),
                         fmt(proj["online_epoch_seconds_projected"]),
                         times(proj["online_over_cached_projected"])]])
    return lines


def few_labels(data: dict[str, Data]) -> Lines:
    """Labelled fraction x (distilled at each α, teacher-free), accuracy at 0/10/20 dB."""
    ((_, d),) = data.items()
    if "summary" in d:
        return few_labels_on_validation(d)
    runs = d["runs"]
    arms = sorted({(r["teacher_free"], r["alpha"]) for r in runs},
                  key=lambda a: (a[0], -a[1]))
    fractions = sorted({r["labelled_fraction"] for r in runs})
    keys = ("accuracy_0db", "accuracy_10db", "accuracy_20db")

    def arm_runs(f: float, arm: tuple) -> list[Data]:
        return [r for r in runs if r["labelled_fraction"] == f
                and (r["teacher_free"], r["alpha"]) == arm]

    def cell(rs: list[Data]) -> str:
        return " / ".join(pm([r[k] for r in rs]) for k in keys) if rs else "—"

    rows = []
    for f in fractions:
        row = [f, *(cell(arm_runs(f, a)) for a in arms)]
        free = arm_runs(f, next((a for a in arms if a[0]), (None, None)))
        taught = [(mean_std([r["accuracy_10db"] for r in arm_runs(f, a)])[0], a[1])
                  for a in arms if not a[0] and arm_runs(f, a)]
        if free and taught:
            best, alpha = max(taught)
            gain = 100 * (best - mean_std([r["accuracy_10db"] for r in free])[0])
            row.append(f"{gain:+.1f} (α = {alpha})")
        else:
            row.append("—")
        rows.append(row)
    head = ["teacher-free: 0 / 10 / 20 dB" if free else f"distilled, α = {a}: 0 / 10 / 20 dB"
            for free, a in arms]
    seeds = sorted({r["seed"] for r in runs})
    epochs = sorted({r["epochs"] for r in runs})
    lines = [f"{d.get('what')}; student arguments {code(d.get('student_args'))}; "
             f"{', '.join(map(str, epochs))} epochs; seeds {', '.join(map(str, seeds))}; "
             f"{', '.join(sorted({str(r['draws']) for r in runs}))} channel draw(s).", ""]
    return lines + table(["labelled fraction", *head, "gain at 10 dB, best α [points]"], rows)


def few_labels_on_validation(d: Data) -> Lines:
    """The study with α chosen on validation: its ``summary`` (chosen α, test mean ± std over
    seeds, distilled vs teacher-free) and the validation numbers that chose α."""
    snrs = [f"{s:g} dB" for s in d["snrs_db"]]

    def side(arm: Data | None) -> str:
        if arm is None:
            return "—"
        return " / ".join(plus_minus(**arm["test"][s]) for s in snrs)

    def seeds(arm: Data | None) -> str:
        return "—" if arm is None else ", ".join(map(str, arm["seeds"]))

    rows, val_rows = [], []
    for rec in d["summary"]:
        gain = rec["test_gain_points"]
        rows.append([rec["student"], rec["epochs"], rec["labelled_fraction"],
                     "—" if rec["chosen_alpha"] is None else f"{rec['chosen_alpha']:g}",
                     seeds(rec["distilled"]), side(rec["distilled"]),
                     seeds(rec["teacher_free"]), side(rec["teacher_free"]),
                     "—" if gain is None else " / ".join(f"{gain[s]:+.1f}" for s in snrs)])
        for alpha, numbers in rec["validation_by_alpha"].items():
            val_rows.append([rec["labelled_fraction"], alpha,
                             ", ".join(map(str, rec["selection_seeds"])),
                             *(plus_minus(**numbers[s]) for s in snrs)])
    teacher = d.get("teacher_labels", {})
    lines = [f"**The teacher saw every label**: {teacher.get('note', 'not recorded')} "
             f"({code(teacher.get('source'))}).", "",
             f"α chosen on validation: {d.get('selection')}.", "",
             f"Test accuracy at {' / '.join(snrs)}, mean ± std over seeds:", ""]
    lines += table(["student", "epochs", "labelled fraction", "α chosen on validation",
                    "seeds", "distilled", "teacher-free seeds", "teacher-free",
                    "gain [points]"], rows)
    lines += ["Validation accuracy of every α compared (what chose α):", ""]
    return lines + table(["labelled fraction", "α", "seeds", *(f"validation {s}" for s in snrs)],
                         val_rows)


def frontier_name(s: Data) -> str:
    kind = "separable" if s.get("separable") else "plain"
    return f"width {s.get('width')}, {kind}, hidden units {units(s.get('hidden_units'))}"


def student_frontier(data: dict[str, Data]) -> Lines:
    """Students by size: parameters, MACs, distilled vs labels only (validation, test)."""
    ((_, d),) = data.items()
    teacher = d.get("teacher")
    students = sorted(d["students"].items(), key=lambda kv: kv[1]["params"]["link"])
    snrs = " / ".join(db(s) for s in d["snr_db"])

    def arm(runs: list[Data], mode: str, split: str, teacher_id: Any = teacher,
            weight: Any = None) -> list[Data]:
        return [r for r in runs if r.get("mode") == mode and r.get("teacher") == teacher_id
                and r.get("feature_weight") == weight and r.get(split) is not None]

    def cell(runs: list[Data], split: str) -> str:
        return " / ".join(pm([r[split][i] for r in runs]) for i in range(2)) if runs else "—"

    epochs = sorted({r["epochs"] for _, s in students for r in s["runs"]})
    lines = [f"Channel {d.get('channel')}, n = {d.get('num_symbols')}, "
             f"{', '.join(map(str, epochs))} epochs; validation ({fmt(d.get('val_images'))} "
             f"images, {d.get('draws')} channel draws) at {snrs} dB, mean ± std over seeds; "
             f"teacher {code(d['teachers'][teacher]['teacher'])} "
             f"({fmt(d['teachers'][teacher]['params'])} parameters, test accuracy "
             f"{d['teachers'][teacher]['test_accuracy']}).", ""]
    rows = []
    for name, s in students:
        p = s["params"]
        rows.append([code(name), frontier_name(s),
                     f"{fmt(p['link'])} ({fmt(p['transmitter'])} + {fmt(p['receiver'])})",
                     f"1/{round(1 / s['fraction_of_teacher'])}",
                     f"{s['macs']['link'] / 1e6:.2f} M",
                     cell(arm(s["runs"], "kd", "val_accuracy"), "val_accuracy"),
                     cell(arm(s["runs"], "ce", "val_accuracy"), "val_accuracy")])
    lines += table(["student", "architecture", "parameters (tx + rx)", "of the teacher",
                    "MACs per image", f"distilled, val {snrs} dB", f"labels only, val {snrs} dB"],
                   rows)
    arms = {}
    for name, s in students:
        for r in s["runs"]:
            arms.setdefault((name, r.get("mode"), r.get("teacher"), r.get("feature_weight")),
                            []).append(r)
    lines += [f"Every arm the file holds (test at {snrs} dB where measured, `--test`):", ""]
    rows = []
    for (name, mode, t, weight), runs in arms.items():
        info = d["teachers"].get(t, {})
        rows.append([code(name), mode, f"{code(info.get('teacher', t))} "
                     f"({info.get('test_accuracy', '—')})",
                     "—" if weight is None else f"{weight:g}",
                     ", ".join(str(r["seed"]) for r in runs),
                     cell([r for r in runs if r.get("val_accuracy")], "val_accuracy"),
                     cell([r for r in runs if r.get("test_accuracy")], "test_accuracy")])
    return lines + table(["student", "mode", "teacher (test accuracy)", "feature weight",
                          "seeds", f"validation {snrs} dB", f"test {snrs} dB"], rows)


def latency(data: dict[str, Data]) -> Lines:
    """Per-example latency of the two ends against the teacher's forward; sizes."""
    ((_, d),) = data.items()
    run = d["runs"][-1]
    lat = run["per_example_latency"]
    batches = list(next(iter(lat.values())))

    def both(kind: str, b: str) -> str:
        tx, rx = (lat.get(f"student_{end}_{kind}") for end in ("transmitter", "receiver"))
        return "—" if not (tx and rx) else f"{fmt(tx[b]['best_ms'] + rx[b]['best_ms'])} ms"

    def one(key: str, b: str) -> str:
        return f"{fmt(lat[key][b]['best_ms'])} ms" if key in lat else "—"

    ratios = run.get("ratios_best", {})
    rows = [["transmitter + receiver, eager Keras", *(both("eager", b) for b in batches)],
            ["transmitter + receiver, traced", *(both("traced", b) for b in batches)],
            ["transmitter + receiver, exported", *(both("savedmodel", b) for b in batches)],
            ["whole link (with its channel), traced", *(one("student_link_traced", b)
                                                        for b in batches)],
            ["teacher forward (torch)", *(one("teacher_forward", b) for b in batches)],
            ["teacher preprocessing", *(one("teacher_preprocessing", b) for b in batches)]]
    for kind in ("traced", "savedmodel", "eager"):
        shown = "exported" if kind == "savedmodel" else kind
        rows.append([f"teacher / student ({shown})",
                     *(times(ratios.get(f"teacher_over_student_{kind}_batch{b}"))
                       for b in batches)])
    s = d["student"]
    lines = [f"Student {code(s.get('name'))} ({frontier_name(s)}); {run.get('threads')} "
             f"threads, best of {run.get('rounds')} interleaved rounds, per example"
             + (f"; {len(d['runs'])} runs in the file, the last shown" if len(d["runs"]) > 1
                else "") + ":", ""]
    lines += table(["per example", *(f"batch {b}" for b in batches)], rows)
    m, p = d["macs_per_example"], d["params"]
    lines += table(["", "transmitter", "receiver", "link", "teacher", "teacher / link"],
                   [["multiply-accumulates per example", fmt(m["transmitter"]),
                     fmt(m["receiver"]), fmt(m["link"]), fmt(m["teacher"]),
                     times(m["teacher_over_link"])],
                    ["parameters", fmt(p["transmitter"]), fmt(p["receiver"]),
                     fmt(p["transmitter"] + p["receiver"]), fmt(p["teacher"]),
                     times(p["teacher"] / (p["transmitter"] + p["receiver"]))]])
    if run.get("targets"):
        lines += table(["target", "met"], [[code(k), "yes" if v else "**no**"]
                                           for k, v in run["targets"].items()])
    return lines


def digital_vs_analog(data: dict[str, Data]) -> Lines:
    """Analog student vs quantize + LDPC + QAM and the class index, over AWGN and Rayleigh."""
    ((_, d),) = data.items()
    curves = d["curves"]
    channels = list(dict.fromkeys(c["channel"] for c in curves))
    shown = [s for s in (-5, 0, 5, 10, 15, 20) if float(s) in d["snr_db"]]

    def ident(c: Data) -> tuple:
        return (c["n"], c["kind"], c.get("num_bits"), c.get("code_rate"),
                c.get("modulation_order"), c.get("num_values"), c.get("effective_code_rate"))

    links: dict[tuple, dict[str, Data]] = {}
    for c in curves:
        links.setdefault(ident(c), {})[c["channel"]] = c
    header = ["n", "link", "info bits", f"uses ({' / '.join(channels)})", "error-free"]
    for ch in channels:
        header += [f"{ch} {' / '.join(db(s) for s in shown)} dB", f"{ch} cliff [dB]"]
    rows = []
    for key, by in sorted(links.items(), key=lambda kv: (kv[0][0], kv[0][1] != "analog")):
        first = next(iter(by.values()))
        bits = (first["num_bits"] * first["num_values"] if first.get("num_bits") else "—")
        row = [key[0], first["label"] if first["kind"] != "index"
               else re.sub(r" \(\d+ uses\)$", "", first["label"]), bits,
               " / ".join(str(by[ch]["channel_uses"]) if ch in by else "—" for ch in channels),
               acc(first.get("error_free_accuracy"))]
        for ch in channels:
            c = by.get(ch)
            row += ["—", "—"] if c is None else [
                " / ".join(acc(at(c["snr_db"], c["accuracy"], s)) for s in shown),
                "> " + db(max(c["snr_db"])) if c.get("cliff_db") is None
                else db(round(c["cliff_db"], 1))]
        rows.append(row)
    lines = [f"Student {code(d.get('student'))}, {d.get('epochs')} epochs, seed {d.get('seed')}; "
             f"{fmt(d.get('test_images'))} test images, {d.get('draws')} channel draw(s); "
             f"{d.get('num_pilots_rayleigh')} pilots over Rayleigh (counted in its uses). "
             f"Cliff: {d.get('cliff_definition')}.", ""]
    lines += table(header, rows)
    if d.get("analog_vs_digital"):
        snrs = next(iter(d["analog_vs_digital"].values()))["snr_db"]
        lines += ["Analog minus the best digital link at each SNR [points]:", ""]
        lines += table(["n, channel", *(db(s) for s in snrs)],
                       [[k, *(f"{100 * x:+.1f}" for x in v["analog_minus_best_digital"])]
                        for k, v in d["analog_vs_digital"].items()])
    return lines


def _malloc_setting(tuned: bool | None) -> str:
    """A backends line's glibc allocator setting (``malloc_tuned``) in words."""
    return "not recorded" if tuned is None else "tuned" if tuned else "default"


def backends_summary(data: dict[str, Data]) -> Lines:
    """Each backends file in one row: torch over TensorFlow (best times): the training step,
    the timed epochs (where the run has them), the traced ends."""
    def step(d: Data, ch: str) -> str:
        k = f"train_ms_per_step/{ch}"
        return (f"{times(d['torch_over_tensorflow'][k])} ({fmt(d['best_ms']['torch'][k], 2)} vs "
                f"{fmt(d['best_ms']['tensorflow'][k], 2)} ms)")

    def traced(d: Data, end: str) -> str:
        return " / ".join(times(d["torch_over_tensorflow"][f"{end}_traced_ms/batch{b}"])
                          for b in d["latency_batches"])

    def epoch(d: Data, ch: str) -> str:
        ratio, k = d["torch_over_tensorflow"], f"epoch_ms/{ch}"
        if k not in ratio:
            return "not timed (run predates the timed epochs)"
        tf_median = d["median_ms"]["tensorflow"][k]
        median = d["median_ms"]["torch"][k] / tf_median if tf_median else None
        return (f"{times(ratio[k])} ({fmt(1e-3 * d['best_ms']['torch'][k])} vs "
                f"{fmt(1e-3 * d['best_ms']['tensorflow'][k])} s, {d.get('epoch_steps')} "
                f"steps; medians {times(median)}); first epoch "
                f"{times(ratio[f'first_epoch_ms/{ch}'])}")

    rows = []
    for name, d in data.items():
        rows.append([f"[{name}](#{SECTION_OF[name]})", d.get("threads"),
                     d["lines"]["torch"].get("omp_wait_policy") or "not recorded",
                     _malloc_setting(d["lines"]["torch"].get("malloc_tuned")),
                     *(step(d, ch) for ch in d["channels"]),
                     *(epoch(d, ch) for ch in d["channels"]), traced(d, "transmitter"),
                     traced(d, "receiver")])
    d = next(iter(data.values()))
    return table(["results file", "threads", "torch OpenMP wait policy", "torch glibc malloc",
                  *(f"train step {ch}" for ch in d["channels"]),
                  *(f"timed epoch {ch}, steady" for ch in d["channels"]),
                  f"traced transmitter, batch {' / '.join(map(str, d['latency_batches']))}",
                  f"traced receiver, batch {' / '.join(map(str, d['latency_batches']))}"], rows)


def backends(data: dict[str, Data]) -> Lines:
    """Every measurement of one backends run: best and median on each line, the ratio."""
    ((_, d),) = data.items()
    lines_ = d["lines"]
    lines = [f"{d.get('what')}. {d.get('rounds')} rounds ({d.get('order')}), "
             f"{d.get('threads')} thread(s) per line. "
             + " ".join(f"{ln}: Keras {v.get('keras')}, Sionna {v.get('sionna')}, "
                        f"{ln} {v.get(ln)}, OpenMP wait policy "
                        f"{v.get('omp_wait_policy') or 'not recorded'}"
                        + ("" if v.get("malloc_tuned") is None else
                           f", glibc malloc {_malloc_setting(v['malloc_tuned'])}")
                        + "."
                        for ln, v in lines_.items()), ""]
    if d.get("epoch_steps"):
        lines += [f"Each timed epoch (`epoch_ms`, `first_epoch_ms`): {d['epoch_steps']} steps.", ""]
    if d.get("note"):
        lines += [f"The file notes: {d['note']}", ""]
    rows = [[code(k), fmt(d["best_ms"]["tensorflow"][k]), fmt(d["best_ms"]["torch"][k]),
             times(d["torch_over_tensorflow"][k]), fmt(d["median_ms"]["tensorflow"][k]),
             fmt(d["median_ms"]["torch"][k])] for k in d["torch_over_tensorflow"]]
    lines += table(["measurement [ms]", "TensorFlow best", "torch best", "torch / TensorFlow",
                    "TensorFlow median", "torch median"], rows)
    est = d.get("epoch_s_estimate", {})
    if est:
        lines += [f"Epoch estimate ({d.get('epoch_estimate')}):", ""]
        lines += table(["line", *(f"{ch} [s]" for ch in d["channels"])],
                       [[ln, *(fmt(v[ch]) for ch in d["channels"])] for ln, v in est.items()])
    return lines


def xla_training(data: dict[str, Data]) -> Lines:
    ((_, d),) = data.items()
    lines = [f"Default student {d.get('student')}; {fmt(d.get('train_images'))} training "
             f"images, batch {d.get('batch_size')}.", ""]
    rows = [(d.get("student"), ch, v) for ch, v in d["channels"].items()]
    rows += [(student, ch, v) for student, chs in d.get("other_students", {}).items()
             for ch, v in chs.items()]
    return lines + table(
        ["student", "channel", "graph: first epoch [s]", "graph: steady epoch [s]",
         "XLA: first epoch [s]", "XLA: steady epoch [s]", "steady speed-up with XLA"],
        [[student, ch, fmt(v["graph"]["first_epoch_s"]), fmt(v["graph"]["steady_epoch_s"]),
          fmt(v["xla"]["first_epoch_s"]), fmt(v["xla"]["steady_epoch_s"]),
          times(v["steady_speedup_xla"])] for student, ch, v in rows])


def ofdm_channel_step(data: dict[str, Data]) -> Lines:
    ((_, d),) = data.items()
    lines = [f"{d.get('what')}; batch {d.get('batch')}, n = {d.get('n_symbols')}.", ""]
    slots = d.get("slots")
    if slots:  # since 0.5: both slot layouts, "<slot>, <generation>" arms
        lines[0] = lines[0][:-1] + (f"; {slots['shared']} shared slot(s) or "
                                    f"{slots['per_example']} slots, one per example.")
    lines += table(["arm", "best ms / step", "every repeat [ms]"],
                   [[k, fmt(v), ", ".join(fmt(x) for x in d["ms_per_step_all"][k])]
                    for k, v in d["ms_per_step_best"].items()])
    ratio = d.get("full_over_static")
    if isinstance(ratio, dict):
        return lines + ["Full over static: " + ", ".join(
            f"{times(v)} ({k.replace('_', ' ')})" for k, v in ratio.items()) + "; a slot per "
            f"example over shared slots: {times(d.get('per_example_over_shared'))}.", ""]
    return lines + [f"Full over static: {times(ratio)}.", ""]


def ofdm_estimator_build(data: dict[str, Data]) -> Lines:
    ((_, d),) = data.items()
    lines = [f"{d.get('what')}.", ""]
    rows = []
    for name, g in d["grids"].items():
        best = g["seconds_best"]
        rows.append([name, g["resource_blocks"], g["pilot_ofdm_symbols"], fmt(g["pilots"]),
                     g["rank"], fmt(best["kronecker"]), fmt(best.get("full")),
                     times(g.get("full_over_kronecker"))])
    return lines + table(["grid", "resource blocks", "pilot symbols", "pilots", "rank",
                          "Kronecker factors [s]", "whole covariance [s]", "whole / factors"],
                         rows)


def view_seeds(data: dict[str, Data]) -> Lines:
    ((_, d),) = data.items()
    lines = [f"{d.get('what')}; {fmt(d.get('rows'))} rows x {d.get('views')} views, best of "
             f"{d.get('repeats')}; bit-identical: {'yes' if d.get('bit_identical') else 'NO'}.",
             ""]
    lines += table(["implementation", "best [s]", "every repeat [s]"],
                   [[k, fmt(v), ", ".join(fmt(x) for x in d["seconds_all"][k])]
                    for k, v in d["seconds_best"].items()])
    return lines + [f"Loop over vectorized: {times(d.get('loop_over_vectorized'))}.", ""]


def augment_views(data: dict[str, Data]) -> Lines:
    ((_, d),) = data.items()
    lines = [f"{d.get('what')}; batch {d.get('batch')}, best of {d.get('repeats')} interleaved "
             "repeats.", ""]
    rows = [[size, v.get("pad"), fmt(v["ms_best"]["per_image"]), fmt(v["ms_best"]["batch"]),
             times(v.get("per_image_over_batch")),
             " / ".join(times(v["spread"][k]) for k in ("per_image", "batch")),
             "yes" if v.get("bit_identical") else "NO"] for size, v in d["sizes"].items()]
    lines += table(["images", "pad", "image by image [ms]", "batch [ms]", "speed-up",
                    "spread (image by image / batch)", "bit-identical"], rows)
    reader = d.get("reader")
    if reader:
        best, spread = reader["ms_best"], reader["spread"]
        lines += [f"The reader (`TeacherCacheDataset[i]`, shipped Fashion-MNIST cache, batch "
                  f"{reader.get('batch')}): {fmt(best['per_image'])} ms a batch with its views "
                  f"made image by image, {fmt(best['batch'])} ms with the batch path "
                  f"({times(reader.get('per_image_over_batch'))}; spreads "
                  f"{times(spread['per_image'])} / {times(spread['batch'])}).", ""]
    return lines


def extraction_throughput(data: dict[str, Data]) -> Lines:
    ((_, d),) = data.items()
    m = d.get("machine", {})
    lines = [f"Teacher: {d.get('teacher')} at {d.get('image_size')} px; "
             f"{fmt(d.get('samples'))} images x {d.get('views')} views, batch "
             f"{d.get('batch_size')}; {m.get('device')}, {m.get('cores')} cores, torch "
             f"{m.get('torch')}.", ""]
    return lines + table(
        ["", "seconds", "images / s"],
        [["`tosc-cache extract`, end to end", fmt(d["tool_s"]), fmt(d["tool_images_per_s"])],
         ["bare torch forward loop", fmt(d["bare_loop_s"]), fmt(d["bare_images_per_s"])]]) + [
        f"Overhead of the tool: {100 * d['tool_overhead']:+.1f}% "
        f"(target at most {100 * d['target_overhead']:+.0f}%).", ""]


def cache_scale(data: dict[str, Data]) -> Lines:
    ((_, d),) = data.items()
    c, r = d["cache"], d["results"]
    lines = [f"A synthetic cache of {fmt(c['rows'])} rows x {c['views']} views x "
             f"{fmt(c['classes'])} classes (top-{c['topk']}), {c['rows_per_shard']} rows per "
             f"shard, images {c['images']}; student {d.get('student')}.", ""]
    w, f = r["write"], r["finalize"]
    lines += table(["write: images, hashes, seeds [s]", "write shards [s]", "shards",
                    "write peak RSS [MB]", "finalize [s]", "open-file limit",
                    "finalize peak RSS [MB]", "file [MB]"],
                   [[fmt(w["images_hashes_seeds_s"]), fmt(w["write_shards_s"]),
                     fmt(w["shards"]), fmt(w["peak_rss_mb"]), fmt(f["finalize_s"]),
                     f["open_file_limit"], fmt(f["peak_rss_mb"]), fmt(f["file_mb"])]])
    readers = [k for k in r if k.startswith("reader")]
    lines += table(["reader", "first batch [s]", "reader ms / batch, best / median",
                    "student ms / step, best / median", "step / batch, best / median",
                    "peak RSS [MB]", "max anonymous RSS [MB]"],
                   [[k, fmt(r[k]["first_batch_s"]),
                     pair(fmt(r[k]["reader_batch_ms"]["best"]),
                          fmt(r[k]["reader_batch_ms"]["median"])),
                     pair(fmt(r[k]["student_step_ms"]["best"]),
                          fmt(r[k]["student_step_ms"]["median"])),
                     pair(times(r[k]["student_step_over_reader_batch"]["best_vs_best"]),
                          times(r[k]["student_step_over_reader_batch"]["median_vs_median"])),
                     fmt(r[k]["peak_rss_mb"]), fmt(r[k]["max_sampled_rss_anon_mb"])]
                    for k in readers])
    return lines + table(["target", "met"], [[code(k), "yes" if v else "**no**"]
                                             for k, v in d["targets_met"].items()])


def compression_fidelity(data: dict[str, Data]) -> Lines:
    """KL from the teacher's distribution to each compression's reconstruction."""
    ((_, d),) = data.items()
    temps = [str(int(t)) if float(t).is_integer() else str(t) for t in d["temperatures"]]
    lines = [f"Teacher {code(d.get('teacher'))}, {fmt(d.get('samples'))} samples x "
             f"{d.get('views')} view(s), {fmt(d.get('classes'))} classes ({d.get('dataset')}); "
             f"teacher entropy {fmt(d.get('teacher_entropy_mean_nats'))} nats, mean top "
             f"probability {fmt(d.get('teacher_max_prob_mean'))}. KL: {d.get('kl')}. "
             f"Bytes: {d.get('bytes')}.", ""]
    header = ["compression", "bytes per view"]
    for t in temps:
        header += [f"T = {t}: KL mean / p99 / max", f"T = {t}: KL mean x T²"]
    rows = []
    for name, c in d["compressions"].items():
        row = [code(name), fmt(c["bytes"])]
        for t in temps:
            f = c["fidelity"][t]
            row += [" / ".join(sci(f[k]) for k in ("kl_mean", "kl_p99", "kl_max")),
                    sci(f.get("scaled_kl_mean"))]
        rows.append(row)
    return lines + table(header, rows)


def compression_frontier(data: dict[str, Data]) -> Lines:
    """Scalar vs trellis-coded basis codes at a fixed size, held out and on all rows."""
    ((_, d),) = data.items()
    st = d["status"]
    lines = [f"Teacher: {d.get('teacher')}. KL: {d.get('kl')}. Target: {st['target']}. "
             f"Tables: {d.get('tables')}.", ""]
    temps = [k for k in d["results"][0]["fidelity"] if k != "top1_agreement"]
    lines += table(["method", "split", "rank", "bytes per row", "table bytes",
                    "bytes per view, 60,000 x 4", *(f"T = {t}: KL mean / p99 / max"
                                                    for t in temps), "top-1 agreement"],
                   [[r["method"], r["split"], r["rank"], fmt(r["bytes_per_row"]),
                     fmt(r["table_bytes"]), fmt(r["bytes_per_view_60000x4"]),
                     *(" / ".join(sci(r["fidelity"][t][k]) for k in ("kl_mean", "kl_p99",
                                                                    "kl_max"))
                       for t in temps), acc(r["fidelity"].get("top1_agreement"))]
                    for r in d["results"]])
    rows = [[split, method, fmt(st["fewest_bytes_per_row"][split][method]),
             "yes" if st["meets_target_at_64_bytes"][split][method] else "no"]
            for split in st["fewest_bytes_per_row"] for method in
            st["fewest_bytes_per_row"][split]]
    return lines + table(["split", "method", "fewest bytes per row meeting the target",
                          "meets it at 64 bytes"], rows)


def flat(d: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """The scalar leaves of nested dicts (lists of scalars joined), as ``a.b`` keys."""
    if isinstance(d, dict):
        return [kv for k, v in d.items() for kv in flat(v, f"{prefix}{k}.")]
    if isinstance(d, list) and all(not isinstance(x, dict | list) for x in d):
        return [(prefix[:-1], ", ".join(short(x) for x in d))]
    if isinstance(d, list):
        return [kv for i, v in enumerate(d) for kv in flat(v, f"{prefix}{i}.")]
    return [(prefix[:-1], d)]


def generic(data: dict[str, Data]) -> Lines:
    """Any results file: its values, keys flattened (provenance apart)."""
    ((_, d),) = data.items()
    rest = {k: v for k, v in d.items() if k not in ("provenance", "earlier_provenance")}
    return table(["key", "value"], [[code(k), short(v)] for k, v in flat(rest)])


# --- the page --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Section:
    """One ``##`` section: its title (its anchor is :func:`slug` of it), the results files it
    renders, what it measures (fixed text, no numbers) and its renderer."""

    title: str
    theme: str
    files: tuple[str, ...]
    about: str
    render: Callable[[dict[str, Data]], Lines]

    @property
    def anchor(self) -> str:
        return slug(self.title)


THEMES = ("The main job", "Channels and baselines", "Distillation studies",
          "Students and serving", "Speed", "Teacher cache")

KD_LINES = ("kd_awgn_default_10ep", "kd_awgn_default_10ep_v0.5", "kd_awgn_default_10ep_torch",
            "kd_awgn_default", "kd_awgn_default_torch", "kd_awgn_default_torch_seed0")
BACKENDS = ("backends", "backends_malloc_default", "backends_omp_passive", "backends_omp_active",
            "backends_threads1")


def _kd(title: str, theme: str, name: str, about: str) -> Section:
    return Section(title, theme, (name,), about, kd_awgn)


def _one(title: str, theme: str, name: str, about: str,
         render: Callable[[dict[str, Data]], Lines]) -> Section:
    return Section(title, theme, (name,), about, render)


MAIN, CHANNELS, STUDIES, STUDENTS, SPEED, CACHE = THEMES
SECTIONS: tuple[Section, ...] = (
    _kd("Main job", MAIN, "kd_awgn_default",
        "The main job (`examples/kd_awgn.py`): the default student distilled over AWGN from "
        "the shipped cache, accuracy against SNR over the whole test split, mean and standard "
        "deviation over training seeds."),
    Section("Main job on both Sionna lines", MAIN, KD_LINES,
            "The main job's runs side by side: the same command on Sionna 1.2 (Keras on "
            "TensorFlow) and Sionna 2.x (Keras on torch), at the short and the full schedule. "
            "Each row links to its file's section.", kd_lines_summary),
    _kd("Main job on torch", MAIN, "kd_awgn_default_torch",
        "The main job on Sionna 2.x (Keras on torch), training seeds run as separate jobs and "
        "joined with `--combine`."),
    _kd("Main job on torch seed 0", MAIN, "kd_awgn_default_torch_seed0",
        "Seed 0 of the main job on torch, alone (one of the files joined above)."),
    _kd("Main job 10 epochs", MAIN, "kd_awgn_default_10ep",
        "The main job at a short schedule, one seed, one channel draw."),
    _kd("Main job 10 epochs rerun", MAIN, "kd_awgn_default_10ep_v0.5",
        "The same short run, rerun after the link and trainer changed (same seed and "
        "command)."),
    _kd("Main job 10 epochs on torch", MAIN, "kd_awgn_default_10ep_torch",
        "The same short run on Sionna 2.x (Keras on torch)."),
    _kd("Previous default student", MAIN, "kd_awgn_conv-w32",
        "The main job with the previous default student (plain convolutions), trained on "
        "all training images (no validation split)."),
    _one("Digital baseline", CHANNELS, "digital_vs_analog",
         "The analog student against separate source-channel coding (quantization, 5G LDPC, "
         "QAM) and against sending the class index, at the same number of complex channel "
         "uses per image, over AWGN and block Rayleigh.", digital_vs_analog),
    _one("Fast distillation", STUDIES, "fast_distillation",
         "Labels only, distillation from the cache (1, 2 or 4 stored views) and online "
         "distillation (the teacher in the loop): step time and accuracy, same student, loss "
         "and steps.", fast_distillation),
    _one("Ablations", STUDIES, "ablations",
         "The full student against one change at a time, over AWGN, block Rayleigh and OFDM "
         "(a slot per example and shared slots).", ablations),
    _one("Hyperparameters", STUDIES, "hyperparameters",
         "One loss setting varied at a time around the main job's defaults, chosen on "
         "validation.", hyperparameters),
    _kd("Alpha 0.25 and deterministic encoder", STUDIES, "kd_awgn_alpha0.25_deterministic",
        "The two settings that led at the short schedule (α = 0.25 and the deterministic "
        "encoder, together), checked at the main job's full schedule over seeds."),
    _kd("Alpha 0.25 and deterministic encoder 10 epochs", STUDIES,
        "kd_awgn_alpha0.25_deterministic_10ep",
        "The same two settings at the short schedule, one seed."),
    _one("Few labels", STUDIES, "few_labels",
         "The student trained with a fraction of the labels, distilled from the cached teacher "
         "(which saw every label) or teacher-free.", few_labels),
    _one("Student frontier", STUDENTS, "student_frontier",
         "Students from the smallest to the previous default: size, multiply-accumulates, and "
         "accuracy distilled against labels only; every other arm the file holds (feature "
         "distillation, another teacher) below.", student_frontier),
    _one("Latency sep-w48-h128", STUDENTS, "latency_sep-w48-h128",
         "Per-example latency of the default student's two ends against the teacher's "
         "forward, and their size.", latency),
    _one("Latency sep-w36-h128", STUDENTS, "latency_sep-w36-h128",
         "The same for the frontier's smaller separable student.", latency),
    _one("Latency conv-w32-h256", STUDENTS, "latency_conv-w32-h256",
         "The same for the previous default student.", latency),
    _one("Stronger teacher", STUDENTS, "teacher_lite2_training",
         "The recipe and test accuracy of the EfficientNet-Lite2 teacher the student frontier "
         "tried (its weights and cache are not shipped).", generic),
    Section("Speed on both lines", SPEED, BACKENDS,
            "Training step, timed epochs of the main job and traced latency, torch line over "
            "TensorFlow line (above 1: torch slower), one row per backends run; compare ratios "
            "within a row.",
            backends_summary),
    _one("Backends", SPEED, "backends",
         "The default student's training step, two timed epochs of the main job's training "
         "and its ends' traced latency on both Sionna lines, interleaved.", backends),
    _one("Backends malloc default", SPEED, "backends_malloc_default",
         "The same run with `TOSC_SIONNA_TUNE_MALLOC=0` in the environment "
         "(`TOSC_SIONNA_TUNE_MALLOC=0 python -m benchmarks.backends ...`): the torch line "
         "with glibc's own mmap and trim thresholds (`tosc_sionna.backends.torch_malloc`).",
         backends),
    _one("Backends OpenMP passive", SPEED, "backends_omp_passive",
         "The same run with `OMP_WAIT_POLICY=PASSIVE` in the environment "
         "(`OMP_WAIT_POLICY=PASSIVE python -m benchmarks.backends ...`; what `tosc_sionna` "
         "set on the torch line until it left torch's own policy in place): torch's OpenMP "
         "threads sleep between operations instead of spinning briefly (TensorFlow's thread "
         "pools do not read it).", backends),
    _one("Backends OpenMP spinning", SPEED, "backends_omp_active",
         "An older run (before the allocator setting and the timed epochs) with torch's own "
         "OpenMP wait policy, its threads spinning, on a machine other jobs oversubscribed "
         "(load average 4-6): what `OMP_WAIT_POLICY=PASSIVE` is for.", backends),
    _one("Backends one thread", SPEED, "backends_threads1",
         "The same with one thread per line.", backends),
    _one("XLA training", SPEED, "xla_training",
         "Graph mode against XLA for the link demo's training, first and steady epochs.",
         xla_training),
    _one("OFDM channel step", SPEED, "ofdm_channel_step",
         "One forward and gradient through the OFDM channel: the static channel (one OFDM "
         "symbol's response repeated over the slot) against Sionna's full per-symbol "
         "generation, with shared slots and with a slot per example.", ofdm_channel_step),
    _one("OFDM estimator build", SPEED, "ofdm_estimator_build",
         "Building the OFDM LMMSE channel estimator: the two Kronecker factors of the pilot "
         "covariance against the whole covariance (not attempted at 100 MHz: 2.7 GB).",
         ofdm_estimator_build),
    _one("View seeds", SPEED, "view_seeds",
         "The per-view seeds of the augmentation: the per-seed loop against the vectorized "
         "mixing.", view_seeds),
    _one("Augmented views", SPEED, "augment_views",
         "The augmented views of a batch, image by image against the batch path the reader "
         "and the extractor use.", augment_views),
    _one("Extraction throughput", CACHE, "extraction_throughput",
         "`tosc-cache extract` end to end against a bare torch forward loop over the same "
         "model and inputs.", extraction_throughput),
    _one("Cache scale", CACHE, "cache_scale",
         "An ImageNet-size cache through the real writer: finalization, and the reader (cold "
         "and warm page cache) against the training step it feeds.", cache_scale),
    _one("Compression fidelity", CACHE, "compression_fidelity",
         "KL from the shipped teacher's distribution to each stored compression's "
         "reconstruction, both tempered as training tempers them.", compression_fidelity),
    _one("Compression fidelity 1000 classes", CACHE, "compression_fidelity_imagenet1000",
         "The same for a 1000-class teacher (ImageNet EfficientNet-Lite0 on Fashion-MNIST "
         "images: flat distributions, a stress test).", compression_fidelity),
    _one("Compression frontier 1000 classes", CACHE, "compression_frontier_imagenet1000",
         "Basis codes at a fixed size for the 1000-class teacher: scalar quantization against "
         "trellis-coded quantization, codebooks fitted on held-out rows or on all.",
         compression_frontier),
)

#: every section's anchor, in page order: link to ``docs/results.md#ANCHOR``
ANCHORS: tuple[str, ...] = tuple(s.anchor for s in SECTIONS)
#: the section that renders a results file on its own (the summaries link to it)
SECTION_OF: dict[str, str] = {name: s.anchor for s in SECTIONS for name in s.files
                              if len(s.files) == 1}


def results_files(results: Path) -> list[str]:
    """The results files in ``results`` (``*.json``; lock files and figures are not)."""
    return sorted(p.stem for p in Path(results).glob("*.json"))


def generate(results: str | Path = RESULTS) -> str:
    """The results page from the files in ``results``. Raises ``ValueError`` naming a results
    file that no section renders and :data:`SKIPPED` does not list, or a section's file
    that is missing."""
    results = Path(results)
    names = results_files(results)
    covered = {name for s in SECTIONS for name in s.files}
    left_off = [n for n in names if n not in covered and f"{n}.json" not in SKIPPED]
    if left_off:
        raise ValueError(
            f"results files without a section on the page: {', '.join(left_off)}; add a "
            f"Section to benchmarks/results_page.py (or a reason to SKIPPED)")
    missing = sorted(covered - set(names))
    if missing:
        raise ValueError(f"sections render results files that are not in {results}: "
                         f"{', '.join(missing)}")
    data = {n: json.loads((results / f"{n}.json").read_text()) for n in names}
    out = [
        "# Results", "",
        "Every measurement of this project, one section per results file in "
        "`benchmarks/results/`. All numbers were measured on the machine named in each "
        "section's provenance, and every number on this page is read from those files: the "
        f"page is generated by `{COMMAND}` and `tests/test_results_page.py` fails when it "
        "differs from what the files give (`--check` says the same). Accuracies are "
        "fractions of the test (or validation) images; mean ± standard deviation over "
        "training seeds where a file has several.", "",
    ]
    if SKIPPED:
        out += ["Left off on purpose: " + "; ".join(f"`{k}` ({v})"
                                                    for k, v in sorted(SKIPPED.items())), ""]
    out += ["## Contents", ""]
    for theme in THEMES:
        out.append(f"- {theme}: " + ", ".join(f"[{s.title}](#{s.anchor})" for s in SECTIONS
                                             if s.theme == theme))
    out.append("")
    for theme in THEMES:
        for s in (s for s in SECTIONS if s.theme == theme):
            out += [f"## {s.title}", "", f"*{theme}.* {s.about}", ""]
            out += s.render({n: data[n] for n in s.files})
            figures = [n for n in s.files if (results / f"{n}.png").exists()]
            if figures:
                out += ["Figure: " + ", ".join(f"[{n}.png]({FIGURES}/{n}.png)"
                                               for n in figures) + ".", ""]
            out += ["Provenance:", ""]
            out += [provenance_line(f"{n}.json", data[n]) for n in s.files]
            out.append("")
    while out[-1] == "":
        out.pop()
    return "\n".join(out) + "\n"


def check(page: str | Path = PAGE, results: str | Path = RESULTS) -> tuple[bool, str]:
    """Whether the committed ``page`` is what :func:`generate` gives, and a unified diff
    (committed to generated) where it is not."""
    page = Path(page)
    committed = page.read_text() if page.exists() else ""
    generated = generate(results)
    diff = "".join(difflib.unified_diff(committed.splitlines(keepends=True),
                                        generated.splitlines(keepends=True),
                                        f"{page} (committed)", f"{page} (generated)"))
    return committed == generated, diff


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0].strip())
    p.add_argument("--out", default=str(PAGE.relative_to(ROOT)),
                   help="the page to write (or check), relative to the repository root "
                        "unless absolute (default docs/results.md)")
    p.add_argument("--results", default=str(RESULTS), help=argparse.SUPPRESS)
    p.add_argument("--check", action="store_true",
                   help="write nothing; exit 1 with a diff if the page differs from what the "
                        "results files give")
    args = p.parse_args(argv)
    out = Path(args.out)
    out = out if out.is_absolute() else ROOT / out
    if args.check:
        same, diff = check(out, args.results)
        if not same:
            print(f"{out} is out of date with benchmarks/results/*.json; regenerate it with "
                  f"`{COMMAND}`", file=sys.stderr)
            sys.stdout.write(diff)
            return 1
        return 0
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(generate(args.results))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
