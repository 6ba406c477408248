"""The command-line flags the benchmarks share, from one parser builder."""

from __future__ import annotations

import argparse
from pathlib import Path

#: where the benchmarks write their results
RESULTS = Path(__file__).resolve().parents[1] / "results"


def parser(doc: str | None, *, quick: str | None = None, seeds: list[int] | None = None,
           epochs: int | None = None, out: str | Path | None = None,
           out_help: str = "results folder") -> argparse.ArgumentParser:
    """An argument parser described by the first paragraph of ``doc`` (a module docstring)
    with the common flags asked for: ``--quick`` (``quick`` is its help: what the smoke run
    does), ``--seeds`` (default ``seeds``), ``--epochs`` (default ``epochs``)
    and ``--out`` (default ``out``: a folder or a file, as ``out_help`` says)."""
    p = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0].strip())
    if quick is not None:
        p.add_argument("--quick", action="store_true", help=quick)
    if seeds is not None:
        p.add_argument("--seeds", type=int, nargs="+", default=list(seeds), metavar="S",
                       help=f"training seeds (default {' '.join(map(str, seeds))})")
    if epochs is not None:
        p.add_argument("--epochs", type=int, default=epochs,
                       help=f"training epochs, the same for every run (default {epochs})")
    if out is not None:
        p.add_argument("--out", default=str(out), help=f"{out_help} (default {out})")
    return p



def results_file(out: str | Path, name: str, quick: bool = False) -> Path:
    """The results file a run writes: ``out`` itself where it names a ``.json`` file, else
    ``out/NAME.json`` in the folder ``out`` (``NAME_quick.json`` for a ``--quick`` run, so
    that a smoke run never replaces a full run's file)."""
    out = Path(out)
    if out.suffix == ".json":
        return out
    return out / f"{name}{'_quick' if quick else ''}.json"
