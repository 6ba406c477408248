"""The OFDM distillation tutorial (docs/tutorials/ofdm-distillation.md) runs top to bottom."""

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import jupytext
from backend import BACKEND

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "docs" / "tutorials" / "ofdm-distillation.md"


def code_cells() -> list[str]:
    notebook = jupytext.read(NOTEBOOK)
    return [cell.source for cell in notebook.cells if cell.cell_type == "code"]


def test_tutorial_is_a_myst_notebook_of_valid_python():
    text = NOTEBOOK.read_text(encoding="utf-8")
    assert text.startswith("---\njupytext:\n"), "the jupytext YAML front matter comes first"
    metadata = jupytext.read(NOTEBOOK).metadata
    assert metadata["jupytext"]["text_representation"]["format_name"] == "myst"
    assert metadata["kernelspec"]["name"] == "python3"
    cells = code_cells()
    assert len(cells) == text.count("```{code-cell} ipython3") >= 8
    for i, source in enumerate(cells):
        ast.parse(source, filename=f"code cell {i}")  # raises SyntaxError naming the cell


def test_tutorial_runs_and_its_student_learns(tmp_path):
    script = tmp_path / "tutorial.py"
    script.write_text("\n\n".join(code_cells()) + "\n", encoding="utf-8")
    env = {**os.environ, "MPLBACKEND": "Agg", "TF_CPP_MIN_LOG_LEVEL": "3",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    # The OFDM estimator's one eigendecomposition (912 x 912, at build and at reload) took
    # 3-27 s with two OpenBLAS threads on a busy 2-core CPU, about 1 s with one.
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    run = subprocess.run([sys.executable, str(script)], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=600)
    out = run.stdout
    assert run.returncode == 0, out + run.stderr[-3000:]

    assert f"on the {BACKEND} backend" in out, out
    assert "channel uses per pixel: 0.0204 data only, 0.0238 with pilots" in out, out
    fades = float(re.search(r"independent fades per example: ([0-9.]+)", out).group(1))
    assert 1.0 <= fades < 1.3, out  # 16 adjacent subcarriers: one nearly flat fade

    # the comparison table: SNR, then OFDM (LMMSE CSI), OFDM (perfect CSI), AWGN
    rows = {float(m[0]): [float(a) for a in m[1:]]
            for m in re.findall(r"^\s*(-?\d+)\s+([0-9.]+)\s+([0-9.]+)\s+([0-9.]+)\s*$",
                                out, flags=re.M)}
    assert sorted(rows) == [-5.0, 0.0, 10.0], out
    for accuracies in rows.values():
        assert min(accuracies) > 0.3, out  # chance is 0.1
    assert rows[10.0][0] > 0.55, out  # measured 0.67 on both lines
    assert rows[-5.0][2] > rows[-5.0][0], out  # AWGN beats the faded channel at low SNR

    assert "reloaded outputs equal: True" in out, out
    workdir = Path(re.search(r"^writing into (.+)$", out, flags=re.M).group(1))
    assert not workdir.exists(), "the tutorial removes its temporary directory"
