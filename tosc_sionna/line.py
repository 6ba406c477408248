"""Which Sionna line this environment has, and the Keras backend it needs.

Sionna 2.x runs on PyTorch, Sionna 1.2.x on TensorFlow; tosc-sionna's Keras
layers run on either, through Keras' matching backend. This module is
imported before Keras (``tosc_sionna/__init__.py`` does it first) so that
it can choose the backend when the user has not, and refuse a mismatch in
one line instead of failing deep inside a Sionna call.

It reads Sionna's version from the package's files, without importing Sionna
or Keras.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
import sys
from pathlib import Path

#: Keras backend of each Sionna line, by major version.
TORCH_LINE = "torch"
TENSORFLOW_LINE = "tensorflow"

_INSTALL_HINT = (
    "install one Sionna line: pip install 'tosc-sionna[torch]' (Sionna 2.x, PyTorch) "
    "or pip install 'tosc-sionna[tensorflow]' (Sionna 1.2, TensorFlow)"
)


class SionnaLineError(ImportError):
    """The environment's Sionna, its distributions or the Keras backend do not fit together."""


def sionna_version() -> str:
    """The version of the importable ``sionna`` package, read from its ``__init__.py``."""
    spec = importlib.util.find_spec("sionna")
    if spec is None or spec.origin is None:
        raise SionnaLineError(f"tosc_sionna needs Sionna, which is not installed: {_INSTALL_HINT}.")
    text = Path(spec.origin).read_text(encoding="utf-8", errors="replace")
    match = re.search(r"""^__version__\s*=\s*["']([^"']+)["']""", text, re.MULTILINE)
    if match is None:
        raise SionnaLineError(f"Cannot read Sionna's version from {spec.origin}: {_INSTALL_HINT}.")
    return match.group(1)


def backend_for(version: str) -> str:
    """The Keras backend a Sionna version runs on: ``"torch"`` from 2.0, else ``"tensorflow"``."""
    match = re.match(r"\d+", version)
    return TORCH_LINE if match and int(match.group(0)) >= 2 else TENSORFLOW_LINE


def check_distributions() -> None:
    """Refuse ``sionna`` and ``sionna-no-rt`` installed together (they share one package)."""
    found = {}
    for name in ("sionna", "sionna-no-rt"):
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    if len(found) == 2:
        raise SionnaLineError(
            f"Both sionna {found['sionna']} and sionna-no-rt {found['sionna-no-rt']} are "
            "installed; they write the same 'sionna' package, so one overwrote the other: "
            "pip uninstall -y sionna sionna-no-rt, then install the one you want."
        )


def select_backend() -> str:
    """Check the environment and make Keras use the Sionna line's backend.

    With Keras not imported yet and ``KERAS_BACKEND`` unset, sets it to the
    line's backend (it takes precedence over ``~/.keras/keras.json``).
    Raises :class:`SionnaLineError` (one line saying what to change) when
    Sionna is missing or installed twice, or when Keras is imported with (or
    ``KERAS_BACKEND`` names) another backend.
    """
    check_distributions()
    version = sionna_version()
    wanted = backend_for(version)
    line = f"Sionna {version} ({'PyTorch' if wanted == TORCH_LINE else 'TensorFlow'} line)"
    if "keras" in sys.modules:
        current = sys.modules["keras"].backend.backend()
        if current != wanted:
            raise SionnaLineError(
                f"{line} needs Keras' {wanted} backend, but Keras was imported with the "
                f"{current} backend: set KERAS_BACKEND={wanted} before importing keras."
            )
        return wanted
    # KERAS_BACKEND overrides keras.json, which Keras writes with "tensorflow" on
    # its first import: only an explicit choice is a mismatch to refuse
    configured = os.environ.get("KERAS_BACKEND")
    if not configured:
        os.environ["KERAS_BACKEND"] = wanted
    elif configured != wanted:
        raise SionnaLineError(
            f"{line} needs Keras' {wanted} backend, but Keras is set to {configured}: "
            f"set KERAS_BACKEND={wanted} (or unset it)."
        )
    if importlib.util.find_spec(wanted) is None:
        raise SionnaLineError(f"{line} needs {wanted}, which is not installed: {_INSTALL_HINT}.")
    # OpenMP's wait policy stays torch's (its threads spin briefly between operations):
    # PASSIVE made the training step about 1.3x slower on a quiet CPU, spinning up to 10x
    # slower on a CPU other jobs oversubscribe; that trade is the user's
    # (docs/getting-started.md, benchmarks/results/backends_omp_passive.json)
    return wanted
