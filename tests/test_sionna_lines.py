"""tosc_sionna.line: Keras' backend follows the installed Sionna line, and a mismatch is refused
in one line."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sionna
from backend import BACKEND

from tosc_sionna import line

ROOT = Path(__file__).resolve().parents[1]
OTHER = {"torch": "tensorflow", "tensorflow": "torch"}


@pytest.mark.parametrize(
    "version, backend",
    [("2.2.0", "torch"), ("2.0", "torch"), ("3.1.0rc1", "torch"),
     ("1.2.2", "tensorflow"), ("1.2.0", "tensorflow"), ("0.19.2", "tensorflow")],
)
def test_backend_for_a_sionna_version(version, backend):
    assert line.backend_for(version) == backend


def test_this_environment_runs_its_lines_backend():
    # Sionna 1.x is the TensorFlow line, 2.x the torch line (read without tosc_sionna)
    expected = "torch" if int(sionna.__version__.split(".")[0]) >= 2 else "tensorflow"
    assert line.sionna_version() == sionna.__version__
    assert BACKEND == expected == line.backend_for(line.sionna_version())


def python(code, keras_backend):
    """Run ``code`` in a fresh interpreter of this environment, ``KERAS_BACKEND`` set to
    ``keras_backend`` (None: unset), this checkout first on the path."""
    env = dict(os.environ)
    env.pop("KERAS_BACKEND", None)
    if keras_backend is not None:
        env["KERAS_BACKEND"] = keras_backend
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    )
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                           text=True, timeout=600, cwd=ROOT)


def test_the_other_backend_is_refused_in_one_line():
    wanted = BACKEND
    result = python("import tosc_sionna", OTHER[wanted])
    assert result.returncode != 0, result.stdout
    last = result.stderr.strip().splitlines()[-1]
    assert "SionnaLineError" in last and f"KERAS_BACKEND={wanted}" in last, result.stderr
    assert OTHER[wanted] in last  # it says what was set


def test_without_keras_backend_the_line_chooses_it():
    result = python(
        "import tosc_sionna, keras; print(keras.backend.backend())", None
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == BACKEND


def test_the_lines_own_backend_is_accepted():
    result = python("import tosc_sionna, keras; print(keras.backend.backend())", BACKEND)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == BACKEND
