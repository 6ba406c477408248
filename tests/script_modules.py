"""Load the project's scripts (the examples, which are not a package) and benchmarks as modules."""

import importlib
import importlib.util
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
    """``benchmarks.<name>`` (the benchmarks are a package, importable from the repository
    root: setup.cfg's ``pythonpath``)."""
    return importlib.import_module(f"benchmarks.{name}")
