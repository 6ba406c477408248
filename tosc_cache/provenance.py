"""Where a number came from: ``provenance()`` for a results file.

Standard library only. The benchmarks (``benchmarks.common``) and the main job
(``examples/kd_awgn.py``, also when copied out of the repository) record their results
with it; the commit is that of the git work tree this package lives in (an editable
install of a clone), ``"unknown"`` otherwise.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import shlex
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
#: the distributions whose versions a results file records (those installed)
PACKAGES = ("numpy", "keras", "tensorflow", "sionna", "torch", "transformers", "h5py")
#: distribution names to try for a package (Sionna installs as ``sionna-no-rt`` or ``sionna``)
DISTRIBUTIONS = {"sionna": ("sionna-no-rt", "sionna")}


def machine() -> str:
    """The processor, its logical CPUs and the OS, one line: the one "machine" of every
    results file (e.g. ``"x86_64 (AMD EPYC 7B13), 2 CPUs, Linux-6.1-x86_64"``)."""
    name = _cpu_model()
    arch = platform.machine() or "unknown"
    return (f"{arch}{f' ({name})' if name else ''}, {os.cpu_count()} CPUs, "
            f"{platform.system()}-{platform.release()}")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor()


def versions() -> dict[str, str]:
    """Python's version and those of :data:`PACKAGES` that are installed (read from their
    metadata: nothing is imported)."""
    out = {"python": platform.python_version()}
    for package in PACKAGES:
        for dist in DISTRIBUTIONS.get(package, (package,)):
            try:
                out[package] = importlib.metadata.version(dist)
                break
            except importlib.metadata.PackageNotFoundError:
                continue
    return out


def commit(root: Path = ROOT) -> str:
    """``git rev-parse HEAD`` of ``root``, with ``-dirty`` if tracked files have uncommitted
    changes; ``"unknown"`` outside a git work tree (or without git)."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                              text=True, check=True).stdout.strip()
        # results files are outputs, not code: writing one does not make the next run dirty
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--",
                                ".", ":(exclude)benchmarks/results"],
                               cwd=root, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("-dirty" if dirty.strip() else "")


def command(argv: Sequence[str] | None = None, script: str | None = None) -> str:
    """The command line that ran: ``python -m benchmarks.NAME ARGS`` for a module run with
    ``-m``, ``python PATH ARGS`` for a script. ``script`` (a module name or a path relative to
    the repository root) and ``argv`` (its arguments) name a job called in-process instead,
    such as ``main([...])`` of ``examples/kd_awgn.py`` called by ``benchmarks.few_labels``.
    A benchmark passes its ``__name__`` as ``script``: ``"__main__"`` (it runs as
    ``python -m``) counts as no name, so its ``argv`` of ``None`` reads ``sys.argv``."""
    if script == "__main__":
        script = None
    if script is not None:
        head = ["python", script] if script.endswith(".py") else ["python", "-m", script]
    else:
        spec = getattr(sys.modules.get("__main__"), "__spec__", None)
        if spec is not None and spec.name:  # python -m NAME
            head = ["python", "-m", spec.name.removesuffix(".__main__")]
        else:  # python PATH (or -c, or an interpreter embedding Python)
            path = Path(sys.argv[0]).resolve()
            head = ["python", str(path.relative_to(ROOT)) if sys.argv[0].endswith(".py")
                    and path.is_relative_to(ROOT) else sys.argv[0]]
    args = list(sys.argv[1:] if argv is None else argv)
    return shlex.join(head + [str(a) for a in args])


#: The commit of the code this process imported: a run records where it started, not what
#: the work tree holds when it finishes hours later.
STARTED_AT = commit()


def provenance(argv: Sequence[str] | None = None, script: str | None = None,
               root: Path = ROOT) -> dict[str, Any]:
    """``{"commit", "command", "versions", "machine", "date"}`` of a results file written now
    (``argv`` and ``script`` as in :func:`command`): the commit is the one this process
    started from (:data:`STARTED_AT`, for the repository's own root)."""
    return {"commit": STARTED_AT if root == ROOT else commit(root),
            "command": command(argv, script), "versions": versions(),
            "machine": machine(),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
