"""Interleaved repeats: every candidate once per round, so a slow phase of a shared machine
hits all of them alike; best, median and spread of each."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from typing import Any


def stats(values: list[float]) -> dict[str, Any]:
    """``{"best": min, "median", "spread": max / min, "all": values}``."""
    best = min(values)
    return {"best": best, "median": statistics.median(values),
            "spread": max(values) / best if best > 0 else float("inf"), "all": list(values)}


def interleaved(measure: Mapping[str, Callable[[], float]], repeats: int,
                warmup: int = 0) -> dict[str, dict[str, Any]]:
    """Stats (:func:`stats`) of what each ``measure[name]()`` returns (a duration it measured
    itself), ``repeats`` rounds, every candidate once per round in order, after ``warmup``
    unrecorded rounds."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1; got {repeats}")
    values: dict[str, list[float]] = {name: [] for name in measure}
    for r in range(warmup + repeats):
        for name, fn in measure.items():
            value = fn()
            if r >= warmup:
                values[name].append(value)
    return {name: stats(v) for name, v in values.items()}


def time_interleaved(candidates: Mapping[str, Callable[[], Any]], repeats: int, *,
                     calls: int | Mapping[str, int] = 1, warmup: int = 0,
                     clock: Callable[[], float] = time.perf_counter) -> dict[str, dict[str, Any]]:
    """Seconds per call of each candidate (wall time of ``calls`` calls in a row, divided by
    ``calls``; ``calls`` may differ per candidate), interleaved as :func:`interleaved`:
    ``{name: {"best", "median", "spread", "all"}}``."""
    def timed(name: str, fn: Callable[[], Any]) -> Callable[[], float]:
        n = calls if isinstance(calls, int) else calls.get(name, 1)

        def run() -> float:
            start = clock()
            for _ in range(n):
                fn()
            return (clock() - start) / n
        return run

    return interleaved({name: timed(name, fn) for name, fn in candidates.items()}, repeats,
                       warmup)
