"""Writing a results file: with its provenance, atomically, under a lock, merged with what
other processes wrote since it was read."""

from __future__ import annotations

import fcntl
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tosc_cache.provenance import provenance, versions


def sionna_line() -> dict[str, str | None]:
    """The Sionna line this process measured on: ``{"keras_backend", "sionna"}``.

    Keras' backend is that of the Keras this process imported (importing :mod:`tosc_sionna`
    picks it from the installed Sionna); ``None`` where the process ran no Keras (a
    benchmark that runs both lines in subprocesses records theirs itself). Sionna's version
    is the installed distribution's, ``None`` without one. Nothing is imported."""
    keras = sys.modules.get("keras")
    return {"keras_backend": keras.backend.backend() if keras is not None else None,
            "sionna": versions().get("sionna")}


def run_provenance(argv: Sequence[str] | None = None,
                   script: str | None = None) -> dict[str, Any]:
    """The provenance of a results file written now: :func:`tosc_cache.provenance.provenance`
    (commit, command, versions, machine, date; ``argv`` and ``script`` as there) and the
    Sionna line that measured, ``"line"`` (:func:`sionna_line`)."""
    return {**provenance(argv, script), "line": sionna_line()}


def merge_runs(mine: list[dict], theirs: list[dict], written: set,
               key: Callable[[dict], Any]) -> list[dict]:
    """One entry's runs after a merge: those on disk (``theirs``) that this process did not
    measure again, then the ones it measured (their ``key`` is in ``written``); one run per
    key, the last (a file may hold a run twice under keys a later parameter made equal)."""
    runs = ([r for r in theirs if key(r) not in written]
            + [r for r in mine if key(r) in written])
    return list({key(r): r for r in runs}.values())


def save_merged(path: str | Path, results: dict, merge: Callable[[dict], None] | None = None,
                record: dict | None = None) -> None:
    """Write ``results`` as JSON to ``path``, atomically and under an exclusive lock
    (``path.lock``), after ``merge(on_disk)`` has folded into ``results`` what other
    processes wrote since it was read: benchmarks that accumulate runs can run side by
    side and be interrupted without losing or clobbering a measurement.

    ``results["provenance"]`` becomes ``record`` (default: :func:`run_provenance` of this
    process); the provenance of earlier writers with another commit or command is kept in
    ``results["earlier_provenance"]``, so a file that accumulated runs over several commits
    says so."""
    path = Path(path)
    record = run_provenance() if record is None else record
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        on_disk = json.loads(path.read_text()) if path.exists() else {}
        if merge is not None:
            merge(on_disk)
        earlier = [*on_disk.get("earlier_provenance", []), *results.get("earlier_provenance", [])]
        if on_disk.get("provenance"):
            earlier.append(on_disk["provenance"])
        seen = {(record["commit"], record["command"])}
        kept = []
        for p in earlier:
            if (p.get("commit"), p.get("command")) not in seen:
                seen.add((p.get("commit"), p.get("command")))
                kept.append(p)
        results["provenance"] = record
        if kept:
            results["earlier_provenance"] = kept
        staged = path.with_suffix(".json.tmp")
        staged.write_text(json.dumps(results, indent=2, default=_plain) + "\n")
        os.replace(staged, path)


def write_results(path: str | Path, results: dict, argv: Sequence[str] | None = None,
                  script: str | None = None, line: Any = None) -> Path:
    """Write a results file that one run measures whole (no runs to merge): ``results`` with
    the provenance of this command (:func:`run_provenance`; ``argv`` and ``script`` as in
    :func:`tosc_cache.provenance.command`; ``line``, if given, replaces its ``"line"``: a
    benchmark that measured the lines in subprocesses records theirs), replacing what was
    there, under the same lock as :func:`save_merged`. Returns the path."""
    path = Path(path)
    record = run_provenance(argv, script)
    if line is not None:
        record["line"] = line
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        staged = path.with_suffix(".json.tmp")
        staged.write_text(json.dumps({**results, "provenance": record}, indent=2,
                                     default=_plain) + "\n")
        os.replace(staged, path)
    return path


def _plain(value: Any) -> Any:
    """NumPy scalars and arrays as JSON numbers and lists."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
