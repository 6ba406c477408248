"""tosc_sionna.backends.torch_malloc: glibc's thresholds on the torch line, what they change
(page faults of a step-like allocation pattern), the switch that keeps the defaults, and
OpenMP's wait policy left as torch has it."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tosc_sionna.backends import torch_malloc

ROOT = Path(__file__).resolve().parents[1]
MODULE = ROOT / "tosc_sionna" / "backends" / "torch_malloc.py"
GLIBC = sys.platform.startswith("linux") and torch_malloc._glibc_mallopt() is not None

# A training step in miniature: 20 blocks of 4 MiB (an activation each) allocated, then
# all freed; the minor page faults of each round after the first, printed as a list.
STEPS = f"""
import importlib.util, resource, sys
import numpy as np
spec = importlib.util.spec_from_file_location("torch_malloc", {str(MODULE)!r})
torch_malloc = importlib.util.module_from_spec(spec)
spec.loader.exec_module(torch_malloc)
print(torch_malloc.tune())
faults = []
for _ in range(6):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    blocks = [np.ones(1 << 20, np.float32) for _ in range(20)]
    del blocks
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(faults[1:])
"""


def fresh_import(code, **environ):
    """The last line ``code`` prints after ``import tosc_sionna`` in a fresh interpreter of
    this environment, with ``environ`` set (None: unset)."""
    env = dict(os.environ)
    for name, value in environ.items():
        env.pop(name, None)
        if value is not None:
            env[name] = value
    result = subprocess.run([sys.executable, "-c", f"import tosc_sionna; {code}"], env=env,
                            capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def run_steps(setting):
    env = dict(os.environ)
    env.pop(torch_malloc.ENV, None)
    if setting is not None:
        env[torch_malloc.ENV] = setting
    result = subprocess.run([sys.executable, "-c", STEPS], env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    tuned, faults = result.stdout.strip().splitlines()
    return tuned == "True", eval(faults)


@pytest.mark.skipif(not GLIBC, reason="glibc's mallopt: Linux with glibc only")
def test_tuned_thresholds_reuse_the_freed_memory():
    tuned, faults = run_steps(None)
    untuned, default_faults = run_steps("0")
    assert tuned and not untuned
    pages = 20 * (4 << 20) // 4096  # what a round touches: 20,480 pages of 4 KiB
    # glibc's defaults give much of the 80 MiB back after each round (half of it here)
    # and fault it in again ...
    assert min(default_faults) > 0.25 * pages, default_faults
    # ... the tuned heap keeps it
    assert max(faults) < 0.02 * pages, faults


def test_a_wrong_switch_value_is_refused(monkeypatch):
    monkeypatch.setenv(torch_malloc.ENV, "yes")
    with pytest.raises(ValueError, match=r"TOSC_SIONNA_TUNE_MALLOC must be 0 .* got 'yes'"):
        torch_malloc.tune()


@pytest.mark.torch
@pytest.mark.skipif(not GLIBC, reason="glibc's mallopt: Linux with glibc only")
def test_importing_the_torch_line_tunes_the_allocator():
    assert torch_malloc.TUNED
    off = fresh_import("from tosc_sionna.backends import torch_malloc; print(torch_malloc.TUNED)",
                       **{torch_malloc.ENV: "0"})
    assert off == "False"


@pytest.mark.tensorflow
def test_the_tensorflow_line_leaves_the_allocator_alone():
    assert not torch_malloc.TUNED


def test_openmp_wait_policy_stays_torchs():
    # PASSIVE would make the torch step ~1.3x slower on a quiet CPU: the user's choice
    assert fresh_import("import os; print(os.environ.get('OMP_WAIT_POLICY'))",
                        OMP_WAIT_POLICY=None) == "None"
