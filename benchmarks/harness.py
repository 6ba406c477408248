"""What the training benchmarks share: the splits, the default student and its training.

(What every benchmark shares, training or not, is :mod:`benchmarks.common`.)

Every benchmark that trains students uses the shipped Fashion-MNIST cache with
the main job's conventions (``examples/kd_awgn.py``): 5,000 training images
held out for validation by :func:`~tosc_sionna.data.split_rows` with seed 0
(never trained on), batches of 128, the default student
(:data:`tosc_sionna.DEFAULT_STUDENT`: stochastic encoder, 16 symbols, a
training SNR uniform in [-10, 20] dB) and the one training recipe,
:func:`tosc_sionna.make_trainer` (IB distillation loss at temperature 4, beta
1e-4, Adam with cosine decay from 2e-3 over the whole run), unless a benchmark
says otherwise (and then its results say which student it used).
"""

from __future__ import annotations

import time
from typing import Any

import tosc_sionna as ts  # before Keras: it picks Keras' backend from the Sionna line

# isort: split
import keras
import numpy as np

from tosc_sionna.data import (
    TeacherCache,
    TeacherCacheDataset,
    load_dataset,
    split_rows,
    student_inputs,
)
from tosc_sionna.evaluation import accuracy_vs_snr

#: Training images held out for validation (kd_awgn's default) and the seed of the split.
VAL_IMAGES, VAL_SEED = 5000, 0
#: The student the ablations, the digital-vs-analog and the fast-distillation results
#: were measured with (the main job's default before 0.4: plain convolutions of width
#: 32, 256 hidden units, 1/20 of the teacher); those benchmarks keep it, and say so.
PREVIOUS_STUDENT = "conv-w32-h256"


def splits(cache: TeacherCache, test: bool = True, limit: int | None = None) -> dict[str, Any]:
    """Training rows, the held-out validation images and (``test``) the test split.

    ``limit`` keeps the first images of the validation and test splits (smoke runs).
    """
    train_rows, val_rows = split_rows(cache.num_samples, VAL_IMAGES, VAL_SEED)
    probe = TeacherCacheDataset(cache, rows=train_rows)
    out = {"train_rows": train_rows, "steps": len(probe), "input_shape": probe.input_shape,
           "x_val": student_inputs(probe.images[probe.index[val_rows[:limit]]]),
           "y_val": probe.labels[val_rows[:limit]]}
    if test:
        images, labels, _ = load_dataset(cache.spec.dataset, "test")
        out["x_test"] = student_inputs(images[:limit])
        out["y_test"] = np.asarray(labels).astype(np.int64)[:limit]
    return out


def student(channel: keras.layers.Layer, num_classes: int, seed: int,
            student: str = ts.DEFAULT_STUDENT, **overrides: Any) -> ts.TaskOrientedLink:
    """The named student (default: the default student) around ``channel``, seeded;
    ``overrides`` go to :func:`tosc_sionna.make_link`."""
    ts.set_seed(seed)
    return ts.make_link(channel, student=student, num_classes=num_classes, seed=seed,
                        **overrides)


def fit(link: ts.TaskOrientedLink, data: TeacherCacheDataset, epochs: int, steps: int,
        callbacks: list | None = None, **recipe: Any) -> float:
    """Train ``link`` with :func:`tosc_sionna.make_trainer`'s recipe (``recipe``: its
    ``alpha``, ``temperature``, ``beta``, ``feature_dim``, ``feature_weight``); the
    seconds it took."""
    trainer = ts.make_trainer(link, steps_per_epoch=steps, epochs=epochs, **recipe)
    start = time.time()
    trainer.fit(data, epochs=epochs, steps_per_epoch=steps, verbose=0, callbacks=callbacks)
    return time.time() - start


def relink(trained: ts.TaskOrientedLink, channel: keras.layers.Layer) -> ts.TaskOrientedLink:
    """The trained encoder, modules and decoder around another channel layer."""
    return ts.TaskOrientedLink(trained.encoder, channel, trained.decoder, tx_cam=trained.tx_cam,
                               rx_cam=trained.rx_cam, snr_train_db=trained.snr_train_db)


def evaluate(link: ts.TaskOrientedLink, split: dict[str, Any], snrs: list[float], draws: int,
             seed: int, test: bool) -> tuple[list[float], list[float] | None]:
    """Validation (and with ``test`` test) accuracy at ``snrs``, channel draws seeded by
    ``1000 + seed``: the same evaluation for every training benchmark."""
    ts.set_seed(1000 + seed)
    val = accuracy_vs_snr(link, split["x_val"], split["y_val"], snrs, draws=draws,
                          batch_size=1000)["accuracy"]
    if not test:
        return val, None
    return val, accuracy_vs_snr(link, split["x_test"], split["y_test"], snrs, draws=draws,
                                batch_size=1000)["accuracy"]


def evaluate_test(link: ts.TaskOrientedLink, split: dict[str, Any], snrs: list[float],
                  draws: int, seed: int) -> list[float]:
    """Test accuracy alone (a test pass run after a selection on validation), channel draws
    seeded by ``2000 + seed``: not the validation's draws (``1000 + seed``), so no lucky
    fade or noise draw that won the selection is replayed on the test images."""
    ts.set_seed(2000 + seed)
    return accuracy_vs_snr(link, split["x_test"], split["y_test"], snrs, draws=draws,
                           batch_size=1000)["accuracy"]

