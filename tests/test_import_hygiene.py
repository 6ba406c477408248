"""The dependency arrows, checked in one fresh interpreter (the one subprocess test of imports).

teacher side (``cache_tools``) -> cache core (``tosc_cache``) <- Keras side (``tosc_sionna``):
importing the core (every module of it) loads neither keras/TensorFlow nor torch/transformers;
importing ``tosc_sionna`` loads neither torch (on the TensorFlow line; on the torch line
torch is Keras' backend), transformers nor the teacher side; and the teacher side itself
imports torch and transformers only when a teacher is loaded.
"""

import json
import subprocess
import sys

from backend import BACKEND

CODE = r"""
import importlib, json, pkgutil, sys

def loaded(names):
    return sorted(n for n in names if n in sys.modules)

out = {}
import tosc_cache
modules = [m.name for m in pkgutil.walk_packages(tosc_cache.__path__, "tosc_cache.")]
for name in modules:
    importlib.import_module(name)
out["core_modules"] = modules
out["core"] = loaded(("keras", "tensorflow", "torch", "transformers", "cache_tools",
                      "tosc_sionna"))
import tosc_sionna, tosc_sionna.data
out["keras_side"] = loaded(("torch", "transformers", "cache_tools"))
import cache_tools, cache_tools.cli, cache_tools.extract, cache_tools.online
out["teacher_side"] = loaded(("torch", "transformers"))
print(json.dumps(out))
"""


def test_dependency_arrows_point_one_way():
    run = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert {"tosc_cache.reader", "tosc_cache.writer", "tosc_cache.codecs.tcq",
            "tosc_cache.hf_images"} <= set(result["core_modules"])
    assert result["core"] == []
    # on the torch line torch is Keras' backend: tosc_sionna loads it, and nothing else
    backend = ["torch"] if BACKEND == "torch" else []
    assert result["keras_side"] == backend
    assert result["teacher_side"] == backend
