"""tosc_sionna.backends.torch_malloc: glibc's thresholds on the torch line, what they change
(the freed memory of a step-like allocation pattern stays in the heap), the switch that keeps
the defaults, and OpenMP's wait policy left as torch has it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tosc_sionna.backends import torch_malloc

ROOT = Path(__file__).resolve().parents[1]
MODULE = ROOT / "tosc_sionna" / "backends" / "torch_malloc.py"
GLIBC = torch_malloc._glibc_mallopt() is not None

# A training step in miniature: 20 blocks of 4 MiB (an activation each) allocated, then all
# freed, three times; then what tune() said and the free bytes glibc's heaps hold
# (mallinfo2's fordblks: freed memory kept rather than given back to the system).
STEPS = f"""
import ctypes, importlib.util, json
import numpy as np
spec = importlib.util.spec_from_file_location("torch_malloc", {str(MODULE)!r})
torch_malloc = importlib.util.module_from_spec(spec)
spec.loader.exec_module(torch_malloc)
tuned = torch_malloc.tune()
for _ in range(3):
    blocks = [np.ones(1 << 20, np.float32) for _ in range(20)]
    del blocks
class Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]
mallinfo2 = ctypes.CDLL(None).mallinfo2
mallinfo2.restype = Mallinfo2
print(json.dumps({{"tuned": tuned, "free": mallinfo2().fordblks}}))
"""


def fresh(code, **environ):
    """The last line ``code`` prints in a fresh interpreter of this environment, with
    ``environ`` set (None: unset)."""
    env = dict(os.environ)
    for name, value in environ.items():
        env.pop(name, None)
        if value is not None:
            env[name] = value
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


@pytest.mark.skipif(not GLIBC, reason="glibc's mallopt: Linux with glibc only")
def test_tuned_thresholds_keep_the_freed_memory():
    tuned = json.loads(fresh(STEPS, **{torch_malloc.ENV: None}))
    default = json.loads(fresh(STEPS, **{torch_malloc.ENV: "0"}))
    assert tuned["tuned"] and not default["tuned"]
    step = 20 * (4 << 20)  # the 80 MiB one round allocates and frees
    # the tuned heap keeps the round's memory for the next one ...
    assert tuned["free"] >= step, tuned
    # ... glibc's defaults give most of it back (its trim threshold: twice a block, 8 MiB)
    assert default["free"] < step / 4, default


@pytest.mark.parametrize("value", ["yes", "2", "true"])
def test_a_wrong_switch_value_is_refused(monkeypatch, value):
    monkeypatch.setenv(torch_malloc.ENV, value)
    with pytest.raises(ValueError, match=rf"TOSC_SIONNA_TUNE_MALLOC must be 0 .* got '{value}'"):
        torch_malloc.tune()


def test_switched_off_tune_sets_nothing(monkeypatch):
    monkeypatch.setenv(torch_malloc.ENV, "0")
    assert torch_malloc.tune() is False


IMPORTED = ("import tosc_sionna; from tosc_sionna.backends import torch_malloc; "
            "print(torch_malloc.TUNED)")


@pytest.mark.torch
@pytest.mark.skipif(not GLIBC, reason="glibc's mallopt: Linux with glibc only")
def test_importing_the_torch_line_tunes_the_allocator():
    assert fresh(IMPORTED, **{torch_malloc.ENV: None}) == "True"
    assert fresh(IMPORTED, **{torch_malloc.ENV: ""}) == "True"
    assert fresh(IMPORTED, **{torch_malloc.ENV: "0"}) == "False"


@pytest.mark.tensorflow
def test_the_tensorflow_line_leaves_the_allocator_alone():
    assert fresh(IMPORTED, **{torch_malloc.ENV: None}) == "False"


def test_openmp_wait_policy_stays_torchs():
    # PASSIVE made the torch step ~1.3x slower on a quiet CPU: the user's choice, not ours
    code = "import os, tosc_sionna; print(os.environ.get('OMP_WAIT_POLICY'))"
    assert fresh(code, OMP_WAIT_POLICY=None) == "None"
