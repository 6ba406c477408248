"""Load the project's scripts (examples and benchmarks, which are not a package) as modules."""

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"
KD_JOB = ROOT / "examples" / "kd_awgn.py"


def load_script(path: Path) -> ModuleType:
    """A fresh module executed from the Python file at ``path``."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_benchmark(name: str) -> ModuleType:
    """``benchmarks/<name>.py``, with its folder importable (the benchmarks share ``harness``)."""
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    return load_script(BENCHMARKS / f"{name}.py")
