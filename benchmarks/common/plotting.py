"""One way to draw a benchmark's figure: matplotlib's Agg backend, saved, closed."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def figure(path: str | Path, dpi: int = 110, **subplots: Any) -> Iterator[tuple[Any, Any]]:
    """``with figure(path, nrows=.., figsize=..) as (fig, axes): ...`` draws on
    ``plt.subplots(**subplots)`` (Agg backend, no display) and then lays the figure out, saves
    it to ``path`` and closes it (also if drawing fails, then without saving)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(**subplots)
    try:
        yield fig, axes
        fig.tight_layout()
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=dpi)
    finally:
        plt.close(fig)
